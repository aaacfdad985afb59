package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3/lock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/seed"
	"github.com/aidb/aidb/internal/postgres/migrations"
)

// tables lists the base tables of the public schema, the migration
// bookkeeping table left out.
func tables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> $1 ORDER BY 1`, migrations.Table)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

func appliedVersions(t *testing.T, conn *pgx.Conn) []int64 {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT version_id FROM `+migrations.Table+` WHERE version_id > 0 ORDER BY id`)
	require.NoError(t, err)
	v, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return v
}

func TestMigrateWithOnlyDatabasesUpThenSeed(t *testing.T) {
	t.Parallel()
	p := newProject(t, "migrate")
	require.Equal(t, 0, p.aidb("up").code)

	r := p.aidb("migrate")
	require.Equal(t, 0, r.code, r.stderr)
	st := p.status()
	rules := connect(t, st["rulesdb"].URL)
	mem := connect(t, st["memorydb"].URL)
	assert.Equal(t, []string{"projects", "rule_tags", "rule_versions", "rules", "tags"}, tables(t, rules))
	assert.Equal(t, []string{"memories", "memory_links", "sessions"}, tables(t, mem))
	var ext string
	require.NoError(t, mem.QueryRow(t.Context(), "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'").Scan(&ext))
	require.NoError(t, mem.QueryRow(t.Context(), "SELECT extname FROM pg_extension WHERE extname = 'vector'").Scan(&ext), "memorydb keeps embeddings in pgvector")

	// A second run changes nothing.
	r = p.aidb("migrate")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: up to date at version 3")
	assert.Contains(t, r.stderr, "memorydb: up to date at version 3")
	assert.Equal(t, []int64{1, 2, 3}, appliedVersions(t, rules))

	r = p.aidb("migrate", "status", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"version": 3`)
	assert.Contains(t, r.stdout, `"pending": []`)

	// Seed leaves no table of the default schema empty.
	r = p.aidb("seed", "--rows", "60")
	require.Equal(t, 0, r.code, r.stderr)
	for db, conn := range map[string]*pgx.Conn{"rulesdb": rules, "memorydb": mem} {
		s, _ := seed.For(db)
		assert.ElementsMatch(t, s.Tables(), tables(t, conn), "seed knows every table of %s", db)
		for _, tb := range tables(t, conn) {
			var n int64
			require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM "+pgx.Identifier{tb}.Sanitize()).Scan(&n))
			assert.Positive(t, n, "%s.%s", db, tb)
		}
	}
	var memories int64
	require.NoError(t, mem.QueryRow(t.Context(), "SELECT count(*) FROM memories").Scan(&memories))
	assert.Equal(t, int64(60), memories)

	// Seeding again is refused (exit 2) and changes nothing; --if-empty skips.
	r = p.aidb("seed", "rulesdb")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "seed fills empty databases only")
	r = p.aidb("seed", "--if-empty")
	assert.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, mem.QueryRow(t.Context(), "SELECT count(*) FROM memories").Scan(&memories))
	assert.Equal(t, int64(60), memories)

	// Down drops tables and their rows: without --yes (and no terminal to
	// ask on) it is refused, and nothing is reverted.
	r = p.aidb("migrate", "down", "rulesdb", "--to", "1")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "no terminal to ask on; pass --yes")
	assert.Equal(t, []int64{1, 2, 3}, appliedVersions(t, rules))

	// Down to version 1 reverts the later migrations, after a safety
	// backup of the rows they drop.
	r = p.aidb("migrate", "down", "--yes", "rulesdb", "--to", "1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: safety backup in ")
	var list struct {
		Backups []struct {
			Safety *struct {
				Command string `json:"command"`
			} `json:"safety"`
		} `json:"backups"`
	}
	l := p.aidb("list", "--json")
	require.Equal(t, 0, l.code, l.stderr)
	require.NoError(t, json.Unmarshal([]byte(l.stdout), &list))
	require.Len(t, list.Backups, 1)
	require.NotNil(t, list.Backups[0].Safety)
	assert.Equal(t, "aidb migrate down", list.Backups[0].Safety.Command)
	assert.Equal(t, []string{"projects", "rules"}, tables(t, rules))
	assert.Equal(t, []int64{1}, appliedVersions(t, rules))
}

func TestMigrateWaitsForTheLockAndAppliesOnce(t *testing.T) {
	t.Parallel()
	p := newProject(t, "miglock")
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	conn := connect(t, p.status()["rulesdb"].URL)

	// Hold the migration lock as another run would.
	_, err := conn.Exec(t.Context(), "SELECT pg_advisory_lock($1)", lock.DefaultLockID)
	require.NoError(t, err)
	cmd := p.command(t.Context(), "migrate", "rulesdb")
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(stderr.String(), "another migration holds the lock") })
	assert.Empty(t, tables(t, conn), "nothing is applied while the lock is held")
	_, err = conn.Exec(t.Context(), "SELECT pg_advisory_unlock($1)", lock.DefaultLockID)
	require.NoError(t, err)
	require.NoError(t, cmd.Wait(), stderr.String())
	assert.Len(t, tables(t, conn), 5)

	// Two runs at once on a fresh schema: both succeed, each migration once.
	r := p.aidb("migrate", "down", "--yes", "--no-backup", "rulesdb", "--to", "0")
	require.Equal(t, 0, r.code, r.stderr)
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Go(func() { results[i] = p.run(context.WithoutCancel(t.Context()), "migrate", "rulesdb") })
	}
	wg.Wait()
	for _, r := range results {
		assert.Equal(t, 0, r.code, r.stderr)
	}
	assert.Equal(t, []int64{1, 2, 3}, appliedVersions(t, conn))
}

// userMigrations points the project's rulesdb at a migration folder of its
// own through aidb.yaml in the project folder, and returns the folder.
func userMigrations(t *testing.T, p *project, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(p.dir, "db", "rules")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, body := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "aidb.yaml"), []byte(
		"databases:\n  rulesdb:\n    migrations: db/rules\n  memorydb: {}\n"), 0o600))
	return dir
}

func TestFailingMigrationIsRolledBackAndRetried(t *testing.T) {
	t.Parallel()
	p := newProject(t, "migfail")
	dir := userMigrations(t, p, map[string]string{
		"00001_ok.sql":  "-- +goose Up\nCREATE TABLE first (id int);\n-- +goose Down\nDROP TABLE first;\n",
		"00002_bad.sql": "-- +goose Up\nCREATE TABLE second (id int);\nINSERT INTO second VALUES ('not a number');\n-- +goose Down\nDROP TABLE second;\n",
	})
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	conn := connect(t, p.status()["rulesdb"].URL)

	r := p.aidb("migrate", "rulesdb")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "migration 00002_bad.sql failed and was rolled back")
	assert.Contains(t, r.stderr, "INSERT INTO second VALUES ('not a number')", "the failing statement")
	assert.Contains(t, r.stderr, `invalid input syntax for type integer: "not a number"`, "the SQL error")
	assert.Contains(t, r.stderr, "SQLSTATE 22P02")
	assert.Equal(t, []string{"first"}, tables(t, conn), "the failed migration's CREATE TABLE was rolled back")
	assert.Equal(t, []int64{1}, appliedVersions(t, conn))

	// Fixed, the next run resumes at the failed migration.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "00002_bad.sql"), []byte(
		"-- +goose Up\nCREATE TABLE second (id int);\nINSERT INTO second VALUES (2);\n-- +goose Down\nDROP TABLE second;\n"), 0o600))
	r = p.aidb("migrate", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"first", "second"}, tables(t, conn))
	assert.Equal(t, []int64{1, 2}, appliedVersions(t, conn))
}

func TestMigrateBadFolderOrFileChangesNothing(t *testing.T) {
	t.Parallel()
	p := newProject(t, "migbad")
	dir := userMigrations(t, p, map[string]string{
		"00001_ok.sql":        "-- +goose Up\nCREATE TABLE first (id int);\n",
		"00002_no_marker.sql": "CREATE TABLE second (id int);\n",
	})
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	conn := connect(t, p.status()["rulesdb"].URL)

	r := p.aidb("migrate", "rulesdb")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "00002_no_marker.sql")
	assert.Contains(t, r.stderr, "nothing was applied")
	assert.Empty(t, tables(t, conn), "no migration ran")

	require.NoError(t, os.RemoveAll(dir))
	r = p.aidb("migrate", "rulesdb")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "does not exist")
	assert.Contains(t, r.stderr, "aidb.yaml")
}

func TestMigrateWhenDatabaseIsNotUp(t *testing.T) {
	t.Parallel()
	p := newProject(t, "mignotup")
	r := p.aidb("migrate")
	assert.Equal(t, 1, r.code)
	assert.Regexp(t, `run aidb up (memorydb rulesdb|rulesdb memorydb|rulesdb|memorydb) first`, r.stderr, "run by hand, advice names aidb commands")
	assert.Empty(t, p.labelled(t.Context()), "migrate starts nothing")
}
