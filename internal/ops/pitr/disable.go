package pitr

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
)

// DisableResult is point-in-time recovery turned off for a database.
type DisableResult struct {
	Database string `json:"database"`
	// Stream is the sidecar removed ("" when there was none).
	Stream string `json:"stream_removed,omitempty"`
	// Slot is the replication slot dropped ("" when there was none).
	Slot string `json:"slot_dropped,omitempty"`
	// Folders hold the segments and base backups, kept.
	Folders Folders `json:"kept"`
}

// Disable turns point-in-time recovery off for db: its WAL sidecar is
// removed and its replication slot dropped, so the server holds no WAL
// back for it any more. The segments and base backups stay in the folder
// (a restore to a time inside the window they cover still works), as do
// the pg_hba.conf line and max_slot_wal_keep_size, which allow and bound
// but keep nothing. The database must answer, or nothing is changed; with
// neither a sidecar nor a slot it is bad input.
func Disable(ctx context.Context, e Streams, db compose.Database, backupDir string) (DisableResult, error) {
	res := DisableResult{Database: db.Name, Folders: FoldersOf(backupDir, db)}
	conn, err := pgx.Connect(ctx, e.ConnString(db))
	if err != nil {
		return res, fmt.Errorf("connect to %s to drop its replication slot (nothing was changed; aidb up %s first): %w", db.Name, db.Name, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	slot := SlotName(db.Service)
	var hasSlot bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", slot).Scan(&hasSlot); err != nil {
		return res, fmt.Errorf("read the replication slots of %s: %w", db.Name, err)
	}
	stream, err := e.WALStream(ctx, db)
	if err != nil {
		return res, err
	}
	if stream == nil && !hasSlot {
		return res, fault.BadInput(fmt.Errorf("%s has no WAL stream and no slot %s: point-in-time recovery is off", db.Name, slot))
	}
	if res.Stream, err = e.RemoveWALStream(ctx, db); err != nil {
		return res, fmt.Errorf("remove the WAL stream of %s: %w", db.Name, err)
	}
	if hasSlot {
		if err := dropSlot(ctx, conn, slot); err != nil {
			return res, fmt.Errorf("drop replication slot %s of %s (the stream is removed; run aidb pitr disable %s again): %w", slot, db.Name, db.Name, err)
		}
		res.Slot = slot
	}
	return res, nil
}

// dropSlot drops the slot, waiting up to 10 s for the server to end the
// removed sidecar's walsender, which still holds it active.
func dropSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot($1)", slot)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		var active bool
		if qerr := conn.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&active); qerr != nil {
			if errors.Is(qerr, pgx.ErrNoRows) {
				return nil
			}
			return err
		}
		if !active {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}
