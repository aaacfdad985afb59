package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// walWriters and walWrites are the write load of wal_stream_overhead: the
// soak's writer (autocommit INSERTs of a 200-byte row, each a commit with
// its fsync, on one session), walWrites transactions. On two sessions
// the two cores are full, and the stream's per-commit work (the
// walsender woken at each commit, pg_receivewal's write) showed as 1.16
// to 1.43 (2026-12-07, 16 MB): a different question (what a saturated
// machine gives up), not the issue's.
const (
	walWriters = 1
	walWrites  = 8000
)

// walStreamOverhead is the write load's time on rulesdb with its WAL
// streaming (aidb pitr enable: pg_receivewal in a sidecar, asynchronous)
// against the same load with no stream, side by side in pairs; the
// stream is turned on and off between the sides, untimed. What it costs
// is the sidecar's share of the cores and the disk: the server does not
// wait for it.
func (b *bench) walStreamOverhead() (Measure, error) {
	url := b.url("rulesdb")
	if err := b.sql(url, "CREATE TABLE IF NOT EXISTS bench_wal (id bigserial PRIMARY KEY, body text)"); err != nil {
		return Measure{}, err
	}
	streaming := false
	stream := func(on bool) error {
		if on == streaming {
			return nil
		}
		streaming = on
		if on {
			return b.aidbQuiet(b.ctx, "pitr", "enable", "rulesdb")
		}
		return b.aidbQuiet(b.ctx, "pitr", "disable", "rulesdb")
	}
	defer func() {
		_ = stream(false)
		_ = b.sql(url, "DROP TABLE IF EXISTS bench_wal")
		b.removeStream("rulesdb")
	}()
	load := func(on bool) func() (float64, error) {
		return func() (float64, error) {
			if err := stream(on); err != nil {
				return 0, err
			}
			return b.writeLoad(url)
		}
	}
	return b.pairsOf("wal_stream_overhead", fmt.Sprintf("the same write load (%d sessions × %d autocommit INSERTs) without a WAL stream", walWriters, walWrites),
		load(true), load(false))
}

// writeLoad runs the write load and returns its wall time.
func (b *bench) writeLoad(url string) (float64, error) {
	var g errgroup.Group
	conns := make([]*pgx.Conn, walWriters)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close(context.WithoutCancel(b.ctx))
			}
		}
	}()
	for i := range conns {
		c, err := pgx.Connect(b.ctx, url)
		if err != nil {
			return 0, err
		}
		conns[i] = c
	}
	start := time.Now()
	for _, c := range conns {
		g.Go(func() error {
			for range walWrites {
				if _, err := c.Exec(b.ctx, "INSERT INTO bench_wal (body) VALUES (repeat('s', 200))"); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return time.Since(start).Seconds(), err
}

// pitrRestore is aidb restore --to-latest of memorydb (the larger
// database: its base backup unpacked into a new volume, its WAL replayed,
// checked, switched to) against aidb's restore of a full backup of the
// same data. Before each run, untimed: pitr enable (a base backup), a
// row, a segment switch and its segment whole in the folder; after it,
// restore --finish.
func (b *bench) pitrRestore() (Measure, error) {
	file, err := b.fullBackup("memorydb")
	if err != nil {
		return Measure{}, err
	}
	defer b.removeBackups()
	defer b.removeStream("memorydb")
	defer func() { _ = b.aidbQuiet(context.WithoutCancel(b.ctx), "pitr", "disable", "memorydb") }()
	return b.pairsOf("pitr_restore", "aidb restore of a full backup of the same data",
		func() (float64, error) {
			if err := b.streamWithSegment("memorydb"); err != nil {
				return 0, err
			}
			s, _, err := b.aidbTimed("restore", "memorydb", "--to-latest", "--yes")
			if err != nil {
				return 0, err
			}
			return s, b.aidbQuiet(b.ctx, "restore", "memorydb", "--finish", "--yes")
		},
		b.aidbRestore(file))
}

// streamWithSegment turns PITR on for db and waits (up to a minute) until
// a segment written after its base backup lies whole in the folder.
func (b *bench) streamWithSegment(db string) error {
	if err := b.aidbQuiet(b.ctx, "pitr", "enable", db); err != nil {
		return err
	}
	conn, err := pgx.Connect(b.ctx, b.url(db))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(b.ctx)) }()
	// A record after the base backup (a message, no table), then the
	// switch that completes its segment.
	if _, err := conn.Exec(b.ctx, "SELECT pg_logical_emit_message(false, 'aidb-bench', 'mark')"); err != nil {
		return err
	}
	var seg string
	if err := conn.QueryRow(b.ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg); err != nil {
		return err
	}
	path := filepath.Join(b.dir, "backups", "wal", db, seg)
	for deadline := time.Now().Add(time.Minute); ; {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("segment %s did not reach %s within a minute", seg, path)
		}
		time.Sleep(100 * time.Millisecond) //nolint:forbidigo // a poll with a deadline
	}
}

// removeStream removes db's segments and base backups from the folder,
// and the stream folders each pitr enable set aside.
func (b *bench) removeStream(db string) {
	_ = os.RemoveAll(filepath.Join(b.dir, "backups", "base", db))
	aside, _ := filepath.Glob(filepath.Join(b.dir, "backups", "wal", db+"*"))
	for _, d := range aside {
		_ = os.RemoveAll(d)
	}
}

// url is a database's connection URL (aidb status).
func (b *bench) url(db string) string {
	u, _ := b.statusOf(db)
	return u
}

// sql runs one statement on url.
func (b *bench) sql(url, stmt string) error {
	conn, err := pgx.Connect(b.ctx, url)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(b.ctx)) }()
	_, err = conn.Exec(b.ctx, stmt)
	return err
}
