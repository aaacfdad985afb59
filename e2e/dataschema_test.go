package e2e

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handMadeTables are tables a developer created outside the migrations, by psql
// in the database's container, with rows.
const handMadeTables = `
CREATE TABLE scratch (id serial PRIMARY KEY, note text NOT NULL, score integer);
INSERT INTO scratch (note, score) SELECT 'note ' || g, g FROM generate_series(1, 25) g;
CREATE TABLE drafts (id integer PRIMARY KEY, title text NOT NULL, body text);
INSERT INTO drafts SELECT g, 'draft ' || g, repeat('b', g) FROM generate_series(1, 12) g;
CREATE TABLE labels (name text PRIMARY KEY);
INSERT INTO labels VALUES ('red'), ('green'), ('blue');
CREATE TABLE scores (player text PRIMARY KEY, points integer NOT NULL);
INSERT INTO scores SELECT 'p' || g, g * 10 FROM generate_series(1, 7) g;
`

// psqlIn runs sql with psql in the database's own container, as the
// user a developer would be (the compose file's POSTGRES_USER).
func psqlIn(t *testing.T, p *project, db, user, sql string) {
	t.Helper()
	_, err := execIn(t, p.status()[db].Container, "psql", "-v", "ON_ERROR_STOP=1", "-q", "-U", user, "-d", db, "-c", sql)
	require.NoError(t, err)
}

// dataBackups lists the data-only backups of db in dir, oldest first.
func dataBackups(t *testing.T, dir, db string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, db+"-data-*.sql"))
	require.NoError(t, err)
	slices.Sort(files)
	return files
}

// TestDataOnlyBackupOfHandMadeTablesVerifies is issue #15: a table made
// outside the migrations. Before, ai-db-backup-data-only wrote the file
// and then failed its verification ("it lacks table public.scratch"),
// because the data was verified on the migrations' schema; the data-only
// backup now carries the schema it was taken from and is verified on it.
func TestDataOnlyBackupOfHandMadeTablesVerifies(t *testing.T) {
	t.Parallel()
	p := newProject(t, "dshand")
	dir := p.backupDir()
	p.seeded("30")
	psqlIn(t, p, "rulesdb", "rules", handMadeTables)

	r := p.makeTarget("ai-db-backup-data-only")
	require.Equal(t, 0, r.code, "the verified data-only backup target: %s", r.stderr)
	assert.NotContains(t, r.stderr, "lacks table")
	files := dataBackups(t, dir, "rulesdb")
	require.Len(t, files, 1)
	data := files[0]

	raw := readAllPlain(t, data)
	assert.Contains(t, raw, "COPY public.scratch ", "the hand-made table's rows are in the file")
	assert.NotContains(t, raw, "CREATE TABLE", "a data-only file holds data only: plain psql of it loads no schema")
	_ = strings.Contains
}
