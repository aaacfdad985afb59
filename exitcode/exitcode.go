// Package exitcode holds the exit codes aidb documents and the error type
// that carries one from a library package to cmd/aidb.
package exitcode

import (
	"context"
	"errors"
)

// The exit codes of every aidb command.
const (
	OK          = 0   // done
	Failed      = 1   // the operation failed
	Usage       = 2   // bad usage or bad input, refused before anything changed
	Differs     = 3   // verification found a difference
	Interrupted = 130 // Ctrl-C (SIGINT)
	Terminated  = 143 // SIGTERM
)

// Error is an error with the exit code it should end the command with.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// BadInput marks err as bad usage or input: exit 2, nothing was changed.
func BadInput(err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: Usage, Err: err}
}

// Of returns the exit code for err: 0 for nil, the code an Error carries,
// 130 for a cancelled context (Ctrl-C), else 1.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.Canceled) {
		return Interrupted
	}
	return Failed
}
