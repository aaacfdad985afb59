package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTarget is a container whose state and SELECT 1 answers are scripted.
type fakeTarget struct {
	// readyAfter is how many pings fail before one succeeds (-1: never).
	readyAfter int
	// stopAfter is how many state polls report running before the
	// container stops (-1: never).
	stopAfter int
	pings     atomic.Int32
	polls     atomic.Int32
	logs      string
	// pingErr is what a failing ping returns (default: connection refused).
	pingErr error
}

func (f *fakeTarget) State(context.Context) (ContainerState, error) {
	n := int(f.polls.Add(1))
	if f.stopAfter >= 0 && n > f.stopAfter {
		return ContainerState{Running: false, Status: "exited", ExitCode: 1}, nil
	}
	return ContainerState{Running: true, Status: "running"}, nil
}

func (f *fakeTarget) Logs(context.Context, int) (string, error) { return f.logs, nil }

func (f *fakeTarget) Ping(context.Context) error {
	n := int(f.pings.Add(1))
	if f.readyAfter >= 0 && n > f.readyAfter {
		return nil
	}
	if f.pingErr != nil {
		return f.pingErr
	}
	return errors.New("connection refused")
}

func TestWaitReadyAfterSomePolls(t *testing.T) {
	t.Parallel()
	f := &fakeTarget{readyAfter: 3, stopAfter: -1}
	require.NoError(t, waitReady(t.Context(), "c1", f, 10*time.Second, time.Millisecond))
	assert.Equal(t, int32(4), f.pings.Load(), "returns on the first successful SELECT 1")
	assert.Equal(t, f.pings.Load(), f.polls.Load(), "the container state is checked on every poll")
}

func TestWaitReadyCrashFailsAtOnceWithLogs(t *testing.T) {
	t.Parallel()
	f := &fakeTarget{readyAfter: -1, stopAfter: 2, logs: "FATAL:  unrecognized configuration parameter \"nope\"\n"}
	err := waitReady(t.Context(), "c1", f, time.Hour, time.Millisecond)
	var nr *NotReadyError
	require.ErrorAs(t, err, &nr)
	assert.Contains(t, nr.Reason, "stopped while starting")
	assert.Zero(t, nr.Timeout, "a crash is not a slow start: no timeout to raise")
	assert.Contains(t, err.Error(), `unrecognized configuration parameter "nope"`, "the last log lines are shown")
	assert.Contains(t, err.Error(), "docker logs c1")
	assert.Equal(t, int32(3), f.polls.Load(), "fails on the first poll that sees the container stopped, not at the deadline")
}

func TestWaitReadyDeadline(t *testing.T) {
	t.Parallel()
	f := &fakeTarget{readyAfter: -1, stopAfter: -1, logs: "still starting"}
	err := waitReady(t.Context(), "c1", f, 50*time.Millisecond, 5*time.Millisecond)
	var nr *NotReadyError
	require.ErrorAs(t, err, &nr)
	assert.Contains(t, nr.Reason, "did not answer SELECT 1 within 50ms")
	assert.Equal(t, 50*time.Millisecond, nr.Timeout, "the wait that passed, for cmd's advice to raise it")
	assert.Contains(t, err.Error(), "connection refused", "the last attempt's error is shown")
	assert.Contains(t, err.Error(), "still starting")
}

func TestWaitReadyCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f := &fakeTarget{readyAfter: -1, stopAfter: -1}
	err := waitReady(ctx, "c1", f, time.Hour, time.Millisecond)
	assert.ErrorIs(t, err, context.Canceled, "Ctrl-C is not reported as a readiness failure")
}

func TestWaitReadyRefusedLoginFailsAtOnce(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"28P01", "28000", "3D000"} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			pgErr := &pgconn.PgError{Severity: "FATAL", Code: code, Message: "password authentication failed for user \"rules\""}
			f := &fakeTarget{readyAfter: -1, stopAfter: -1, pingErr: fmt.Errorf("failed to connect to `user=rules database=rulesdb`: %w", pgErr)}
			err := waitReady(t.Context(), "c1", f, time.Hour, time.Millisecond)
			var le *LoginError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, code, le.Code)
			assert.Equal(t, int32(1), f.pings.Load(), "a refused login is final: no second attempt, no waiting out the timeout")
		})
	}
}

func TestLoginErrorSaysWhatToChange(t *testing.T) {
	t.Parallel()
	le := &LoginError{
		Container: "aidb-rulesdb", Code: "28P01",
		Err:      &pgconn.PgError{Code: "28P01", Message: `password authentication failed for user "rules"`},
		Database: "rulesdb", User: "rules", DBName: "rulesdb", Volume: "aidb_rulesdb-data", AdminUser: "rules",
		Vars: map[string][]string{"POSTGRES_PASSWORD": {"RULESDB_PASSWORD"}},
	}
	msg := le.Error()
	for _, want := range []string{
		"rulesdb: authentication failed", "refused aidb's login as user rules", "SQLSTATE 28P01",
		"The volume aidb_rulesdb-data keeps the user, password and database it was initialised with",
		"POSTGRES_PASSWORD (from RULESDB_PASSWORD)", "put back the old value of RULESDB_PASSWORD",
		"docker exec -it aidb-rulesdb psql -U rules", `\password rules`, "ALTER ROLE rules PASSWORD",
	} {
		assert.Contains(t, msg, want)
	}

	le.Keys, le.AdminUser = []string{"POSTGRES_USER"}, "olduser"
	le.Vars["POSTGRES_USER"] = []string{"RULESDB_USER"}
	msg = le.Error()
	assert.Contains(t, msg, "POSTGRES_USER (from RULESDB_USER)", "the setting that changed is named, whatever the SQLSTATE")
	assert.Contains(t, msg, "psql -U olduser")
	assert.Contains(t, msg, "ALTER ROLE <old user> RENAME TO rules")
	assert.NotContains(t, msg, "RULESDB_PASSWORD")
}

// aidb's root context is cancelled by a signal with the signal as its
// cause: the wait still reports Ctrl-C, not "did not answer SELECT 1
// within 1m0s" (which a Ctrl-C during a backup's verification said).
func TestWaitReadyCancelledWithACause(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errors.New("interrupted by interrupt"))
	f := &fakeTarget{readyAfter: -1, stopAfter: -1}
	err := waitReady(ctx, "c1", f, time.Hour, time.Millisecond)
	assert.ErrorIs(t, err, context.Canceled)
	var nr *NotReadyError
	assert.False(t, errors.As(err, &nr), "not a readiness failure: %v", err)
}
