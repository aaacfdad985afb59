package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
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
	// Timeout is the wait that passed when the deadline did (the database
	// may only be slow to start); zero when the container stopped.
	Timeout time.Duration
	LastErr error
	Logs    string
	// Removed says the container is gone (a failed replacement), so its
	// log cannot be read any more.
	Removed bool
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
	if e.Removed {
		b.WriteString("\n(that container was removed)")
	} else {
		fmt.Fprintf(&b, "\nsee the whole log with: docker logs %s", e.Container)
	}
	return b.String()
}

func (e *NotReadyError) Unwrap() error { return e.LastErr }

// readyLogLines is how many log lines a readiness failure shows.
const readyLogLines = 20

// waitReady polls until the database answers SELECT 1, checking the
// container's state on every poll so a crashed server fails at once rather
// than at the deadline. It waits at most timeout; polls are interval apart
// (each ping bounded by interval or 2 s, whichever is larger).
func waitReady(parent context.Context, name string, t readyTarget, timeout, interval time.Duration) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
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
			// A database closed to connections stays closed: waiting
			// changes nothing.
			if ce := closedFailure(name, lastErr); ce != nil {
				return ce
			}
			// A refused login is final: the server is up and waiting
			// longer changes nothing.
			if le := loginFailure(name, lastErr); le != nil {
				return le
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			// Ctrl-C (the parent's cancellation, whatever its cause) is
			// not a slow start.
			if err := parent.Err(); err != nil {
				return err
			}
			return &NotReadyError{
				Container: name,
				Reason:    fmt.Sprintf("did not answer SELECT 1 within %s", timeout),
				Timeout:   timeout,
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

// LoginError says a database server answers but refuses aidb's login with
// the credentials of the compose file: PostgreSQL takes POSTGRES_USER,
// POSTGRES_PASSWORD and POSTGRES_DB only when it initialises an empty
// volume, so changing them later has no effect on the database.
type LoginError struct {
	Container string
	// Code is the SQLSTATE: 28P01 invalid_password, 28000
	// invalid_authorization_specification, 3D000 invalid_catalog_name.
	Code string
	Err  error

	// Filled in by the caller that knows the database.
	Database string
	User     string
	DBName   string
	Volume   string
	// Keys are the settings that differ from those the running database
	// was set up with (POSTGRES_PASSWORD, ...); empty: guessed from Code.
	Keys []string
	// AdminUser is the role to run psql as inside the container (the one
	// the volume was initialised with, when known).
	AdminUser string
	// Vars maps POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB to the
	// variables the compose file takes them from.
	Vars map[string][]string
}

// The SQLSTATEs of a refused login (PostgreSQL's errcodes.txt).
const (
	sqlstateInvalidPassword      = "28P01" // invalid_password
	sqlstateInvalidAuthorization = "28000" // invalid_authorization_specification: no such role
	sqlstateInvalidCatalogName   = "3D000" // invalid_catalog_name: no such database
)

// loginFailure classifies err, by SQLSTATE, as a refused login; nil when it
// is something else (the server still starting, say).
func loginFailure(container string, err error) *LoginError {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil
	}
	switch pgErr.Code {
	case sqlstateInvalidPassword, sqlstateInvalidAuthorization, sqlstateInvalidCatalogName:
		return &LoginError{Container: container, Code: pgErr.Code, Err: err}
	}
	return nil
}

func (e *LoginError) Error() string {
	db := e.Database
	if db == "" {
		db = "the database in container " + e.Container
	}
	user, dbName := orDefault(e.User, "postgres"), orDefault(e.DBName, orDefault(e.User, "postgres"))
	keys := e.Keys
	if len(keys) == 0 {
		switch e.Code {
		case sqlstateInvalidCatalogName:
			keys = []string{"POSTGRES_DB"}
		case sqlstateInvalidAuthorization:
			keys = []string{"POSTGRES_USER"}
		default:
			keys = []string{"POSTGRES_PASSWORD"}
		}
	}
	var settings, olds []string
	for _, k := range keys {
		if vars := e.Vars[k]; len(vars) > 0 {
			settings = append(settings, fmt.Sprintf("%s (from %s)", k, strings.Join(vars, ", ")))
			olds = append(olds, vars...)
		} else {
			settings = append(settings, k)
			olds = append(olds, k)
		}
	}
	volume := "its volume"
	if e.Volume != "" {
		volume = "the volume " + e.Volume
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: authentication failed: the server runs but refused aidb's login as user %s to database %s (SQLSTATE %s: %s)\n", db, user, dbName, e.Code, pgMessage(e.Err))
	verb := "takes"
	if len(settings) > 1 {
		verb = "take"
	}
	fmt.Fprintf(&b, "%s keeps the user, password and database it was initialised with: %s %s effect only on an empty volume. Either put back the old value of %s, or change the database to match",
		strings.ToUpper(volume[:1])+volume[1:], strings.Join(settings, ", "), verb, strings.Join(olds, ", "))
	var fixes []string
	for _, k := range keys {
		switch k {
		case "POSTGRES_PASSWORD":
			fixes = append(fixes, fmt.Sprintf(`\password %s (or ALTER ROLE %s PASSWORD '...')`, user, user))
		case "POSTGRES_USER":
			fixes = append(fixes, fmt.Sprintf("ALTER ROLE <old user> RENAME TO %s (or CREATE ROLE %s LOGIN PASSWORD '...')", user, user))
		case "POSTGRES_DB":
			fixes = append(fixes, fmt.Sprintf("ALTER DATABASE <old database> RENAME TO %s (or CREATE DATABASE %s)", dbName, dbName))
		}
	}
	if len(fixes) > 0 {
		fmt.Fprintf(&b, " (docker exec -it %s psql -U %s -d postgres, then %s)", e.Container, orDefault(e.AdminUser, "<old user>"), strings.Join(fixes, "; "))
	}
	return b.String()
}

func (e *LoginError) Unwrap() error { return e.Err }

// pgMessage is the server's words without the connection details pgx puts
// around them.
func pgMessage(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	return err.Error()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sqlstateNotAccepting is object_not_in_prerequisite_state, what a server
// answers a login to a database closed to connections (datallowconn off).
const sqlstateNotAccepting = "55000"

// ClosedError says the server runs but the database takes no connections:
// ALTER DATABASE … ALLOW_CONNECTIONS false is in force. A restore's swap
// sets it for an instant; a restore killed in that instant leaves it, and
// nothing else that aidb runs can get in until it is undone.
type ClosedError struct {
	Container, Database, DBName, User string
	Err                               error
}

func (e *ClosedError) Error() string {
	return fmt.Sprintf("%s: the database %s does not accept connections (ALLOW_CONNECTIONS is off; an aidb restore killed while it swapped the database in leaves it so): reopen it with docker exec %s psql -U %s -d postgres -c 'ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true'",
		orDefault(e.Database, "the database in container "+e.Container), e.DBName, e.Container, e.User, strings.ReplaceAll(e.DBName, `"`, `""`))
}

func (e *ClosedError) Unwrap() error { return e.Err }

// closedFailure classifies err, by SQLSTATE, as a database closed to
// connections; nil when it is something else.
func closedFailure(container string, err error) *ClosedError {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != sqlstateNotAccepting {
		return nil
	}
	return &ClosedError{Container: container, Err: err}
}
