package e2e

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSoak runs backup → verify → restore cycles on both databases while a
// writer keeps inserting, and checks each cycle that every file matches its
// manifest row for row and that nothing accumulates: no throwaway or helper
// containers, no temporary databases, no partial files. AIDB_SOAK_CYCLES
// sets the cycles (default 3, as CI runs it; make -f Makefile.ai soak runs 30).
func TestSoak(t *testing.T) {
	t.Parallel()
	cycles := 3
	if v := os.Getenv("AIDB_SOAK_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "AIDB_SOAK_CYCLES")
		cycles = n
	}
	p := newProject(t, "soak")
	dir := p.backupDir()
	p.seeded("500")
	st := p.status()

	// The writer reconnects when a restore ends its session.
	ctx, stop := context.WithCancel(t.Context())
	var written atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			conn, err := pgx.Connect(ctx, st["rulesdb"].URL)
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			for ctx.Err() == nil {
				if _, err := conn.Exec(ctx, "INSERT INTO rules (project_id, name, body) VALUES (1, 'soak', repeat('s', 200))"); err != nil {
					break
				}
				written.Add(1)
			}
			_ = conn.Close(context.WithoutCancel(ctx))
		}
	}()
	defer func() { stop(); <-done }()

	var rows []int64
	for c := range cycles {
		res := p.backupJSON()
		require.Len(t, res.Files, 2)
		var files []string
		var total int64
		for _, f := range res.Files {
			files = append(files, f.Path)
			m := readManifest(t, f.Path)
			counts := copyCounts(t, openPlain(t, f.Path))
			for _, tb := range m.Tables {
				assert.Equal(t, *tb.Rows, counts[tb.Key()], "cycle %d: %s %s", c, f.Database, tb.Key())
				total += *tb.Rows
			}
		}
		rows = append(rows, total)
		code, results, stderr := p.verifyJSON(files...)
		require.Equal(t, 0, code, "cycle %d: %s", c, stderr)
		for _, r := range results {
			assert.True(t, r.OK, "cycle %d: %s %v", c, r.File, r.Differences)
		}
		args := []string{"restore", "--yes", "--no-backup", "--all"}
		for _, f := range res.Files {
			args = append(args, f.Database+"="+f.Path)
		}
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "cycle %d: %s", c, r.stderr)

		assert.Zero(t, throwaways(t, p), "cycle %d: throwaway containers", c)
		assert.Zero(t, dumpHelpers(t, p), "cycle %d: helper containers", c)
		assert.Empty(t, restoreLeftovers(t, st["rulesdb"].URL), "cycle %d: temporary databases", c)
		assert.Empty(t, partials(t, dir), "cycle %d: partial files", c)
		assert.Len(t, p.labelled(t.Context()), 5, "cycle %d: the project's containers, volumes and network, nothing more", c)
	}
	stop()
	<-done
	t.Logf("soak: %d cycles, rows per backup set %v, %d rows written during the run", cycles, rows, written.Load())
	assert.Positive(t, written.Load(), "the writer wrote during the cycles")
}
