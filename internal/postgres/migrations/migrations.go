// Package migrations applies, lists and reverts a database's schema
// migrations with pressly/goose v3's Provider: SQL files from an fs.FS (a
// folder named in aidb.yaml, or the embedded defaults for rulesdb and
// memorydb), each in its own transaction, under a PostgreSQL session
// advisory lock so that concurrent runs apply every migration once.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/aidb/aidb/internal/fault"
)

// Table is goose's bookkeeping table. Data-only backups leave it out: its
// rows belong to the schema a database was migrated to, not to its data.
const Table = "goose_db_version"

//go:embed defaults
var defaults embed.FS

// Default returns the embedded migrations for a database of the default
// project (rulesdb, memorydb).
func Default(name string) (fs.FS, bool) {
	sub, err := fs.Sub(defaults, path.Join("defaults", name))
	if err != nil {
		return nil, false
	}
	if entries, err := fs.ReadDir(sub, "."); err != nil || len(entries) == 0 {
		return nil, false
	}
	return sub, true
}

// Source is where a database's migrations come from.
type Source struct {
	FS   fs.FS
	Name string // a folder, or "(embedded) <db>" for the defaults
}

// SourceFor returns the migration source of a database: the folder when one
// is configured (it must exist: bad input otherwise), else the embedded
// default set. ok is false when the database has neither.
func SourceFor(db, folder string) (src Source, ok bool, err error) {
	if folder != "" {
		st, err := os.Stat(folder)
		if err != nil || !st.IsDir() {
			return Source{}, false, fault.BadInput(fmt.Errorf("migrations of %s: folder %s does not exist; create it or fix migrations: in aidb.yaml", db, folder))
		}
		return Source{FS: os.DirFS(folder), Name: folder}, true, nil
	}
	if f, ok := Default(db); ok {
		return Source{FS: f, Name: "(embedded) " + db}, true, nil
	}
	return Source{}, false, nil
}

// Options tunes a Runner.
type Options struct {
	// LockTimeout bounds the wait for another run's lock (default 5 min).
	LockTimeout time.Duration
	// OnWait is told once when the lock is held by another run.
	OnWait func(holder string)
}

// Runner runs one database's migrations.
type Runner struct {
	provider *goose.Provider
	src      Source
	last     *lastStatement
}

// lockID is the advisory lock key of migrations: goose's own, so a goose
// CLI run elsewhere on the same database waits for aidb and vice versa.
const lockID = lock.DefaultLockID

// Open prepares a Runner on the database at connString. Bad migration files
// (names without a version, duplicate versions) are bad input; the
// connection is made lazily by the first operation.
func Open(connString string, src Source, opts Options) (*Runner, error) {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Minute
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	// Named, so a run waiting for the lock can say who holds it.
	cfg.RuntimeParams["application_name"] = "aidb migrate"
	// Ctrl-C must stop the statement on the server, not only drop the
	// connection (pgx's default): a server that never hears of it runs a
	// long migration to its end, holding the migration lock all along.
	// The server cancels the statement, the migration's transaction rolls
	// back and the lock is released before aidb exits.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 3 * time.Second}
	}
	db := stdlib.OpenDB(*cfg)
	inner, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID),
		lock.WithLockTimeout(1, uint64(max(1, opts.LockTimeout/time.Second))))
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	locker := &sayingLocker{inner: inner, onWait: opts.OnWait}
	last := &lastStatement{}
	p, err := goose.NewProvider(goose.DialectPostgres, db, src.FS,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithTableName(Table),
		// goose logs each statement before running it; the last one logged
		// is the one that failed.
		goose.WithVerbose(true),
		goose.WithSlog(slog.New(last)),
	)
	if err != nil {
		_ = db.Close()
		return nil, fault.BadInput(fmt.Errorf("migrations in %s: %w", src.Name, err))
	}
	return &Runner{provider: p, src: src, last: last}, nil
}

// Close closes the database connection.
func (r *Runner) Close() error { return r.provider.Close() }

// Applied is one migration a run applied or reverted.
type Applied struct {
	Version   int64         `json:"version"`
	File      string        `json:"file"`
	Direction string        `json:"direction"`
	Duration  time.Duration `json:"-"`
}

// MarshalJSON writes the duration as duration_s, in seconds, as every aidb
// document does.
func (a Applied) MarshalJSON() ([]byte, error) {
	type fields Applied
	return json.Marshal(struct {
		fields
		Seconds float64 `json:"duration_s"`
	}{fields(a), a.Duration.Seconds()})
}

// Up applies every pending migration, each in its own transaction. A failing
// migration is rolled back and reported with its file, the statement and
// the SQL error; the ones before it stay applied, and the next run retries
// from it.
func (r *Runner) Up(ctx context.Context) ([]Applied, error) {
	res, err := r.provider.Up(ctx)
	return r.results(res, err), r.explain(err)
}

// UpTo applies the pending migrations up to and including version.
func (r *Runner) UpTo(ctx context.Context, version int64) ([]Applied, error) {
	res, err := r.provider.UpTo(ctx, version)
	return r.results(res, err), r.explain(err)
}

// VersionError is a target version below 0: bad input.
type VersionError struct{ Version int64 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("target version %d: a version is 0 or more", e.Version)
}

// Kind is fault.Invalid.
func (e *VersionError) Kind() fault.Kind { return fault.Invalid }

// DownTo reverts applied migrations newer than version (0: all of them); a
// negative version is a VersionError.
func (r *Runner) DownTo(ctx context.Context, version int64) ([]Applied, error) {
	if version < 0 {
		return nil, &VersionError{Version: version}
	}
	res, err := r.provider.DownTo(ctx, version)
	return r.results(res, err), r.explain(err)
}

// Down reverts the newest applied migration.
func (r *Runner) Down(ctx context.Context) ([]Applied, error) {
	res, err := r.provider.Down(ctx)
	if err != nil {
		if errors.Is(err, goose.ErrNoNextVersion) {
			return nil, nil
		}
		return nil, r.explain(err)
	}
	return r.results([]*goose.MigrationResult{res}, nil), nil
}

// Status is where a database stands.
type Status struct {
	// Version is the newest applied migration (0: none).
	Version int64 `json:"version"`
	// Latest is the newest migration in the source.
	Latest int64 `json:"latest"`
	// Pending lists the files not applied yet.
	Pending []string `json:"pending"`
	// Applied lists the files applied, oldest first.
	Applied []string `json:"applied"`
}

// Status reports the applied version and the pending migrations.
func (r *Runner) Status(ctx context.Context) (Status, error) {
	list, err := r.provider.Status(ctx)
	if err != nil {
		return Status{}, r.explain(err)
	}
	st := Status{Pending: []string{}, Applied: []string{}}
	for _, m := range list {
		st.Latest = max(st.Latest, m.Source.Version)
		if m.State == goose.StateApplied {
			st.Version = max(st.Version, m.Source.Version)
			st.Applied = append(st.Applied, path.Base(m.Source.Path))
		} else {
			st.Pending = append(st.Pending, path.Base(m.Source.Path))
		}
	}
	return st, nil
}

// Version is the database's applied migration version (0: none applied, or
// no bookkeeping table).
func (r *Runner) Version(ctx context.Context) (int64, error) {
	v, err := r.provider.GetDBVersion(ctx)
	return v, r.explain(err)
}

// results lists the migrations res applied; when err is goose's
// PartialError (one failed or was interrupted), the ones before it, which
// stay applied.
func (r *Runner) results(res []*goose.MigrationResult, err error) []Applied {
	in := res
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		in = partial.Applied
	}
	out := make([]Applied, 0, len(in))
	for _, m := range in {
		out = append(out, Applied{Version: m.Source.Version, File: path.Base(m.Source.Path), Direction: m.Direction, Duration: m.Duration})
	}
	return out
}

// MigrationError is a migration that failed and was rolled back.
type MigrationError struct {
	File string
	// Statement is the failing statement, shortened.
	Statement string
	// Position is the character in the statement where PostgreSQL located
	// the error (0: not given).
	Position int32
	Err      error
}

func (e *MigrationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "migration %s failed and was rolled back", e.File)
	if e.Statement != "" {
		fmt.Fprintf(&b, "; statement: %s", e.Statement)
	}
	if e.Position > 0 {
		fmt.Fprintf(&b, " (at character %d)", e.Position)
	}
	var pg *pgconn.PgError
	if errors.As(e.Err, &pg) {
		fmt.Fprintf(&b, ": %s: %s (SQLSTATE %s)", pg.Severity, pg.Message, pg.Code)
	} else {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	b.WriteString("; fix the file and run migrate again: it resumes at this migration")
	return b.String()
}

func (e *MigrationError) Unwrap() error { return e.Err }

// explain turns goose's errors into ones that say which file, what went
// wrong, and what to do.
func (r *Runner) explain(err error) error {
	if err == nil {
		return nil
	}
	var partial *goose.PartialError
	if errors.As(err, &partial) {
		me := &MigrationError{File: path.Base(partial.Failed.Source.Path), Err: partial.Err}
		var pg *pgconn.PgError
		if errors.As(partial.Err, &pg) {
			me.Position = pg.Position
		}
		me.Statement = shorten(r.last.statement(), 200)
		return me
	}
	// goose parses every pending file before it runs any; a file it cannot
	// parse (no "-- +goose Up", an unterminated StatementBegin) stops the
	// run with nothing applied. goose has no typed error for it.
	if strings.Contains(err.Error(), "failed to prepare migration") || strings.Contains(err.Error(), "failed to parse") {
		return fault.BadInput(fmt.Errorf("migrations in %s: %w; nothing was applied", r.src.Name, err))
	}
	return err
}

func shorten(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// sayingLocker is goose's Postgres session locker, plus one message when
// the lock is held by someone else, so a waiting run says why it waits.
type sayingLocker struct {
	inner  lock.SessionLocker
	onWait func(holder string)
}

func (l *sayingLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", lockID).Scan(&got); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	if got {
		return nil
	}
	if l.onWait != nil {
		holder := "another session"
		var pid int64
		var app, since string
		err := conn.QueryRowContext(ctx, `
			SELECT a.pid, coalesce(a.application_name, ''), coalesce(to_char(a.backend_start, 'HH24:MI:SS'), '')
			FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.granted
			  AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid
			LIMIT 1`, lockID).Scan(&pid, &app, &since)
		if err == nil {
			holder = fmt.Sprintf("server process %d (connected since %s)", pid, since)
			if app != "" {
				holder += ", application " + app
			}
		}
		l.onWait(holder)
	}
	if err := l.inner.SessionLock(ctx, conn); err != nil {
		return fmt.Errorf("wait for the migration lock: %w", err)
	}
	return nil
}

func (l *sayingLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	return l.inner.SessionUnlock(ctx, conn)
}

// lastStatement is a slog.Handler that keeps the statement of goose's last
// "executing statement" record and drops everything else.
type lastStatement struct {
	mu   sync.Mutex
	stmt string
}

func (h *lastStatement) Enabled(context.Context, slog.Level) bool { return true }
func (h *lastStatement) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lastStatement) WithGroup(string) slog.Handler            { return h }

func (h *lastStatement) Handle(_ context.Context, rec slog.Record) error {
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "statement" {
			h.mu.Lock()
			h.stmt = a.Value.String()
			h.mu.Unlock()
			return false
		}
		return true
	})
	return nil
}

func (h *lastStatement) statement() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stmt
}
