//go:build !linux

package pgrun

import "os"

// growPipe does nothing: only Linux lets a pipe's buffer grow.
func growPipe(*os.File) {}
