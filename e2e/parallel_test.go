package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A full restore loads on several sessions; a bad row in any of them fails
// the whole restore, names the table, drops the temporary database and
// leaves the target as it was.
func TestParallelRestoreBadRowFailsAndNamesTheTable(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rsbadrow")
	p.backupDir()
	p.seeded("60", "rulesdb")
	st := p.status()
	url := st["rulesdb"].URL
	before := content(t, url)

	out, err := execIn(t, st["rulesdb"].Container, "pg_dump", "-U", "rules", "rulesdb")
	require.NoError(t, err)
	// The first row of rule_versions loses its columns: COPY refuses it.
	header := []byte("COPY public.rule_versions ")
	i := bytes.Index(out, header)
	require.GreaterOrEqual(t, i, 0, "the dump loads rule_versions")
	rowStart := i + bytes.IndexByte(out[i:], '\n') + 1
	rowEnd := rowStart + bytes.IndexByte(out[rowStart:], '\n')
	require.NotEqual(t, `\.`, string(out[rowStart:rowEnd]), "rule_versions has rows")
	bad := append(append(bytes.Clone(out[:rowStart]), "not a row"...), out[rowEnd:]...)
	dump := filepath.Join(p.dir, "rulesdb-bad-row.sql")
	require.NoError(t, os.WriteFile(dump, bad, 0o600))

	r := p.aidb("restore", "--yes", "--no-backup", "rulesdb", dump)
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "load the rows of table public.rule_versions")
	assert.Contains(t, r.stderr, "the target was not touched")
	assert.Empty(t, restoreLeftovers(t, url), "the temporary database is dropped")
	assert.Equal(t, before, content(t, url))
}

// A loading session killed mid-restore (its backend terminated) fails the
// restore, names the table it was loading, and drops the temporary
// database: the target is as it was.
func TestParallelRestoreKilledBackendFailsTheRestore(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rskilled")
	p.backupDir()
	p.seeded("20", "rulesdb")
	st := p.status()
	url := st["rulesdb"].URL
	// One large table, so that the load takes long enough to be caught.
	_, err := connect(t, url).Exec(t.Context(), `CREATE TABLE public.big AS
		SELECT g AS id, repeat(md5(g::text), 6) AS body FROM generate_series(1, 300000) g`)
	require.NoError(t, err)
	file := p.backupJSON("rulesdb").Files[0].Path
	before := content(t, url)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- p.run(ctx, "restore", "--yes", "--no-backup", "--jobs", "2", "rulesdb", file) }()

	admin := connect(t, url)
	killed := false
	deadline := time.Now().Add(3 * time.Minute)
	var r result
	for !killed && time.Now().Before(deadline) {
		var n int
		require.NoError(t, admin.QueryRow(t.Context(), `SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity
			WHERE datname LIKE '%\_aidb\_restore\_%' AND query LIKE 'COPY public.big %' AND state = 'active'`).Scan(&n))
		killed = n > 0
		select {
		case r = <-done:
			t.Fatalf("the restore ended before a loading session could be killed: %d %s", r.code, r.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.True(t, killed, "a session loading public.big was seen and killed")
	r = <-done
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "load the rows of table public.big")
	assert.True(t, strings.Contains(r.stderr, "terminating connection") || strings.Contains(r.stderr, "closed"), r.stderr)
	assert.Empty(t, restoreLeftovers(t, url), "the temporary database is dropped")
	assert.Equal(t, before, content(t, url))
}
