package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ContainerState is what readiness needs to know of a container on each poll.
type ContainerState struct {
	Running  bool
	Status   string // created, running, exited, ...
	ExitCode int
	OOMKill  bool
}

// readyTarget is what the readiness wait needs from the engine and the
// database; the engine-backed one is below, tests use a small fake.
type readyTarget interface {
	// State is the container's state now.
	State(ctx context.Context) (ContainerState, error)
	// Logs returns the container's last n log lines.
	Logs(ctx context.Context, n int) (string, error)
	// Ping runs SELECT 1 on the database.
	Ping(ctx context.Context) error
}

// NotReadyError says a database did not become ready: its container stopped,
// or the deadline passed. It carries the container's last log lines.
type NotReadyError struct {
	Container string
	Reason    string
	LastErr   error
	Logs      string
}

func (e *NotReadyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "database container %s %s", e.Container, e.Reason)
	if e.LastErr != nil {
		fmt.Fprintf(&b, " (last attempt: %v)", e.LastErr)
	}
	if e.Logs != "" {
		fmt.Fprintf(&b, "\nits last log lines:\n%s", indent(e.Logs))
	} else {
		b.WriteString("\n(it printed no log lines)")
	}
	fmt.Fprintf(&b, "\nsee the whole log with: docker logs %s", e.Container)
	return b.String()
}

func (e *NotReadyError) Unwrap() error { return e.LastErr }

// readyLogLines is how many log lines a readiness failure shows.
const readyLogLines = 20

// waitReady polls until the database answers SELECT 1, checking the
// container's state on every poll so a crashed server fails at once rather
// than at the deadline. It waits at most timeout; polls are interval apart
// (each ping bounded by interval or 2 s, whichever is larger).
func waitReady(ctx context.Context, name string, t readyTarget, timeout, interval time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pingTimeout := max(interval, 2*time.Second)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lastErr error
	for {
		st, err := t.State(ctx)
		if err != nil {
			if ctx.Err() == nil {
				return fmt.Errorf("inspect container %s: %w", name, err)
			}
		} else if !st.Running {
			reason := fmt.Sprintf("stopped while starting (state %s, exit code %d)", st.Status, st.ExitCode)
			if st.OOMKill {
				reason += ", killed for lack of memory"
			}
			return &NotReadyError{Container: name, Reason: reason, Logs: lastLogs(ctx, t)}
		} else {
			pctx, pcancel := context.WithTimeout(ctx, pingTimeout)
			lastErr = t.Ping(pctx)
			pcancel()
			if lastErr == nil {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return parent
			}
			return &NotReadyError{
				Container: name,
				Reason:    fmt.Sprintf("did not answer SELECT 1 within %s (raise ready_timeout in aidb.yaml or --timeout)", timeout),
				LastErr:   lastErr,
				Logs:      lastLogs(ctx, t),
			}
		}
	}
}

// lastLogs fetches the log tail under a context of its own: the wait's may
// have expired, and the logs are what the user needs most then.
func lastLogs(ctx context.Context, t readyTarget) string {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	logs, err := t.Logs(lctx, readyLogLines)
	if err != nil {
		return "(could not read its logs: " + err.Error() + ")"
	}
	return strings.TrimRight(logs, "\n")
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
