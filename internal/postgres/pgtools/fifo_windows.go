package pgtools

import (
	"errors"
	"os"
)

// namedPipes says whether this system has named pipes, which the helper
// transport writes through: Windows has none a container can share
// through a bind mount, so every tool runs through the exec stream.
const namedPipes = false

var errNoPipes = errors.New("windows has no named pipes: the helper transport is not available here")

func mkfifo(string) error { return errNoPipes }

func openReaderNow(string) (*os.File, error) { return nil, errNoPipes }
