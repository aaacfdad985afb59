package e2e

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The user story's path: restore the schema backup, migrate, restore the
// data-only backup. The schema backup carries the migration bookkeeping
// rows, so migrate applies only what is newer and the data-only restore
// finds the version it needs.
func TestSchemaRestoreKeepsMigrationBookkeeping(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rischema")
	p.backupDir()
	// rulesdb's own migrations in a folder, so that one can be added later.
	migDir := defaultRulesMigrations(t, p)
	p.seeded("60")
	url := p.status()["rulesdb"].URL
	before := dataContent(t, url)
	require.Equal(t, []int64{1, 2, 3}, appliedVersions(t, connect(t, url)))

	schema := p.backupJSON("rulesdb", "--schema-only").Files[0].Path
	// The same through docker exec's stream (the remote engines' path).
	streamed := p.backupJSON("rulesdb", "--schema-only", "--via", "stream", "--compress", "zstd").Files[0].Path
	data := p.backupJSON("rulesdb", "--data-only").Files[0].Path
	for _, f := range []string{schema, streamed} {
		assert.Equal(t, int64(4), copyCounts(t, openPlain(t, f))["public.goose_db_version"], "%s holds the bookkeeping rows (version 0 and three)", f)
		assert.True(t, strings.Contains(readAllPlain(t, f), "SELECT pg_catalog.setval('public.goose_db_version_id_seq', 4, true);"), "%s holds the bookkeeping's identity sequence", f)
	}

	// A new migration arrives after the backups were taken.
	require.NoError(t, os.WriteFile(filepath.Join(migDir, "00004_notes.sql"), []byte(
		"-- +goose Up\nCREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);\n-- +goose Down\nDROP TABLE notes;\n"), 0o600))

	for _, args := range [][]string{{"nuke", "--yes"}, {"up"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
	}
	r := p.aidb("restore", "--yes", "rulesdb", schema)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: restored and verified")
	conn := connect(t, url)
	assert.Equal(t, []int64{1, 2, 3}, appliedVersions(t, conn), "the schema backup brought back the bookkeeping rows")

	r = p.aidb("migrate", "rulesdb")
	require.Equal(t, 0, r.code, "migrate after a schema restore: %s", r.stderr)
	assert.Equal(t, []int64{1, 2, 3, 4}, appliedVersions(t, conn), "only the newer migration was applied")
	assert.Contains(t, tables(t, conn), "notes")

	r = p.aidb("restore", "--yes", "--data-only", "rulesdb", data)
	require.Equal(t, 0, r.code, "data-only restore after a schema restore: %s", r.stderr)
	after := dataContent(t, url)
	delete(after, "public.notes")
	delete(after, "sequence public.notes_id_seq")
	assert.Equal(t, before, after, "exactly the data that was backed up")

	// The bookkeeping's identity sequence came back too: the next
	// migration's row does not collide with a restored one.
	require.NoError(t, os.WriteFile(filepath.Join(migDir, "00005_more.sql"), []byte(
		"-- +goose Up\nCREATE TABLE more_notes (id int);\n-- +goose Down\nDROP TABLE more_notes;\n"), 0o600))
	r = p.aidb("migrate", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []int64{1, 2, 3, 4, 5}, appliedVersions(t, conn))

	// The schema backups verify, bookkeeping rows included.
	r = p.aidb("verify", schema, streamed)
	assert.Equal(t, 0, r.code, r.stderr)
	raw := readAllPlain(t, schema)
	i := strings.Index(raw, "COPY public.goose_db_version ")
	require.Positive(t, i)
	j := i + strings.Index(raw[i:], "\tt\t")
	require.Greater(t, j, i)
	tampered := filepath.Join(p.dir, "rulesdb-schema-tampered.sql")
	writeWithManifest(t, schema, tampered, []byte(raw[:j]+"\tf\t"+raw[j+3:]))
	r = p.aidb("verify", tampered)
	assert.Equal(t, 3, r.code, r.stderr)
	assert.Contains(t, r.stderr, "public.goose_db_version: same 4 rows but different content")
}

// A plain pg_dump of rulesdb, without a manifest, restored into memorydb:
// refused, naming both sets of tables, unless --as-database says it is
// meant. (rulesdb's PostgreSQL 15 dump into memorydb's 17: a dump restores
// into the same or a newer major; the other way round it would not.)
func TestForeignFileWithoutManifestIsRefused(t *testing.T) {
	t.Parallel()
	p := newProject(t, "riforeign")
	dir := p.backupDir()
	p.seeded("40")
	st := p.status()
	rules, mem := st["rulesdb"].URL, st["memorydb"].URL
	before := content(t, mem)

	out, err := execIn(t, st["rulesdb"].Container, "pg_dump", "-U", "rules", "rulesdb")
	require.NoError(t, err)
	plain := filepath.Join(p.dir, "rulesdb-plain.sql")
	require.NoError(t, os.WriteFile(plain, out, 0o600))
	out, err = execIn(t, st["rulesdb"].Container, "pg_dump", "-U", "rules", "--no-owner", "--no-privileges", "rulesdb")
	require.NoError(t, err)
	noOwner := filepath.Join(p.dir, "rulesdb-no-owner.sql.gz")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(out)
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(noOwner, gz.Bytes(), 0o600))

	for _, f := range []string{plain, noOwner} {
		r := p.aidb("restore", "--yes", "memorydb", f)
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, f+" looks like a backup of another database")
		assert.Contains(t, r.stderr, "public.rules", "the file's tables are named")
		assert.Contains(t, r.stderr, "public.memories", "the target's tables are named")
		assert.NotContains(t, r.stderr, "goose_db_version", "the bookkeeping table, which both have, is not a shared table")
		assert.Contains(t, r.stderr, "--as-database")
		assert.Equal(t, before, content(t, mem), "memorydb is as it was")
		assert.Empty(t, backupFiles(t, dir), "refused before the safety backup")
	}

	// Deliberately: it goes ahead.
	r := p.aidb("restore", "--yes", "--no-backup", "--as-database", "rulesdb", "memorydb", noOwner)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, dataContent(t, rules), dataContent(t, mem), "memorydb now holds rulesdb's tables")
}

// Files that are not plain SQL backups are named as what they are, with
// what to run; nothing changes.
func TestBadBackupFilesAreNamed(t *testing.T) {
	t.Parallel()
	p := newProject(t, "ribad")
	dir := p.backupDir()
	p.seeded("30", "rulesdb")
	st := p.status()
	url := st["rulesdb"].URL
	before := content(t, url)
	ctr := st["rulesdb"].Container

	write := func(name string, b []byte) string {
		path := filepath.Join(p.dir, name)
		require.NoError(t, os.WriteFile(path, b, 0o600))
		return path
	}
	gzipped := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		require.NoError(t, zw.Close())
		return buf.Bytes()
	}
	custom, err := execIn(t, ctr, "pg_dump", "-U", "rules", "-Fc", "rulesdb")
	require.NoError(t, err)
	tarred, err := execIn(t, ctr, "pg_dump", "-U", "rules", "-Ft", "rulesdb")
	require.NoError(t, err)
	plain, err := execIn(t, ctr, "pg_dump", "-U", "rules", "rulesdb")
	require.NoError(t, err)
	withCreate, err := execIn(t, ctr, "pg_dump", "-U", "rules", "-C", "-c", "--if-exists", "rulesdb")
	require.NoError(t, err)
	loopA, loopB := filepath.Join(p.dir, "loop-a.sql"), filepath.Join(p.dir, "loop-b.sql")
	require.NoError(t, os.Symlink(loopB, loopA))
	require.NoError(t, os.Symlink(loopA, loopB))
	dangling := filepath.Join(p.dir, "rulesdb-latest.sql")
	require.NoError(t, os.Symlink(filepath.Join(p.dir, "gone.sql"), dangling))

	cases := []struct {
		name, file string
		want       []string
	}{
		{"custom format", write("rulesdb.dump", custom), []string{"pg_dump custom-format (pg_dump -Fc) archive", "pg_restore -f - "}},
		{"tar format", write("rulesdb.tar", tarred), []string{"pg_dump tar-format (pg_dump -Ft) archive", "pg_restore -f - "}},
		{"gzipped custom format named .sql", write("rulesdb-fc.sql", gzipped(custom)), []string{"gzip-compressed pg_dump custom-format", "gzip -dc "}},
		{"symlink loop", loopA, []string{"symbolic link that leads back to itself", "aidb list"}},
		{"dangling symlink", dangling, []string{"symbolic link to a file that does not exist", "gone.sql", "aidb list"}},
		{"empty file", write("rulesdb-empty.sql", nil), []string{"is empty (0 bytes)", "aidb list"}},
		{"not SQL", write("rulesdb-photo.sql", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")), []string{"binary data, not SQL"}},
		{"text, not a dump", write("rulesdb-notes.sql", []byte("shopping list:\n- milk\n")), []string{"is not a pg_dump file", `"shopping list:"`}},
		{"bzip2", write("rulesdb.sql.bz2", []byte("BZh91AY&SY\x00\x00")), []string{"bzip2-compressed"}},
		{"a folder", p.dir, []string{"is a folder"}},
		{"made with pg_dump -C -c", write("rulesdb-create.sql", withCreate), []string{"was made with pg_dump --create (-C)", "make it again without -C"}},
	}
	for _, c := range cases {
		r := p.aidb("restore", "--yes", "rulesdb", c.file)
		assert.Equal(t, 2, r.code, "%s: %s", c.name, r.stderr)
		for _, w := range c.want {
			assert.Contains(t, r.stderr, w, c.name)
		}
		assert.NotContains(t, r.stderr, "<nil>", c.name)
		assert.NotContains(t, r.stderr, "cut short", c.name)
		assert.Equal(t, before, content(t, url), "%s: rulesdb is as it was", c.name)
		assert.Empty(t, backupFiles(t, dir), "%s: refused before the safety backup", c.name)
	}

	// verify names the same things, and an empty name as missing.
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"no file", []string{""}, []string{"no backup file given", "aidb list"}},
		{"symlink loop", []string{loopA}, []string{"symbolic link that leads back to itself", "aidb list"}},
		{"custom format", []string{filepath.Join(p.dir, "rulesdb.dump")}, []string{"custom-format (pg_dump -Fc) archive", "pg_restore -f - "}},
	} {
		r := p.aidb(append([]string{"verify"}, c.args...)...)
		assert.Equal(t, 2, r.code, "verify %s: %s", c.name, r.stderr)
		for _, w := range c.want {
			assert.Contains(t, r.stderr, w, "verify "+c.name)
		}
		assert.NotContains(t, r.stderr, "<nil>")
		assert.NotContains(t, r.stderr, "such file or directory", "verify "+c.name)
	}

	// A gzip file whose name does not say so is read as gzip, and said to be.
	r := p.aidb("restore", "--yes", "--no-backup", "rulesdb", write("rulesdb-by-hand.sql", gzipped(plain)))
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "is gzip-compressed though its name does not end in .gz")
	assert.Equal(t, before, content(t, url))
}

// backupFiles lists the backup files (and manifests) in dir.
func backupFiles(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, de := range des {
		if n := de.Name(); strings.HasPrefix(n, "rulesdb") || strings.HasPrefix(n, "memorydb") {
			out = append(out, n)
		}
	}
	return out
}

// TestDataRestoreAfterAMigrationAddedAColumn: a data-only backup taken at
// version 3 restores onto a database migrated past it, where a table
// gained a column with a default. The check compares the backup's columns
// (the new column's defaults are not the backup's content), so the
// restore is accepted and the rows are the backup's; before, it loaded
// everything and then refused with exit 3, calling a good backup bad.
func TestDataRestoreAfterAMigrationAddedAColumn(t *testing.T) {
	t.Parallel()
	p := newProject(t, "ricolumn")
	p.backupDir()
	migDir := defaultRulesMigrations(t, p)
	p.seeded("40", "rulesdb")
	url := p.status()["rulesdb"].URL
	before := dataContent(t, url)
	data := p.backupJSON("rulesdb", "--data-only").Files[0].Path

	require.NoError(t, os.WriteFile(filepath.Join(migDir, "00004_rule_notes.sql"), []byte(
		"-- +goose Up\nALTER TABLE rules ADD COLUMN notes text NOT NULL DEFAULT '';\n-- +goose Down\nALTER TABLE rules DROP COLUMN notes;\n"), 0o600))
	r := p.aidb("migrate", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	conn := connect(t, url)
	_, err := conn.Exec(t.Context(), "UPDATE rules SET notes = 'written after the backup'")
	require.NoError(t, err)

	r = p.aidb("restore", "--yes", "--data-only", "rulesdb", data)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: restored and verified")
	var notes int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM rules WHERE notes <> ''").Scan(&notes))
	assert.Zero(t, notes, "the restored rows take the new column's default")
	_, err = conn.Exec(t.Context(), "ALTER TABLE rules DROP COLUMN notes")
	require.NoError(t, err)
	assert.Equal(t, before, dataContent(t, url), "exactly the data that was backed up")
}

// defaultRulesMigrations copies rulesdb's default migrations (versions 1
// to 3) into a folder of the project's and points aidb.yaml at it, so a
// test can add one; it returns the folder.
func defaultRulesMigrations(t *testing.T, p *project) string {
	t.Helper()
	defaults, err := filepath.Glob(filepath.Join("..", "internal", "postgres", "migrations", "defaults", "rulesdb", "*.sql"))
	require.NoError(t, err)
	require.Len(t, defaults, 3)
	files := map[string]string{}
	for _, f := range defaults {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		files[filepath.Base(f)] = string(b)
	}
	return userMigrations(t, p, files)
}
