package e2e

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Values whose text depends on a session setting (a regclass names its
// table by the search path, a timestamptz is written in the session's time
// zone) are written the same by pg_dump and by the parts read beside it:
// a backup that reads the table in parts holds what one that reads it
// whole holds, and verifies (a part that wrote the regclass unqualified
// could not be restored under pg_dump's empty search path).
func TestSplitBackupWritesValuesUnderPgDumpsSettings(t *testing.T) {
	t.Parallel()
	needCores(t)
	p := newProject(t, "splitset")
	p.backupDir()
	userMigrations(t, p, map[string]string{"00001_refs.sql": `-- +goose Up
CREATE TABLE reg_target (id int);
CREATE TABLE refs (id int, rel regclass, typ regtype, at timestamptz, note text);
`})
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	require.Equal(t, 0, p.aidb("migrate", "rulesdb").code)
	url := p.status()["rulesdb"].URL
	_, err := connect(t, url).Exec(t.Context(), `
INSERT INTO refs SELECT i, 'reg_target'::regclass, 'int4'::regtype, '2025-01-01 12:00:00+05'::timestamptz + i * interval '1 minute', repeat('x', 50)
FROM generate_series(1, 3000) i;
ANALYZE;`)
	require.NoError(t, err)

	whole := p.backupJSON("rulesdb", "--split-over", "0").Files[0]
	split := p.backupJSON("rulesdb", "--split-over", "1").Files[0]
	require.Contains(t, tableNames(split.Split), "public.refs")
	assert.Equal(t, readManifest(t, whole.Path).Tables, readManifest(t, split.Path).Tables,
		"row counts and content hashes read from the parts equal those read whole")

	code, results, stderr := p.verifyJSON(split.Path)
	require.Equal(t, 0, code, "%s\n%+v", stderr, results)
}
