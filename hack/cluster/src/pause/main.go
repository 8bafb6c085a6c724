// Command pause is the pod sandbox process: it sleeps until it gets SIGINT or
// SIGTERM, and reaps zombies (it is PID 1 of the pod when the PID namespace is
// shared). Built static and packed into a FROM-scratch image, since there is
// no registry to pull the upstream pause image from.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
