package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
)

// handMadeTables are tables a developer created outside the migrations, by
// psql in the database's container, with rows.
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
// compose file's POSTGRES_USER (rules, for rulesdb).
func psqlIn(t *testing.T, p *project, db, sql string) {
	t.Helper()
	user := map[string]string{"rulesdb": "rules", "memorydb": "memory"}[db]
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

// listProblems runs aidb list --json: each file's checksum_ok and problem.
func listProblems(t *testing.T, p *project) map[string]string {
	t.Helper()
	r := p.aidb("list", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var doc struct {
		Backups []struct {
			File       string `json:"file"`
			ChecksumOK bool   `json:"checksum_ok"`
			Problem    string `json:"problem"`
		} `json:"backups"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	out := map[string]string{}
	for _, b := range doc.Backups {
		out[b.File] = b.Problem
		if b.ChecksumOK {
			out[b.File] = "ok"
		}
	}
	return out
}

// TestDataOnlyBackupOfHandMadeTablesVerifies is issue #15: tables made
// outside the migrations. Before, ai-db-backup-data-only wrote the file
// and then failed its verification ("it lacks table public.scratch"): the
// data was verified on the migrations' schema. A data-only backup now
// carries the schema it was taken from, in its manifest, and is verified
// on it: the hand-made tables' rows are compared too.
func TestDataOnlyBackupOfHandMadeTablesVerifies(t *testing.T) {
	t.Parallel()
	p := newProject(t, "dshand")
	dir := p.backupDir()
	p.rulesdbOnly("30")
	psqlIn(t, p, "rulesdb", handMadeTables)

	r := p.makeTarget("ai-db-backup-data-only")
	require.Equal(t, 0, r.code, "the verified data-only backup target: %s", r.stderr)
	assert.NotContains(t, r.stderr, "lacks table")
	files := dataBackups(t, dir, "rulesdb")
	require.Len(t, files, 1)
	data := files[0]

	raw := readAllPlain(t, data)
	assert.Contains(t, raw, "COPY public.scratch ", "the hand-made table's rows are in the file")
	assert.NotContains(t, raw, "CREATE TABLE", "a data-only file holds data only: plain psql of it loads no schema")
	m := readManifest(t, data)
	require.NotNil(t, m.Schema, "the schema part is in the manifest")
	assert.Contains(t, m.Schema.SQL, "CREATE TABLE public.scratch (")
	assert.Contains(t, m.Schema.SQL, "COPY public.goose_db_version ", "with the bookkeeping rows, as a schema backup holds them")
	assert.NotContains(t, m.Schema.SQL, "COPY public.scratch ", "and no other rows")
	for _, tb := range m.Tables {
		if tb.Key() == "public.scores" {
			assert.Equal(t, []string{"player", "points"}, tb.Columns)
			assert.Equal(t, []string{"text", "integer"}, tb.Types, "each column's type")
		}
	}

	// The exec stream carries the schema part as well: the same schema.
	viaStream := p.backupJSON("rulesdb", "--data-only", "--via", "stream").Files[0].Path
	ms := readManifest(t, viaStream)
	require.NotNil(t, ms.Schema)
	assert.Equal(t, schemaText([]byte(m.Schema.SQL)), schemaText([]byte(ms.Schema.SQL)))
	code, results, stderr := p.verifyJSON(viaStream)
	require.Equal(t, 0, code, stderr)
	require.Len(t, results, 1)
	assert.True(t, results[0].OK)
	assert.Equal(t, len(m.Tables), results[0].Tables, "every table, the hand-made ones too")

	// Verification compares the hand-made table's rows: one changed value
	// (the checksum recomputed) is a difference naming it.
	i := strings.Index(raw, "COPY public.scratch ")
	j := i + strings.Index(raw[i:], "\tnote 7\t")
	require.Greater(t, j, i)
	tampered := filepath.Join(dir, "rulesdb-tampered-data.sql")
	writeWithManifest(t, data, tampered, []byte(raw[:j]+"\tnote X\t"+raw[j+len("\tnote 7\t"):]))
	code, results, stderr = p.verifyJSON(tampered)
	assert.Equal(t, 3, code, stderr)
	require.Len(t, results, 1)
	assert.Contains(t, strings.Join(results[0].Differences, "\n"), "public.scratch", "the table is named")
	assert.Zero(t, throwaways(t, p))
}

// A data-only backup whose schema part was changed or removed from its
// manifest is damaged, as a changed file is: list says so, prune counts
// it toward nothing, verify reports the difference and restore refuses it
// before anything changed.
func TestDataOnlyBackupWithAlteredSchemaPartIsDamaged(t *testing.T) {
	t.Parallel()
	p := newProject(t, "dsalter")
	dir := p.backupDir()
	p.rulesdbOnly("20")
	psqlIn(t, p, "rulesdb", handMadeTables)
	data := p.backupJSON("rulesdb", "--data-only").Files[0].Path
	url := p.status()["rulesdb"].URL
	current := content(t, url)

	// Copies under names of their own (older timestamps), with the schema
	// part edited in the manifest and its sha256 left as it was.
	edit := func(name string, change func(*manifest.Schema)) string {
		dst := filepath.Join(dir, name)
		copyFile(t, data, dst)
		m := readManifest(t, data)
		m.File = name
		change(m.Schema)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(manifest.PathFor(dst), b, 0o600))
		return dst
	}
	altered := edit("rulesdb-data-20200101-000000.sql", func(s *manifest.Schema) {
		require.Contains(t, s.SQL, "points integer NOT NULL")
		s.SQL = strings.Replace(s.SQL, "points integer NOT NULL", "points bigint NOT NULL", 1)
	})
	removed := edit("rulesdb-data-20200102-000000.sql", func(s *manifest.Schema) { s.SQL = "" })

	listed := listProblems(t, p)
	assert.Equal(t, "ok", listed[data])
	assert.Contains(t, listed[altered], "the schema part of")
	assert.Contains(t, listed[altered], "the manifest was changed")
	assert.Contains(t, listed[removed], "is missing from its manifest")
	plan := p.prune("--keep-last", "1")
	assert.Contains(t, reasonOf(plan.Keep, altered), "damaged", "left alone, counted toward nothing")
	assert.Contains(t, reasonOf(plan.Keep, removed), "damaged")
	assert.Contains(t, reasonOf(plan.Keep, data), "newest")

	for _, f := range []string{altered, removed} {
		code, results, stderr := p.verifyJSON(f)
		assert.Equal(t, 3, code, stderr)
		require.Len(t, results, 1)
		assert.Contains(t, strings.Join(results[0].Differences, "\n"), "the schema part of", f)

		r := p.aidb("restore", "--yes", "--no-backup", "--data-only", "rulesdb", f)
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, "the schema part of")
		assert.Contains(t, r.stderr, "restore another backup")
		assert.Equal(t, current, content(t, url), "nothing changed")
	}
	assert.Zero(t, throwaways(t, p))
}

// A data-only restore compares the target's tables and columns with the
// backup's before it changes anything: a missing table, a missing column,
// a column the rows cannot leave empty and a column of another type are
// each named, exit 2, the rows as they were. Onto a matching target it
// restores and verifies; an extra nullable column there is a warning.
func TestDataRestoreNamesEachSchemaDifference(t *testing.T) {
	t.Parallel()
	p := newProject(t, "dsdiff")
	p.backupDir()
	p.rulesdbOnly("20")
	psqlIn(t, p, "rulesdb", handMadeTables)
	url := p.status()["rulesdb"].URL
	full := p.backupJSON("rulesdb").Files[0].Path
	data := p.backupJSON("rulesdb", "--data-only").Files[0].Path
	source := dataContent(t, url)

	psqlIn(t, p, "rulesdb", `
DROP TABLE scratch;
ALTER TABLE drafts DROP COLUMN body;
ALTER TABLE labels ADD COLUMN color text NOT NULL DEFAULT 'red';
ALTER TABLE labels ALTER COLUMN color DROP DEFAULT;
ALTER TABLE scores ALTER COLUMN points TYPE text;
UPDATE scores SET points = 'changed';
`)
	current := content(t, url)
	r := p.aidb("restore", "--yes", "--no-backup", "--data-only", "rulesdb", data)
	assert.Equal(t, 2, r.code, r.stderr)
	for _, want := range []string{
		"lacks column public.drafts.body, table public.scratch",
		"column public.scores.points is text here, integer in the backup",
		"has column public.labels.color, which the backup lacks",
		"nothing was changed",
		"jq -r .schema.sql '" + manifest.PathFor(data) + "'",
	} {
		assert.Contains(t, r.stderr, want)
	}
	assert.Equal(t, current, content(t, url), "the target's rows are unchanged")
	// Through make the same refusal, make's own exit 2.
	r = p.makeTarget("ai-db-restore-data", "BACKUP="+data)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "column public.scores.points is text here, integer in the backup")
	assert.Equal(t, current, content(t, url))

	// A matching target (the full backup's schema back), with changed
	// rows and a nullable column the backup lacks: restored and verified,
	// the new column named in a warning.
	r = p.aidb("restore", "--yes", "--no-backup", "rulesdb", full)
	require.Equal(t, 0, r.code, r.stderr)
	psqlIn(t, p, "rulesdb", `DELETE FROM scratch WHERE id > 5; UPDATE drafts SET body = NULL; ALTER TABLE labels ADD COLUMN note text;`)
	r = p.aidb("restore", "--yes", "--no-backup", "--data-only", "rulesdb", data)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: restored and verified")
	assert.Contains(t, r.stderr, "column public.labels.note is not in the backup: it will be NULL in the restored rows")
	psqlIn(t, p, "rulesdb", `ALTER TABLE labels DROP COLUMN note`)
	assert.Equal(t, source, dataContent(t, url), "exactly the data that was backed up")
}
