package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/migrations"
)

// content is an independent reading of a database: every row of every
// user table as text, sorted, and every sequence's value. It shares no
// code with aidb's fingerprint.
func content(t *testing.T, url string) map[string][]string {
	return contentExcept(t, url, "")
}

// dataContent is content without the migration bookkeeping, which a
// data-only backup leaves out (its rows record when the target was migrated).
func dataContent(t *testing.T, url string) map[string][]string {
	return contentExcept(t, url, "public."+migrations.Table)
}

func contentExcept(t *testing.T, url, skip string) map[string][]string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.WithoutCancel(t.Context())) }()
	_, err = conn.Exec(t.Context(), "SET TimeZone = 'UTC'; SET extra_float_digits = 3")
	require.NoError(t, err)
	rows, err := conn.Query(t.Context(), `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	out := map[string][]string{}
	for _, tb := range tables {
		if tb == skip {
			continue
		}
		rows, err := conn.Query(t.Context(), "SELECT t::text FROM "+tb+" AS t")
		require.NoError(t, err)
		vals, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		slices.Sort(vals)
		out[tb] = vals
	}
	rows, err = conn.Query(t.Context(), `SELECT format('%I.%I', schemaname, sequencename), coalesce(last_value, 0)::text FROM pg_sequences
		WHERE format('%I.%I', schemaname, sequencename) <> $1 || '_id_seq' ORDER BY 1`, skip)
	require.NoError(t, err)
	for rows.Next() {
		var name, v string
		require.NoError(t, rows.Scan(&name, &v))
		out["sequence "+name] = []string{v}
	}
	require.NoError(t, rows.Err())
	return out
}

// databases lists the databases on a server whose names aidb's restores use.
func restoreLeftovers(t *testing.T, url string) []string {
	t.Helper()
	conn := connect(t, url)
	rows, err := conn.Query(t.Context(), "SELECT datname FROM pg_database WHERE datname LIKE '%\\_aidb\\_%'")
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func TestUserStoryResetFlowBringsBackTheData(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rsflow")
	p.backupDir()
	p.seeded("200")
	st := p.status()
	before := map[string]map[string][]string{}
	for _, db := range []string{"rulesdb", "memorydb"} {
		before[db] = dataContent(t, st[db].URL)
	}
	res := p.backupJSON("--data-only")
	files := map[string]string{}
	for _, f := range res.Files {
		files[f.Database] = f.Path
	}

	// Section 3: nuke, up, migrate, restore the data.
	for _, args := range [][]string{{"nuke", "--yes"}, {"up"}, {"migrate"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
	}
	for _, db := range []string{"memorydb", "rulesdb"} {
		r := p.aidb("restore", "--yes", "--data-only", db, files[db])
		require.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stderr, db+": restored and verified")
	}
	for _, db := range []string{"rulesdb", "memorydb"} {
		assert.Equal(t, before[db], dataContent(t, st[db].URL), "%s: exactly the data from before the nuke", db)
	}

	// A second data-only restore succeeds with the same result.
	r := p.aidb("restore", "--yes", "--no-backup", "--data-only", "rulesdb", files["rulesdb"])
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, before["rulesdb"], dataContent(t, st["rulesdb"].URL))

	// The sequences are past the restored rows: the application's next insert works.
	_, err := connect(t, st["rulesdb"].URL).Exec(t.Context(), "INSERT INTO rules (project_id, name, body) VALUES (1, 'after restore', 'x')")
	require.NoError(t, err)
	_, err = connect(t, st["memorydb"].URL).Exec(t.Context(), "INSERT INTO memories (kind, content, embedding) VALUES ('fact', 'after', array_fill(0.5::real, ARRAY[384]))")
	require.NoError(t, err)
}

func TestFullAndAllOrNothingRestores(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rsfull")
	dir := p.backupDir()
	p.seeded("150")
	st := p.status()
	res := p.backupJSON("--compress", "gzip")
	files := map[string]string{}
	before := map[string]map[string][]string{}
	for _, f := range res.Files {
		files[f.Database] = f.Path
		before[f.Database] = content(t, st[f.Database].URL)
	}

	// Change both databases, then restore rulesdb alone.
	_, err := connect(t, st["rulesdb"].URL).Exec(t.Context(), "DELETE FROM rule_tags; UPDATE rules SET body = 'changed'; CREATE TABLE extra (x int)")
	require.NoError(t, err)
	_, err = connect(t, st["memorydb"].URL).Exec(t.Context(), "DELETE FROM memory_links")
	require.NoError(t, err)
	r := p.aidb("restore", "--yes", "rulesdb", files["rulesdb"])
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: safety backup in "+dir, "the replaced data was backed up first")
	assert.Equal(t, before["rulesdb"], content(t, st["rulesdb"].URL), "exactly the backed-up data, the extra table gone")
	assert.Empty(t, restoreLeftovers(t, st["rulesdb"].URL), "no temporary or old database left")

	// All or nothing: a tampered memorydb file (its checksum recomputed, so
	// only the restore's verification can tell) stops both.
	_, err = connect(t, st["rulesdb"].URL).Exec(t.Context(), "DELETE FROM tags WHERE id = 1")
	require.NoError(t, err)
	changedRules := content(t, st["rulesdb"].URL)
	changedMem := content(t, st["memorydb"].URL)
	tampered := filepath.Join(p.dir, "memorydb-tampered.sql")
	raw := readAllPlain(t, files["memorydb"])
	edited := strings.Replace(raw, "\tfact\t", "\tFACT\t", 1)
	require.NotEqual(t, raw, edited)
	writeWithManifest(t, files["memorydb"], tampered, []byte(edited))

	r = p.aidb("restore", "--yes", "--no-backup", "--all", "rulesdb="+files["rulesdb"], "memorydb="+tampered)
	assert.Equal(t, 3, r.code, r.stderr)
	assert.Contains(t, r.stderr, "public.memories: same")
	assert.Equal(t, changedRules, content(t, st["rulesdb"].URL), "rulesdb unchanged: nothing was swapped")
	assert.Equal(t, changedMem, content(t, st["memorydb"].URL))
	assert.Empty(t, restoreLeftovers(t, st["rulesdb"].URL))
	assert.Empty(t, restoreLeftovers(t, st["memorydb"].URL))

	r = p.aidb("restore", "--yes", "--no-backup", "--all", "rulesdb="+files["rulesdb"], "memorydb="+files["memorydb"])
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, before["rulesdb"], content(t, st["rulesdb"].URL))
	assert.Equal(t, before["memorydb"], content(t, st["memorydb"].URL))
}

// readAllPlain returns a backup's plain SQL.
func readAllPlain(t *testing.T, path string) string {
	t.Helper()
	b, err := readAll(openPlain(t, path))
	require.NoError(t, err)
	return string(b)
}

// writeWithManifest writes content as a plain backup at dst with the
// manifest of src, its size and sha256 recomputed: a file whose checksum
// matches but whose content differs from what the manifest describes.
func writeWithManifest(t *testing.T, src, dst string, content []byte) {
	t.Helper()
	m := readManifest(t, src)
	require.NoError(t, os.WriteFile(dst, content, 0o600))
	sum := sha256.Sum256(content)
	m.File, m.Size, m.SHA256, m.Compression = filepath.Base(dst), int64(len(content)), hex.EncodeToString(sum[:]), "none"
	b, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(manifest.PathFor(dst), b, 0o600))
}

func TestRestoreRefusalsAndFailuresChangeNothing(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rsbad")
	p.backupDir()
	p.seeded("80")
	st := p.status()
	url := st["rulesdb"].URL
	full := p.backupJSON("rulesdb").Files[0].Path
	data := p.backupJSON("rulesdb", "--data-only").Files[0].Path
	memFull := p.backupJSON("memorydb").Files[0].Path
	_, err := connect(t, url).Exec(t.Context(), "UPDATE rules SET body = 'current' WHERE id < 10")
	require.NoError(t, err)
	current := content(t, url)

	raw, err := os.ReadFile(full)
	require.NoError(t, err)
	flipped := filepath.Join(p.dir, "rulesdb-flipped.sql")
	f2 := append([]byte{}, raw...)
	f2[len(f2)/2] ^= 0x01
	require.NoError(t, os.WriteFile(flipped, f2, 0o600))
	copyFile(t, manifest.PathFor(full), manifest.PathFor(flipped))

	cut := filepath.Join(p.dir, "rulesdb-cut.sql")
	require.NoError(t, os.WriteFile(cut, raw[:len(raw)*6/10], 0o600))
	copyFile(t, manifest.PathFor(full), manifest.PathFor(cut))
	cutBare := filepath.Join(p.dir, "rulesdb-cut-nomanifest.sql")
	require.NoError(t, os.WriteFile(cutBare, raw[:len(raw)*6/10], 0o600))

	// A pg_dump file without a manifest whose statement in the middle fails.
	text := string(raw)
	i := strings.Index(text, "CREATE TABLE public.rules ")
	require.Positive(t, i)
	failing := filepath.Join(p.dir, "rulesdb-failing.sql")
	require.NoError(t, os.WriteFile(failing, []byte(text[:i]+"SELECT 1/0;\n"+text[i:]), 0o600))

	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"wrong database", []string{"rulesdb", memFull}, 2, "is a backup of memorydb, not of rulesdb"},
		{"missing file", []string{"rulesdb", filepath.Join(p.dir, "nope.sql")}, 2, "no such file"},
		{"flipped bit", []string{"rulesdb", flipped}, 2, "sha256"},
		{"cut at 60%", []string{"rulesdb", cut}, 2, "truncated"},
		{"cut at 60% without manifest", []string{"rulesdb", cutBare}, 2, "cut short"},
		{"statement fails half-way", []string{"rulesdb", failing}, 1, "division by zero"},
		{"data-only file as full", []string{"rulesdb", data}, 2, "--data-only"},
		{"full file as data-only", []string{"--data-only", "rulesdb", full}, 2, "not a data-only one"},
	}
	for _, c := range cases {
		r := p.aidb(append([]string{"restore", "--yes", "--no-backup"}, c.args...)...)
		assert.Equal(t, c.code, r.code, "%s: %s", c.name, r.stderr)
		assert.Contains(t, r.stderr, c.want, c.name)
		assert.Equal(t, current, content(t, url), "%s: the database is as it was", c.name)
	}
	assert.Empty(t, restoreLeftovers(t, url))

	// A data-only file whose tables the target lacks.
	_, err = connect(t, url).Exec(t.Context(), "DROP TABLE rule_tags")
	require.NoError(t, err)
	current = content(t, url)
	r := p.aidb("restore", "--yes", "--no-backup", "--data-only", "rulesdb", data)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "lacks table public.rule_tags")
	assert.Contains(t, r.stderr, "run aidb migrate")
	assert.Equal(t, current, content(t, url))
}

func TestRestoreInterruptedChangesNothing(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rsint")
	p.backupDir()
	p.seeded("3000", "memorydb")
	st := p.status()
	url := st["memorydb"].URL
	full := p.backupJSON("memorydb").Files[0].Path
	data := p.backupJSON("memorydb", "--data-only").Files[0].Path
	_, err := connect(t, url).Exec(t.Context(), "DELETE FROM memory_links WHERE from_id < 100")
	require.NoError(t, err)
	current := content(t, url)

	// Ctrl-C while the full restore loads into its temporary database.
	cmd := p.command(t.Context(), "restore", "--yes", "--no-backup", "memorydb", full)
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, time.Minute, func() bool { return len(restoreLeftovers(t, url)) > 0 })
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	_ = cmd.Wait()
	assert.Equal(t, 130, cmd.ProcessState.ExitCode(), stderr.String())
	assert.Equal(t, current, content(t, url))
	waitFor(t, 30*time.Second, func() bool { return len(restoreLeftovers(t, url)) == 0 })

	// Ctrl-C while a data-only restore waits in its transaction.
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.WithoutCancel(t.Context())) }()
	tx, err := conn.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), "LOCK TABLE memory_links IN ACCESS SHARE MODE")
	require.NoError(t, err)
	cmd = p.command(t.Context(), "restore", "--yes", "--no-backup", "--data-only", "memorydb", data)
	stderr = safeBuffer{}
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	// The restore's TRUNCATE waits for the lock this test holds.
	waitFor(t, time.Minute, func() bool {
		var n int
		err := connect(t, url).QueryRow(t.Context(), "SELECT count(*) FROM pg_locks WHERE NOT granted").Scan(&n)
		return err == nil && n > 0
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	_ = cmd.Wait()
	assert.Equal(t, 130, cmd.ProcessState.ExitCode(), stderr.String())
	require.NoError(t, tx.Rollback(t.Context()))
	assert.Equal(t, current, content(t, url), "the data-only restore rolled back")
}

func TestPlainPgDumpFileWithoutManifestRestores(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rsplain")
	p.backupDir()
	p.seeded("60", "rulesdb")
	st := p.status()
	url := st["rulesdb"].URL
	before := content(t, url)

	// A dump made the way users make them today, without aidb.
	dump := filepath.Join(p.dir, "rulesdb-by-hand.sql")
	out, err := execIn(t, st["rulesdb"].Container, "pg_dump", "-U", "rules", "rulesdb")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dump, out, 0o600))
	_, err = connect(t, url).Exec(t.Context(), "DELETE FROM rule_versions")
	require.NoError(t, err)

	r := p.aidb("restore", "--yes", "--no-backup", "rulesdb", dump)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "has no manifest")
	assert.Contains(t, r.stderr, "not verified")
	assert.Equal(t, before, content(t, url))
}

func TestRestoreAfterTheServerDiedMidRestore(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rscrash")
	p.backupDir()
	p.seeded("3000", "memorydb")
	st := p.status()
	url := st["memorydb"].URL
	full := p.backupJSON("memorydb").Files[0].Path
	want := content(t, url)

	// The database container dies while the restore loads its temporary database.
	cmd := p.command(t.Context(), "restore", "--yes", "--no-backup", "memorydb", full)
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, time.Minute, func() bool { return len(restoreLeftovers(t, url)) > 0 })
	_, err := docker.ContainerKill(t.Context(), st["memorydb"].Container, client.ContainerKillOptions{Signal: "SIGKILL"})
	require.NoError(t, err)
	_ = cmd.Wait()
	assert.Equal(t, 1, cmd.ProcessState.ExitCode(), stderr.String())
	assert.Contains(t, stderr.String(), "the database container "+st["memorydb"].Container+" stopped while the file was loading (exited, exit code 137: killed")

	require.Equal(t, 0, p.aidb("up", "memorydb").code)
	// Crash recovery moves sequences ahead (PostgreSQL logs them 32 values
	// at a time); every row is as it was.
	assert.Equal(t, rowsOnly(want), rowsOnly(content(t, url)), "the target's rows are as they were")
	left := restoreLeftovers(t, url)
	require.NotEmpty(t, left, "a crash leaves the temporary database behind")

	// The next restore drops it, and restores.
	r := p.aidb("restore", "--yes", "--no-backup", "memorydb", full)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "dropped "+left[0]+", left by an interrupted restore")
	assert.Empty(t, restoreLeftovers(t, url))
	assert.Equal(t, want, content(t, url))
}

// rowsOnly is a content reading without its sequences.
func rowsOnly(c map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range c {
		if !strings.HasPrefix(k, "sequence ") {
			out[k] = v
		}
	}
	return out
}
