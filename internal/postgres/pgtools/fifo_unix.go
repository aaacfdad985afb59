//go:build unix

package pgtools

import (
	"os"
	"syscall"
)

// namedPipes says whether this system has named pipes, which the helper
// transport writes through.
const namedPipes = true

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o600) }

// openReaderNow opens a pipe for reading without waiting for a writer.
func openReaderNow(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}
