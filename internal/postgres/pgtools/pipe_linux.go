package pgtools

import (
	"os"

	"golang.org/x/sys/unix"
)

// growPipe raises a pipe's buffer from 64 KiB to 1 MiB where the system
// allows: fewer wake-ups between pg_dump and this process. Best effort.
func growPipe(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) })
	}
}
