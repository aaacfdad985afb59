//go:build !unix

package pitr

import (
	"fmt"
	"os"
)

// ownerOf is the current user where files have no unix owner.
func ownerOf(dir string) (fileOwner, error) {
	if _, err := os.Stat(dir); err != nil {
		return fileOwner{}, fmt.Errorf("read WAL folder %s: %w", dir, err)
	}
	return fileOwner{os.Getuid(), os.Getgid()}, nil
}
