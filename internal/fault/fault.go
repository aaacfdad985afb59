// Package fault names the kinds of failure aidb's packages report, so that
// a caller can tell bad input from a database that is not up, a busy one or
// a found difference without reading messages.
//
// It speaks no CLI: what a kind means to a person (an exit code, a flag to
// raise, a make target to run) is decided in cmd/aidb, which maps kinds and
// the packages' typed errors to exit codes and advice. An error here says
// what was wrong, with its identifiers; the next step it names, if any, is
// one a library can name (a file to fix, a setting in aidb.yaml), never a
// flag or a target.
package fault

import "errors"

// Kind is what sort of failure an error is.
type Kind uint8

// The kinds of failure. The zero value is Failed: an error that says
// nothing else is an operation that failed.
const (
	// Failed: the operation failed.
	Failed Kind = iota
	// Invalid: bad usage or bad input, refused before anything changed.
	Invalid
	// NotRunning: something the operation needs is not up (a database, its
	// container).
	NotRunning
	// Busy: another operation holds what this one needs, for longer than
	// this one was allowed to wait.
	Busy
	// Differs: a check found a difference (a backup against its manifest).
	Differs
	// Stale: no backup recent enough (and verified, where asked) where
	// one was expected.
	Stale
)

func (k Kind) String() string {
	switch k {
	case Failed:
		return "failed"
	case Invalid:
		return "invalid"
	case NotRunning:
		return "not running"
	case Busy:
		return "busy"
	case Differs:
		return "differs"
	case Stale:
		return "stale"
	}
	return "unknown"
}

// Kinded is an error that knows its kind. The packages' typed errors
// (orchestrator.NotUpError, oplock.BusyError, ...) implement it; New wraps
// any other error with a kind.
type Kinded interface {
	error
	Kind() Kind
}

// Error is an error with a kind.
type Error struct {
	kind Kind
	err  error
}

// New gives err a kind; nil stays nil.
func New(kind Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{kind: kind, err: err}
}

// BadInput marks err as bad usage or input (Invalid): nothing was changed.
func BadInput(err error) error { return New(Invalid, err) }

func (e *Error) Error() string { return e.err.Error() }
func (e *Error) Unwrap() error { return e.err }

// Kind is the kind New gave the error.
func (e *Error) Kind() Kind { return e.kind }

// KindOf returns the kind of err: that of the first error in its tree
// (errors.As order: outermost first, a join's errors in order) that has
// one, Failed when none has. An error that classifies another thus
// overrides the kind of what it wraps.
func KindOf(err error) Kind {
	var k Kinded
	if errors.As(err, &k) {
		return k.Kind()
	}
	return Failed
}
