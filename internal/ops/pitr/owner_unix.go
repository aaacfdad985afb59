//go:build unix

package pitr

import (
	"fmt"
	"os"
	"syscall"
)

// ownerOf reads who owns dir.
func ownerOf(dir string) (fileOwner, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return fileOwner{}, fmt.Errorf("read WAL folder %s: %w", dir, err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileOwner{os.Getuid(), os.Getgid()}, nil
	}
	return fileOwner{int(st.Uid), int(st.Gid)}, nil
}
