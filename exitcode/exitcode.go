// Package exitcode is what the packages not yet moved to fault (restore,
// and cmd/aidb's own flag checks) still call: BadInput is fault.BadInput,
// and an Error with the code Differs is of the kind fault.Differs. The exit
// codes themselves are cmd/aidb's (advice.go), which maps kinds to them.
//
// Deprecated: return fault kinds or typed errors; this package goes when
// restore's errors move to fault.
package exitcode

import "github.com/aidb/aidb/fault"

// The codes an Error may carry.
const (
	Usage   = 2 // bad usage or bad input: fault.Invalid
	Differs = 3 // verification found a difference: fault.Differs
)

// Error is an error with the exit code it should end the command with.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Kind is the fault kind of the code: Usage is Invalid, Differs is
// Differs, any other code Failed.
func (e *Error) Kind() fault.Kind {
	switch e.Code {
	case Usage:
		return fault.Invalid
	case Differs:
		return fault.Differs
	}
	return fault.Failed
}

// BadInput is fault.BadInput.
func BadInput(err error) error { return fault.BadInput(err) }
