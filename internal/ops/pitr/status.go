package pitr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/orchestrator"
)

// TakeBaseBackup takes a base backup of db, which must run, into its base
// folder under backupDir (TakeBase).
func TakeBaseBackup(ctx context.Context, e Streams, db compose.Database, backupDir string) (Base, error) {
	image, err := e.Image(ctx, db)
	if err != nil {
		return Base{}, err
	}
	conn, err := pgx.Connect(ctx, e.ConnString(db))
	if err != nil {
		return Base{}, fmt.Errorf("connect to %s: %w; is it up (aidb up %s)?", db.Name, err, db.Name)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return TakeBase(ctx, e, conn, db, image, FoldersOf(backupDir, db).Base)
}

// Slot is what pg_replication_slots says of the stream's slot.
type Slot struct {
	Name   string `json:"name"`
	Active bool   `json:"active"`
	// Retained is the WAL the slot holds back on the server, in bytes.
	Retained int64 `json:"retained_bytes"`
	// WALStatus is reserved, extended, unreserved or lost (lost: past
	// max_slot_wal_keep_size; a new base backup is needed).
	WALStatus string `json:"wal_status"`
	// Lag is the WAL the server wrote that the stream has not yet
	// flushed to the folder, in bytes: up to the stream's flush position
	// as the server last heard it (with no stream connected, up to the
	// slot's restart point).
	Lag int64 `json:"lag_bytes"`
}

// Status is one database's PITR as cheaply known: the sidecar, the slot
// (when the database answers) and the window from the folders.
type Status struct {
	Database string                  `json:"database"`
	Stream   *orchestrator.WALStream `json:"stream"`
	Slot     *Slot                   `json:"slot"`
	Window   *Window                 `json:"window"`
	// Problem says what could not be read ("": nothing).
	Problem string `json:"problem,omitempty"`
}

// String is one line for people.
func (s Status) String() string {
	parts := []string{s.Database + ":"}
	switch {
	case s.Stream == nil:
		parts = append(parts, "no WAL stream")
	case s.Stream.Running:
		parts = append(parts, "stream "+s.Stream.Container+" running")
	default:
		parts = append(parts, "stream "+s.Stream.Container+" stopped")
	}
	if s.Slot != nil {
		parts = append(parts, fmt.Sprintf("slot %s (active %t, %s) holds %d bytes back, %d bytes not yet streamed", s.Slot.Name, s.Slot.Active, s.Slot.WALStatus, s.Slot.Retained, s.Slot.Lag))
	}
	if s.Window != nil {
		parts = append(parts, "recoverable from "+s.Window.String())
		if s.Window.Newest != "" {
			parts = append(parts, "newest whole segment "+s.Window.Newest)
		}
	}
	if s.Problem != "" {
		parts = append(parts, "("+s.Problem+")")
	}
	return strings.Join(parts, " ")
}

// StatusOf reads db's PITR status; a database that does not answer or has
// no base backup yet is a Problem, not an error.
func StatusOf(ctx context.Context, e Streams, db compose.Database, backupDir string) (Status, error) {
	st := Status{Database: db.Name}
	var err error
	if st.Stream, err = e.WALStream(ctx, db); err != nil {
		return st, err
	}
	if p, err := PlanRestore(db, backupDir, zeroTime); err == nil {
		st.Window = &p.Window
	} else if st.Stream != nil {
		var nw *NoWindowError
		if !errors.As(err, &nw) {
			st.Problem = err.Error()
		} else {
			st.Problem = nw.Reason
		}
	}
	if st.Stream == nil {
		return st, nil
	}
	conn, err := pgx.Connect(ctx, e.ConnString(db))
	if err != nil {
		st.Problem = "the database does not answer"
		return st, nil
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	sl := Slot{Name: st.Stream.Slot}
	err = conn.QueryRow(ctx, `SELECT s.active, coalesce(pg_current_wal_lsn() - s.restart_lsn, 0)::bigint, coalesce(s.wal_status, ''),
		coalesce(pg_current_wal_lsn() - coalesce(r.flush_lsn, s.restart_lsn), 0)::bigint
		FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
		WHERE s.slot_name = $1`, sl.Name).Scan(&sl.Active, &sl.Retained, &sl.WALStatus, &sl.Lag)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		st.Problem = "slot " + sl.Name + " is missing: aidb pitr enable " + db.Name + " makes it again"
	case err != nil:
		st.Problem = "read slot " + sl.Name + ": " + err.Error()
	default:
		st.Slot = &sl
	}
	return st, nil
}

// Behind says why the stream does not keep up within limit bytes of WAL,
// "" when it does: it is not running, its slot is missing or lost WAL
// (past max_slot_wal_keep_size: a gap), the database could not be read,
// or more than limit bytes are not yet streamed.
func (s Status) Behind(limit int64) string {
	switch {
	case s.Stream == nil:
		return "no WAL stream: aidb pitr enable " + s.Database + " starts one"
	case s.Slot != nil && s.Slot.WALStatus == "lost":
		// Before "not running": a sidecar started again cannot resume.
		return "slot " + s.Slot.Name + " lost WAL past max_slot_wal_keep_size: the window has a gap; aidb pitr enable " + s.Database + " makes the slot anew and takes a base backup"
	case !s.Stream.Running:
		return "WAL stream " + s.Stream.Container + " is not running: aidb up starts it"
	case s.Slot == nil:
		return s.Problem
	case s.Slot.Lag > limit:
		return fmt.Sprintf("%d bytes of WAL not yet streamed, more than %d", s.Slot.Lag, limit)
	}
	return ""
}

// LagError is a WAL stream that does not keep up (Status.Behind): exit 4,
// as a stale backup.
type LagError struct{ Behind []Status }

func (e *LagError) Error() string {
	parts := make([]string, len(e.Behind))
	for i, s := range e.Behind {
		parts[i] = s.Database + ": " + s.Problem
	}
	return "WAL stream behind: " + strings.Join(parts, "; ")
}

// Kind is fault.Stale.
func (e *LagError) Kind() fault.Kind { return fault.Stale }

// CheckLag reads the status of dbs with PITR on (a stream or a window;
// every one of named, which the caller sets when the user named them)
// and says, in each one's Problem, why its stream does not keep up within
// limit bytes; those are the LagError. With no database to check, it is
// bad input.
func CheckLag(ctx context.Context, e Streams, dbs []compose.Database, named bool, backupDir string, limit int64) ([]Status, error) {
	var out, behind []Status
	for _, db := range dbs {
		st, err := StatusOf(ctx, e, db, backupDir)
		if err != nil {
			return out, err
		}
		if !named && st.Stream == nil && st.Window == nil {
			continue
		}
		if why := st.Behind(limit); why != "" {
			st.Problem = why
			behind = append(behind, st)
		} else {
			st.Problem = ""
		}
		out = append(out, st)
	}
	if len(out) == 0 {
		return nil, fault.BadInput(errors.New("--max-wal-lag: no database has point-in-time recovery on (aidb pitr enable <db> turns it on)"))
	}
	if len(behind) > 0 {
		return out, &LagError{Behind: behind}
	}
	return out, nil
}

// Listed is one database's base backups and recoverable window, as aidb
// list shows them.
type Listed struct {
	Database string  `json:"database"`
	Bases    []Base  `json:"base_backups"`
	Window   *Window `json:"window,omitempty"`
	// Problem says why there is no window ("": there is one).
	Problem string `json:"problem,omitempty"`
}

// ListFolder lists, of each of dbs with base backups in the folder, its
// whole base backups (oldest first) and its recoverable window.
func ListFolder(backupDir string, dbs []compose.Database) ([]Listed, error) {
	out := []Listed{}
	for _, db := range dbs {
		bases, err := Bases(os.DirFS(FoldersOf(backupDir, db).Base))
		if err != nil {
			return nil, err
		}
		if len(bases) == 0 {
			continue
		}
		l := Listed{Database: db.Name, Bases: bases}
		p, err := PlanRestore(db, backupDir, time.Time{})
		if err != nil {
			l.Problem = err.Error()
		} else {
			l.Window = &p.Window
		}
		out = append(out, l)
	}
	return out, nil
}
