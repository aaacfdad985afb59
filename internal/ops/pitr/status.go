package pitr

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/compose"
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
		parts = append(parts, fmt.Sprintf("slot %s (active %t, %s) holds %d bytes back", s.Slot.Name, s.Slot.Active, s.Slot.WALStatus, s.Slot.Retained))
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
	err = conn.QueryRow(ctx, `SELECT active, coalesce(pg_current_wal_lsn() - restart_lsn, 0)::bigint, coalesce(wal_status, '')
		FROM pg_replication_slots WHERE slot_name = $1`, sl.Name).Scan(&sl.Active, &sl.Retained, &sl.WALStatus)
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
