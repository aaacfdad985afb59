// Package pitr is point-in-time recovery (aidb pitr, aidb restore
// --to-time): a database's WAL streamed by a sidecar running
// pg_receivewal on a replication slot into <backupdir>/wal/<db>/, base
// backups by pg_basebackup in <backupdir>/base/<db>/<timestamp>/, the
// window those make recoverable, and the restore of a base backup and WAL
// into a new volume that the database is then switched to as aidb upgrade
// switches (kept until --finish, undone by --rollback).
package pitr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/mount"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/orchestrator"
)

// Streams is what point-in-time recovery asks of the engine
// (*engine.Engine satisfies it).
type Streams interface {
	Image(ctx context.Context, db compose.Database) (string, error)
	ConnString(db compose.Database) string
	WALStream(ctx context.Context, db compose.Database) (*orchestrator.WALStream, error)
	WALNetwork(db compose.Database) (netName, host string)
	StartWALStream(ctx context.Context, db compose.Database, slot, dir string, synchronous bool) error
	RemoveWALStream(ctx context.Context, db compose.Database) (string, error)
	WALStreamLogs(ctx context.Context, db compose.Database, n int) (string, error)
	RunOnce(ctx context.Context, db compose.Database, s pgtools.OneShot) (string, error)
	ExecAs(ctx context.Context, db compose.Database, user string, cmd []string) (string, error)
}

// Folders are where a database's stream and base backups live.
type Folders struct{ WAL, Base string }

// FoldersOf are db's folders under the backup folder dir.
func FoldersOf(dir string, db compose.Database) Folders {
	return Folders{WAL: filepath.Join(dir, "wal", db.Name), Base: filepath.Join(dir, "base", db.Name)}
}

// EnableRequest turns PITR on for one database.
type EnableRequest struct {
	DB        compose.Database
	BackupDir string
	// MaxSlotWALKeep is max_slot_wal_keep_size ("": DefaultMaxSlotWALKeep).
	MaxSlotWALKeep string
	// Synchronous runs pg_receivewal --synchronous (each write flushed
	// and reported at once); the server waits for it only where its
	// synchronous_standby_names names aidb-wal, which aidb does not set.
	Synchronous bool
	Progress    func(string)
}

// EnableResult says what enable set up.
type EnableResult struct {
	Database       string `json:"database"`
	Slot           string `json:"slot"`
	Stream         string `json:"stream"`
	Folder         string `json:"wal_folder"`
	MaxSlotWALKeep string `json:"max_slot_wal_keep_size"`
	HBAAdded       bool   `json:"hba_line_added"`
	// SetAside is where a folder of another lineage was moved ("": none).
	SetAside   string `json:"wal_folder_set_aside,omitempty"`
	Base       Base   `json:"base_backup"`
	BaseFolder string `json:"base_folder"`
}

func progress(fn func(string), format string, args ...any) {
	if fn != nil {
		fn(fmt.Sprintf(format, args...))
	}
}

// streamTimeout bounds the wait for the sidecar's stream to show as
// active on the server after it starts.
const streamTimeout = 60 * time.Second

// Enable turns PITR on for req.DB, which must run: the server allows
// replication from the project network (HBALine, reloaded), bounds what
// the slot may hold back (max_slot_wal_keep_size by ALTER SYSTEM and a
// reload), the slot is made (reserving WAL from now), the sidecar starts
// streaming into the folder, and the first base backup is taken. Again on
// a database with PITR on, it changes nothing that is set and takes a new
// base backup.
func Enable(ctx context.Context, e Streams, req EnableRequest) (EnableResult, error) {
	db := req.DB
	keep := req.MaxSlotWALKeep
	if keep == "" {
		keep = DefaultMaxSlotWALKeep
	}
	if err := CheckSize(keep); err != nil {
		return EnableResult{}, err
	}
	f := FoldersOf(req.BackupDir, db)
	res := EnableResult{Database: db.Name, Slot: SlotName(db.Service), Folder: f.WAL, MaxSlotWALKeep: keep, BaseFolder: f.Base}
	image, err := e.Image(ctx, db)
	if err != nil {
		return res, err
	}
	conn, err := pgx.Connect(ctx, e.ConnString(db))
	if err != nil {
		return res, fmt.Errorf("connect to %s: %w; is it up (aidb up %s)?", db.Name, err, db.Name)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	progress(req.Progress, "%s: allowing replication connections and setting max_slot_wal_keep_size = %s", db.Name, keep)
	if res.HBAAdded, err = configure(ctx, e, conn, db, keep); err != nil {
		return res, err
	}
	if err := createSlot(ctx, conn, res.Slot); err != nil {
		return res, err
	}
	if res.SetAside, err = setAsideForeign(ctx, conn, e, db, f.WAL); err != nil {
		return res, err
	} else if res.SetAside != "" {
		progress(req.Progress, "%s: %s holds WAL of another timeline (a restore to a time or its rollback since): set aside as %s", db.Name, f.WAL, res.SetAside)
	}
	progress(req.Progress, "%s: streaming WAL from slot %s into %s", db.Name, res.Slot, f.WAL)
	if err := prepareFolder(ctx, e, db, image, f.WAL); err != nil {
		return res, err
	}
	if err := e.StartWALStream(ctx, db, res.Slot, f.WAL, req.Synchronous); err != nil {
		return res, err
	}
	if err := waitStreaming(ctx, e, conn, db, res.Slot); err != nil {
		return res, err
	}
	if s, err := e.WALStream(ctx, db); err == nil && s != nil {
		res.Stream = s.Container
	}
	progress(req.Progress, "%s: taking a base backup into %s", db.Name, f.Base)
	res.Base, err = TakeBase(ctx, e, conn, db, image, f.Base)
	return res, err
}

// configure checks the server's WAL settings and sets what PITR needs;
// it says whether it added the pg_hba.conf line.
func configure(ctx context.Context, e Streams, conn *pgx.Conn, db compose.Database, keep string) (bool, error) {
	var level, hba string
	var senders int
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level'), current_setting('max_wal_senders')::int, current_setting('hba_file')").Scan(&level, &senders, &hba); err != nil {
		return false, fmt.Errorf("read the WAL settings of %s: %w", db.Name, err)
	}
	if level == "minimal" {
		return false, fault.BadInput(fmt.Errorf("%s runs with wal_level=minimal: PITR needs replica (PostgreSQL's default); remove the setting from its command or configuration and run aidb up %s; nothing was changed", db.Name, db.Name))
	}
	if senders < 3 {
		return false, fault.BadInput(fmt.Errorf("%s runs with max_wal_senders=%d: PITR needs 3 (the stream, and pg_basebackup's two); raise it and run aidb up %s; nothing was changed", db.Name, senders, db.Name))
	}
	// grep -x: the whole line, as written; appended only when absent.
	out, err := e.ExecAs(ctx, db, "postgres", []string{"sh", "-c", `grep -qxF "$1" "$2" && echo present || { printf '%s\n' "$1" >>"$2" && echo added; }`, "sh", HBALine, hba})
	if err != nil {
		return false, fmt.Errorf("allow replication connections in %s's %s: %w", db.Name, hba, err)
	}
	// ALTER SYSTEM takes no parameters; keep passed CheckSize.
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET max_slot_wal_keep_size = '"+keep+"'"); err != nil {
		return false, fmt.Errorf("set max_slot_wal_keep_size on %s: %w", db.Name, err)
	}
	// PostgreSQL 17 summarizes WAL for incremental base backups: each
	// base backup after the first holds only the blocks changed since.
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return false, fmt.Errorf("read %s's version: %w", db.Name, err)
	}
	if version >= 170000 {
		if _, err := conn.Exec(ctx, "ALTER SYSTEM SET summarize_wal = on"); err != nil {
			return false, fmt.Errorf("set summarize_wal on %s: %w", db.Name, err)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return false, fmt.Errorf("reload %s's configuration: %w", db.Name, err)
	}
	return out == "added\n", nil
}

// createSlot makes the physical replication slot, reserving WAL from now,
// unless it exists (and has not lost its WAL).
func createSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	// A slot that lost its WAL (past max_slot_wal_keep_size) serves no
	// stream again: it is dropped and made anew, reserving from now.
	if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE slot_name = $1 AND wal_status = 'lost' AND NOT active`, slot); err != nil {
		return fmt.Errorf("drop replication slot %s, which lost its WAL: %w", slot, err)
	}
	_, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)
		WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, slot)
	if err != nil {
		return fmt.Errorf("create replication slot %s: %w", slot, err)
	}
	return nil
}

// prepareFolder makes the stream folder and gives it to the image's
// postgres user, who writes the segments (and reads them when a server
// of that image recovers); it stays listable by everyone.
func prepareFolder(ctx context.Context, e Streams, db compose.Database, image, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create WAL folder %s: %w", dir, err)
	}
	_, err := e.RunOnce(ctx, db, pgtools.OneShot{Image: image, User: "0", Entrypoint: []string{"sh", "-c"},
		Cmd:     []string{"chown postgres:postgres " + orchestrator.WALMount + " && chmod 0755 " + orchestrator.WALMount},
		Mounts:  []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: orchestrator.WALMount}},
		Timeout: 2 * time.Minute})
	if err != nil {
		return fmt.Errorf("give WAL folder %s to the postgres user of %s: %w", dir, image, err)
	}
	return nil
}

// waitStreaming waits (at most streamTimeout) until the slot is in use:
// the sidecar connected. Otherwise its last lines say why.
func waitStreaming(ctx context.Context, e Streams, conn *pgx.Conn, db compose.Database, slot string) error {
	deadline := time.Now().Add(streamTimeout)
	for {
		var active bool
		err := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read replication slot %s: %w", slot, err)
		}
		if active {
			return nil
		}
		if time.Now().After(deadline) {
			logs, _ := e.WALStreamLogs(context.WithoutCancel(ctx), db, 20)
			return fmt.Errorf("%s: the WAL stream did not connect to slot %s within %s; its last lines:\n%s\nfix that and run aidb pitr enable %s again", db.Name, slot, streamTimeout, logs, db.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
