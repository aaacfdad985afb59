package pgtools

import (
	"context"
	"sync"

	"github.com/aidb/aidb/internal/fault"
)

// A prober tries the helper path once: it starts a helper container that,
// before anything else, writes a token into a pipe of the work folder, and
// returns nil once this process has read the token, or an error saying
// why not (the folder the engine mounts is not this process's, the pipe
// carried nothing in time, the engine would not mount the folder), or
// ctx's error.
type prober interface {
	probe(ctx context.Context) error
}

// probeFunc is a prober made of a function.
type probeFunc func(ctx context.Context) error

func (f probeFunc) probe(ctx context.Context) error { return f(ctx) }

// PathError is the helper transport forced (--via helper) where it does
// not work: Reason says why. It is bad usage (fault.Invalid): the exec
// stream works wherever the engine does.
type PathError struct {
	Reason string
}

func (e *PathError) Error() string {
	return "the helper transport does not work with this engine: " + e.Reason
}

// Kind says a PathError is bad usage.
func (e *PathError) Kind() fault.Kind { return fault.Invalid }

// paths is the one place the data path is chosen: whether auto means the
// helper (pipes in the bind-mounted work folder) or the exec stream. The
// answer is found by trying (a prober), not guessed from the engine's
// address: an engine in a VM (Docker Desktop, Colima) answers on a local
// socket but mounts the VM's view of the folder, whose pipes carry nothing
// to this process. It is tried once per run (one Runner): the first
// answer is kept, and a helper path that does not work is told to notice
// once, with the reason. Callers that ask at the same time before the
// first answer each try (each starts the helper it needs anyway).
type paths struct {
	// pipes says the system has named pipes (Windows has none).
	pipes bool
	// notice is told, once, why auto takes the exec stream.
	notice func(reason string)

	mu sync.Mutex
	// known says an answer was found; reason is why the helper path does
	// not work, "" when it does.
	known  bool
	reason string
	said   bool
}

// choose is the transport for t: stream stays stream; auto and helper try
// the helper path with p the first time (p is not called once the answer
// is known). Auto takes the stream where the helper path does not work;
// helper is then a *PathError. ctx's error, when the try was cut short, is
// returned as it is and decides nothing.
func (c *paths) choose(ctx context.Context, t Transport, p prober) (Transport, error) {
	if t == TransportStream {
		return TransportStream, nil
	}
	if !c.pipes {
		if t == TransportHelper {
			return "", &PathError{Reason: "this system has no named pipes"}
		}
		return TransportStream, nil
	}
	c.mu.Lock()
	known, reason := c.known, c.reason
	c.mu.Unlock()
	if !known {
		err := p.probe(ctx)
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		reason = ""
		if err != nil {
			reason = err.Error()
		}
		c.mu.Lock()
		if !c.known {
			c.known, c.reason = true, reason
		}
		c.mu.Unlock()
	}
	if reason == "" {
		return TransportHelper, nil
	}
	if t == TransportHelper {
		return "", &PathError{Reason: reason}
	}
	c.mu.Lock()
	say := !c.said && c.notice != nil
	c.said = true
	c.mu.Unlock()
	if say {
		c.notice(reason)
	}
	return TransportStream, nil
}

// settled says the exec stream is t's path without a try: t is stream, or
// auto where the system has no pipes or an earlier try found the helper
// path does not work (the reason was said then).
func (c *paths) settled(t Transport) bool {
	if t == TransportStream || (t == TransportAuto && !c.pipes) {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return t == TransportAuto && c.known && c.reason != ""
}
