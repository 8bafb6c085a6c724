// Command local-path-helper creates and removes the directories of
// local-path-provisioner's volumes. The provisioner runs it in a helper pod as
// its setupCommand/teardownCommand with "-p <dir> -s <bytes> -m <mode> -a
// create|delete"; upstream runs the same two steps (`mkdir -m 0777 -p "$VOL_DIR"`
// and `rm -rf "$VOL_DIR"`) as shell scripts in a busybox image, which no
// registry here serves, so they are written out as a static binary packed FROM
// scratch, like the pause image.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	path := flag.String("p", "", "volume directory")
	action := flag.String("a", "", "create or delete")
	flag.String("s", "", "size in bytes (unused: no quota)")
	flag.String("m", "", "volume mode (Filesystem)")
	flag.Parse()
	if err := run(*path, *action); err != nil {
		fmt.Fprintln(os.Stderr, "local-path-helper:", err)
		os.Exit(1)
	}
}

func run(path, action string) error {
	if path == "" || !filepath.IsAbs(path) || filepath.Clean(path) == "/" {
		return fmt.Errorf("-p %q: an absolute directory below the volume root", path)
	}
	switch action {
	case "create":
		if err := os.MkdirAll(path, 0o777); err != nil {
			return err
		}
		// MkdirAll is subject to the umask: any pod UID must be able to write here,
		// as with upstream's `mkdir -m 0777`.
		return os.Chmod(path, 0o777)
	case "delete":
		return os.RemoveAll(path)
	default:
		return fmt.Errorf("-a %q: create or delete", action)
	}
}
