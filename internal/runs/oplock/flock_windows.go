package oplock

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// errLocked is tryLock's error when another holds the lock.
var errLocked = windows.ERROR_LOCK_VIOLATION

// lockOffsetHigh places the locked byte (at 2^62): far past the end of the file,
// because Windows' locks are mandatory and a lock on the holder line would
// keep those who wait from reading it.
const lockOffsetHigh = 1 << 30

// tryLock takes an exclusive LockFileEx lock on one byte of f without
// waiting: the system drops it when f is closed or its process dies.
func tryLock(f *os.File) error {
	ol := windows.Overlapped{OffsetHigh: lockOffsetHigh}
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) || errors.Is(err, windows.ERROR_IO_PENDING) {
		return errLocked
	}
	return err
}
