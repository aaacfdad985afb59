package pitr

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/compose"
)

// Foreign says whether a stream folder holding names cannot be resumed
// by a server on timeline tli at position current whose slot keeps WAL
// from kept on: its newest segment (whole or partial) is on another
// timeline, past the server's position, or before the slot's first
// segment. pg_receivewal resumes from the newest segment of its folder,
// which such a server cannot serve (a restore to a time forked a new
// timeline; a rollback went back to an older one; the slot lost its WAL
// past max_slot_wal_keep_size and was made anew: a gap).
func Foreign(names []string, tli uint32, current, kept LSN, segSize uint64) bool {
	var newest Segment
	found, partial := false, false
	for _, n := range names {
		s, ok := ParseSegment(strings.TrimSuffix(n, ".partial"), segSize)
		if !ok {
			continue
		}
		if !found || s.Timeline > newest.Timeline || (s.Timeline == newest.Timeline && s.SegNo > newest.SegNo) {
			newest, found, partial = s, true, strings.HasSuffix(n, ".partial")
		}
	}
	// pg_receivewal resumes in its newest segment when that is partial,
	// else in the one after it.
	resume := newest.SegNo
	if !partial {
		resume++
	}
	return found && (newest.Timeline != tli || newest.SegNo > uint64(current)/segSize || resume < uint64(kept)/segSize)
}

// setAsideForeign moves a stream folder the server cannot resume
// (Foreign: another lineage, or a gap before its slot) to <folder>-until-<time>, keeping every file, so the new
// stream starts in an empty folder. It returns where it moved it ("":
// not moved). The caller has removed the sidecar writing into it.
func setAsideForeign(ctx context.Context, conn *pgx.Conn, e Streams, db compose.Database, dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("list WAL folder %s: %w", dir, err)
	}
	names := make([]string, len(entries))
	for i, en := range entries {
		names[i] = en.Name()
	}
	var tli uint32
	var lsn, restart string
	var size uint64
	if err := conn.QueryRow(ctx, `SELECT timeline_id, pg_current_wal_lsn()::text, (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
		coalesce((SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1), '0/0')
		FROM pg_control_checkpoint()`, SlotName(db.Service)).Scan(&tli, &lsn, &size, &restart); err != nil {
		return "", fmt.Errorf("read %s's timeline: %w", db.Name, err)
	}
	current, err := ParseLSN(lsn)
	if err != nil {
		return "", err
	}
	kept, err := ParseLSN(restart)
	if err != nil || !Foreign(names, tli, current, kept, size) {
		return "", err
	}
	if _, err := e.RemoveWALStream(ctx, db); err != nil {
		return "", err
	}
	aside := dir + "-until-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(dir, aside); err != nil {
		return "", fmt.Errorf("set WAL folder %s aside: %w", dir, err)
	}
	return aside, nil
}
