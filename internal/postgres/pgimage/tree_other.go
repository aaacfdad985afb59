//go:build !linux

package pgimage

import (
	"fmt"
	"os/exec"
	"runtime"
)

// supported says whether this system can build the image: debootstrap,
// chroot and the mounts it makes are Linux's.
func supported() error {
	return fmt.Errorf("building the PostgreSQL image from Debian's packages needs Linux (this is %s): pull the image on a machine that reaches a registry, or docker load it", runtime.GOOS)
}

// ownGroup is never reached: Build stops at supported.
func ownGroup(*exec.Cmd, string) {}

// unmountUnder has nothing to do: no build mounted anything.
func unmountUnder(string) error { return nil }
