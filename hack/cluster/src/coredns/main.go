// Command coredns is CoreDNS with only the plugins the local cluster's Corefile
// uses (cluster.py start_coredns): bind, errors, kubernetes, cache, loadbalance.
// The release's own main imports every plugin (core/plugin: cloud DNS
// providers, tracing, etcd, ...), which takes several times longer to compile
// on a cold cache for nothing this cluster runs; the server itself (coremain)
// is the same.
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
