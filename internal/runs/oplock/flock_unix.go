//go:build unix

package oplock

import (
	"errors"
	"os"
	"syscall"
)

// errLocked is tryLock's error when another holds the lock.
var errLocked = syscall.EWOULDBLOCK

// tryLock takes an exclusive flock on f without waiting: the kernel drops
// it when f is closed or its process dies.
func tryLock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}
