// Command etcd is the etcd server, built from the pinned go.etcd.io/etcd/server/v3
// release (its own main package sits in a module whose go.mod has local replaces,
// so it cannot be `go install`ed directly).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
