// Package oplock makes aidb's operations on a database take turns: a
// PostgreSQL session advisory lock per database, held on its own connection
// for as long as the operation runs, plus an exclusive lock file in the
// backup folder for operations that write there. A second operation waits,
// saying who holds the lock, up to a timeout.
package oplock

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/aidb/aidb/internal/fault"
)

// DefaultTimeout is how long an operation waits for another's lock.
const DefaultTimeout = 5 * time.Minute

// sqlstateLockNotAvailable is lock_not_available: the server ended the
// wait for the lock at lock_timeout.
const sqlstateLockNotAvailable = "55P03"

// BusyError says another operation held a lock for longer than this one
// would wait: a database's operation lock (Database) or a backup folder's
// lock file (Folder).
type BusyError struct {
	Database string
	Folder   string
	// Holder describes who holds it ("aidb backup (pid 12), since 10:04:05").
	Holder  string
	Timeout time.Duration
}

func (e *BusyError) Error() string {
	if e.Folder != "" {
		return fmt.Sprintf("the backup folder %s is busy: %s has held its lock for longer than %s", e.Folder, e.Holder, e.Timeout)
	}
	return fmt.Sprintf("%s is busy: %s has held its operation lock for longer than %s", e.Database, e.Holder, e.Timeout)
}

// Kind is fault.Busy.
func (e *BusyError) Kind() fault.Kind { return fault.Busy }

// DBLock is a held database lock.
type DBLock struct {
	conn *pgx.Conn
	key  int64
}

// key is the advisory lock key for a database name: the same on every
// aidb, different per database.
func key(dbname string) int64 {
	h := fnv.New64a()
	h.Write([]byte("aidb operation lock\x00" + dbname))
	return int64(h.Sum64())
}

// Database takes the operation lock of the database connString names. The
// lock lives in the server's maintenance database (postgres, or template1
// for a database named postgres), so it survives a restore that renames
// the target away. op names the operation for whoever waits ("aidb
// restore"). When another session holds the lock, onWait is told once,
// with the holder, before the wait; the wait ends after timeout with a
// BusyError naming the holder.
func Database(ctx context.Context, connString, op string, timeout time.Duration, onWait func(holder string)) (*DBLock, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	target := cfg.Database
	maint := "postgres"
	if target == maint {
		maint = "template1"
	}
	u, err := url.Parse(connString)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + maint
	cfg, err = pgx.ParseConfig(u.String())
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = fmt.Sprintf("%s (pid %d)", op, os.Getpid())
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect for the operation lock of %s: %w", target, err)
	}
	l := &DBLock{conn: conn, key: key(target)}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&got); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("take the operation lock of %s: %w", target, err)
	}
	if got {
		return l, nil
	}
	holder := l.holder(ctx)
	if onWait != nil {
		onWait(holder)
	}
	// The server ends the wait at the timeout (lock_not_available); Ctrl-C
	// cancels the query.
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET lock_timeout = %d", timeout.Milliseconds())); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1)", l.key)
	if err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == sqlstateLockNotAvailable {
			return nil, &BusyError{Database: target, Holder: holder, Timeout: timeout}
		}
		return nil, fmt.Errorf("wait for the operation lock of %s: %w", target, err)
	}
	_, _ = conn.Exec(ctx, "SET lock_timeout = 0")
	return l, nil
}

// holder describes the session holding the lock.
func (l *DBLock) holder(ctx context.Context) string {
	var app string
	var since time.Time
	err := l.conn.QueryRow(ctx, `
		SELECT coalesce(a.application_name, ''), a.backend_start
		FROM pg_catalog.pg_locks k JOIN pg_catalog.pg_stat_activity a ON a.pid = k.pid
		WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1
		  AND k.classid = (($1::bigint >> 32) & 4294967295)::oid AND k.objid = ($1::bigint & 4294967295)::oid
		LIMIT 1`, l.key).Scan(&app, &since)
	if err != nil || app == "" {
		return "another session"
	}
	return fmt.Sprintf("%s, since %s", app, since.Local().Format("15:04:05"))
}

// Release gives the lock up (closing its connection), also after Ctrl-C.
func (l *DBLock) Release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return l.conn.Close(ctx)
}

// FolderLock is a held backup-folder lock.
type FolderLock struct{ f *os.File }

// Folder takes the exclusive lock file of a backup folder (.aidb.lock),
// trying every 200 ms for up to timeout (then a BusyError); onWait is
// told once, with the holder, when another aidb holds it. The lock is a
// flock on the file, so the kernel drops it when its holder dies: a file
// left by a killed run does not block (on Windows, LockFileEx, which the
// system also drops with its holder). The file records the holder for the
// messages of those who wait.
func Folder(ctx context.Context, dir, op string, timeout time.Duration, onWait func(holder string)) (*FolderLock, error) {
	path := filepath.Join(dir, ".aidb.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("the backup folder %s is not writable (%w): aidb writes its lock file and the backups there, so nothing was done; make it writable, or set AIDB_BACKUP_DIR to a folder that is",
			dir, errors.Unwrap(err))
	}
	if err != nil {
		return nil, fmt.Errorf("open the backup folder lock %s: %w", path, err)
	}
	deadline := time.Now().Add(timeout)
	told := false
	for {
		err := tryLock(f)
		if err == nil {
			break
		}
		if !errors.Is(err, errLocked) {
			_ = f.Close()
			return nil, fmt.Errorf("lock the backup folder %s: %w", dir, err)
		}
		holder := "another aidb"
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			holder = strings.TrimSpace(string(b))
		}
		if !told && onWait != nil {
			onWait(holder)
			told = true
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, &BusyError{Folder: dir, Holder: holder, Timeout: timeout}
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%s (pid %d, since %s)\n", op, os.Getpid(), time.Now().Format("15:04:05"))), 0)
	return &FolderLock{f: f}, nil
}

// Release gives the folder lock up.
func (l *FolderLock) Release() error {
	_ = l.f.Truncate(0)
	return l.f.Close()
}
