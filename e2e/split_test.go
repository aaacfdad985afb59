package e2e

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/orchestrator"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// splitData adds enough rows to the hard schema's tables for them to be
// read in parts: awkward values, a child table (a parent's parts must not
// hold its rows), a partition, and holes left by deletes and updates. The
// ANALYZE gives the size estimates a backup chooses the tables by.
const splitData = `
INSERT INTO "Sales Data"."Customer" ("E-mail", name, mood, photo, tags, doc, price)
SELECT 'u' || i || '@example.com',
       CASE WHEN i % 7 = 0 THEN NULL ELSE E'row\t' || i || E'\n"x" \\ ,()' END,
       (ARRAY['sad', 'ok', 'happy'])[i % 3 + 1]::mood,
       CASE WHEN i % 5 = 0 THEN NULL ELSE decode(md5(i::text), 'hex') END,
       ARRAY['a' || i, NULL], jsonb_build_object('i', i, 's', E'q"\\'), i / 3.0
FROM generate_series(1, 3000) i;
INSERT INTO log_lines SELECT repeat('line ', i % 50), '2025-01-01'::timestamptz + i * interval '1 minute' FROM generate_series(1, 5000) i;
INSERT INTO log_archive SELECT 'archived ' || i, NULL, i FROM generate_series(1, 3000) i;
INSERT INTO measurements SELECT DATE '2024-01-01' + i % 365, i * 0.5 FROM generate_series(1, 5000) i;
DELETE FROM log_lines WHERE at < '2025-01-02';
UPDATE "Sales Data"."Customer" SET price = price + 1 WHERE "Id" % 10 = 0;
INSERT INTO a SELECT i, NULL FROM generate_series(3, 3000) i;
ANALYZE;
`

// A backup that reads large tables in parts, at the same time, holds what
// a backup that reads them whole holds: the same manifest, the same rows
// after a restore, and it verifies.
func TestSplitBackupHoldsWhatAWholeBackupHolds(t *testing.T) {
	t.Parallel()
	needCores(t)
	p := newProject(t, "split")
	p.backupDir()
	userMigrations(t, p, map[string]string{"00001_hard.sql": hardSchema, "00002_archive.sql": "-- +goose Up\nCREATE TABLE log_archive (extra int) INHERITS (log_lines);\n"})
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	require.Equal(t, 0, p.aidb("migrate", "rulesdb").code)
	url := p.status()["rulesdb"].URL
	_, err := connect(t, url).Exec(t.Context(), hardData+splitData)
	require.NoError(t, err)
	source := content(t, url)
	sourceData := dataContent(t, url)

	whole := p.backupJSON("rulesdb", "--split-over", "0").Files[0]
	assert.Empty(t, whole.Split)
	// One byte: every table of two pages or more is read in parts.
	split := p.backupJSON("rulesdb", "--split-over", "1").Files[0]
	dataSplit := p.backupJSON("rulesdb", "--data-only", "--split-over", "1", "--compress", "zstd").Files[0]
	for _, f := range [][]string{tableNames(split.Split), tableNames(dataSplit.Split)} {
		for _, want := range []string{"Sales Data.Customer", "public.log_lines", "public.log_archive", "public.measurements_2024"} {
			assert.Contains(t, f, want)
		}
	}
	for _, s := range split.Split {
		assert.GreaterOrEqual(t, s.Parts, 2, s.Table)
	}
	// A table in a foreign key keeps its place in a data-only file, which
	// psql loads with the keys in place; a full file adds them after.
	assert.Contains(t, tableNames(split.Split), "public.a")
	assert.NotContains(t, tableNames(dataSplit.Split), "public.a")
	assert.Equal(t, readManifest(t, whole.Path).Tables, readManifest(t, split.Path).Tables,
		"row counts and content hashes read from the parts equal those read whole")

	code, results, stderr := p.verifyJSON(split.Path, dataSplit.Path)
	require.Equal(t, 0, code, "%s\n%+v", stderr, results)
	for _, r := range results {
		assert.True(t, r.OK, "%s: %v %s", r.File, r.Differences, r.Error)
	}

	_, err = connect(t, url).Exec(t.Context(), `DELETE FROM log_lines; UPDATE "Sales Data"."Customer" SET name = 'x'`)
	require.NoError(t, err)
	r := p.aidb("restore", "--yes", "--no-backup", "rulesdb", split.Path)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, source, content(t, url))

	_, err = connect(t, url).Exec(t.Context(), `DELETE FROM measurements; TRUNCATE log_archive`)
	require.NoError(t, err)
	r = p.aidb("restore", "--yes", "--no-backup", "--data-only", "rulesdb", dataSplit.Path)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, sourceData, dataContent(t, url))
}

func tableNames(split []backup.SplitTable) []string {
	var out []string
	for _, s := range split {
		out = append(out, s.Table)
	}
	return out
}

// A part that fails (here its server connection is ended mid-COPY) fails
// the backup: exit 1 naming the part, and no file, partial file, pipe or
// helper container is left.
func TestSplitBackupPartFails(t *testing.T) {
	t.Parallel()
	needCores(t)
	p := newProject(t, "fsplit")
	dir := p.backupDir()
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	conn := connect(t, p.status()["rulesdb"].URL)
	// About 30 MB: more than the socket buffers a part's backend fills
	// while its psql is frozen, so the part is still running when it is
	// ended.
	_, err := conn.Exec(t.Context(), `CREATE TABLE big AS SELECT i, repeat(md5(i::text), 8) AS s FROM generate_series(1, 100000) i; ANALYZE big`)
	require.NoError(t, err)

	cmd := p.command(t.Context(), "backup", "rulesdb", "--split-over", "1")
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	var pid int
	waitFor(t, 2*time.Minute, func() bool {
		return len(containersWithRole(t, p, orchestrator.RoleDump)) > 0 &&
			conn.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT%' LIMIT 1`).Scan(&pid) == nil
	})
	helpers := containersWithRole(t, p, orchestrator.RoleDump)
	require.Len(t, helpers, 1)
	_, err = docker.ContainerPause(t.Context(), helpers[0], client.ContainerPauseOptions{})
	require.NoError(t, err)
	unpause := func() {
		_, _ = docker.ContainerUnpause(context.WithoutCancel(t.Context()), helpers[0], client.ContainerUnpauseOptions{})
	}
	t.Cleanup(unpause)
	var ended bool
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ended))
	require.True(t, ended, "the part was still running")
	unpause()

	_ = cmd.Wait()
	assert.Equal(t, 1, cmd.ProcessState.ExitCode(), stderr.String())
	// The run that failed first is named, with what it said.
	assert.Regexp(t, `dump rulesdb: psql \(public\.big, part [12] of 2\) exited with code 2: `, stderr.String())
	assert.Regexp(t, `terminating connection due to administrator command|server closed the connection unexpectedly`, stderr.String())
	assert.Empty(t, containersWithRole(t, p, orchestrator.RoleDump), "no helper left")
	assert.Empty(t, partials(t, dir), "no partial file or pipe left")
	files, err := filepath.Glob(filepath.Join(dir, "rulesdb-*"))
	require.NoError(t, err)
	assert.Empty(t, files, "no backup file")
}

// needCores skips a test of tables read in parts on a machine of one core,
// where aidb reads no table in parts.
func needCores(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one core: aidb reads no table in parts")
	}
}
