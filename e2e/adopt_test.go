package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A project of its own (its compose file found by aidb, not named; its
// service and database names; its goose migrations) adopts aidb through
// aidb init and the Makefile.ai it writes, calling aidb as AIDB: up,
// migrate, backup-all, verify-all, a full restore from latest, a
// data-only backup and its restore, each checked on the rows.
func TestAdoptAProjectThroughInitAndItsMakefile(t *testing.T) {
	t.Parallel()
	p := newProject(t, "adopt")
	dir := p.backupDir()
	write := func(rel, content string) {
		t.Helper()
		path := filepath.Join(p.dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	}
	write("compose.yaml", `
services:
  appdb:
    image: postgres:15
    environment:
      POSTGRES_PASSWORD: pw
      POSTGRES_DB: app
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
  vectors:
    image: pgvector/pgvector:pg17
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
  web:
    image: example/web:1
`)
	write("db/appdb/001_notes.sql", "-- +goose Up\nCREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);\n-- +goose Down\nDROP TABLE notes;\n")
	write("db/vectors/001_items.sql", "-- +goose Up\nCREATE EXTENSION IF NOT EXISTS vector;\nCREATE TABLE items (id int PRIMARY KEY, v vector(3));\n-- +goose Down\nDROP TABLE items;\n")

	r := p.aidb("init", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var plan struct {
		ComposeFile string `json:"compose_file"`
		Databases   []struct {
			Name, Service, Image, Migrations string
		} `json:"databases"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &plan), r.stdout)
	assert.Equal(t, filepath.Join(p.dir, "compose.yaml"), plan.ComposeFile, "found, not named")
	require.Len(t, plan.Databases, 2, "the two PostgreSQL services, not web")
	assert.Equal(t, "db/appdb", plan.Databases[0].Migrations)
	assert.Equal(t, "db/vectors", plan.Databases[1].Migrations)
	again := p.aidb("init")
	assert.Equal(t, 2, again.code, "no overwrite without --force")
	assert.Contains(t, again.stderr, "--force")

	mk := filepath.Join(p.dir, "Makefile.ai")
	for _, target := range []string{"ai-db-up", "ai-db-migrate"} {
		r := p.makeWith(mk, target)
		require.Equal(t, 0, r.code, "%s: %s", target, r.stderr)
	}
	st := p.status()
	app, vec := connect(t, st["appdb"].URL), connect(t, st["vectors"].URL)
	_, err := app.Exec(t.Context(), `INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 200) g`)
	require.NoError(t, err)
	_, err = vec.Exec(t.Context(), `INSERT INTO items SELECT g, ARRAY[g, g + 1, g + 2]::vector FROM generate_series(1, 50) g`)
	require.NoError(t, err)
	notes, items := contentByName(t, st["appdb"].URL), contentByName(t, st["vectors"].URL)

	for _, target := range []string{"ai-db-backup-all", "ai-db-verify-all"} {
		r := p.makeWith(mk, target, "JUNIT=report.xml")
		require.Equal(t, 0, r.code, "%s: %s", target, r.stderr)
	}
	assert.FileExists(t, filepath.Join(p.dir, "report.xml"))

	_, err = app.Exec(t.Context(), `DELETE FROM notes WHERE id > 100`)
	require.NoError(t, err)
	_, err = vec.Exec(t.Context(), `DELETE FROM items`)
	require.NoError(t, err)
	r = p.makeWith(mk, "ai-db-restore", "BACKUP=latest")
	require.Equal(t, 0, r.code, r.stderr)
	r = p.makeWith(mk, "ai-memorydb-restore", "BACKUP_FILE=latest")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, notes, contentByName(t, st["appdb"].URL), "appdb from its latest backup")
	assert.Equal(t, items, contentByName(t, st["vectors"].URL), "vectors from its latest backup")

	r = p.makeWith(mk, "ai-db-backup-data-only")
	require.Equal(t, 0, r.code, r.stderr)
	data, err := filepath.Glob(filepath.Join(dir, "appdb-data-*.sql"))
	require.NoError(t, err)
	require.Len(t, data, 1, "one data-only backup of appdb")
	_, err = connect(t, st["appdb"].URL).Exec(t.Context(), `UPDATE notes SET body = 'changed'`)
	require.NoError(t, err)
	r = p.makeWith(mk, "ai-db-restore-data", "BACKUP="+data[0])
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, notes, contentByName(t, st["appdb"].URL), "appdb's rows from its data-only backup")
}

// TestAdoptGuideRuns runs every command of docs/adopt.md, as written, on
// a project of its own: aidb installed by the install target into a
// PREFIX of the test's (on PATH), aidb init, and the Makefile.ai it wrote
// calling that aidb; then checks the restores brought the rows back.
func TestAdoptGuideRuns(t *testing.T) {
	t.Parallel()
	needTool(t, "make")
	p := newProject(t, "adoptguide")
	dir := p.backupDir()
	app := t.TempDir() // the project's folder: the guide's commands run in it
	write := func(rel, content string) {
		t.Helper()
		path := filepath.Join(app, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	}
	write("docker-compose.yml", `
services:
  appdb:
    image: postgres:15
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
`)
	write("migrations/001_notes.sql", "-- +goose Up\nCREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);\n-- +goose Down\nDROP TABLE notes;\n")
	prefix := t.TempDir()
	p.env = append(p.env, "PATH="+filepath.Join(prefix, "bin")+":"+os.Getenv("PATH"), "AIDB_BACKUP_DIR="+dir)
	p.dir = app // where nuke runs at cleanup: this project's files

	cmds := guideCommands(t, "../docs/adopt.md")
	table := []guideSubst{
		// The clone's install target, with the binary under test as bin/aidb.
		{"make -f Makefile.ai install PREFIX=$HOME/.local", fixed("make -f " + makefile(t) + " AIDB=" + aidbBin + " SOURCES= install PREFIX=" + prefix)},
		{"backups/appdb-data-YYYYMMDD-HHMMSS.sql", func() string {
			files, err := filepath.Glob(filepath.Join(dir, "appdb-data-*.sql"))
			require.NoError(t, err)
			require.Len(t, files, 1, "the guide's data-only backup")
			return files[0]
		}},
	}
	checkSubstitutions(t, table, cmds)
	var url string
	var notes map[string][]string
	for _, c := range cmds {
		line := c
		for _, e := range table {
			if strings.Contains(line, e.from) {
				line = strings.ReplaceAll(line, e.from, e.to())
			}
		}
		if strings.HasPrefix(line, "make -f Makefile.ai ai-db-restore") && notes == nil {
			// Before the first restore: what it must bring back, then a change.
			url = p.status()["appdb"].URL
			notes = contentByName(t, url)
			_, err := connect(t, url).Exec(t.Context(), `DELETE FROM notes WHERE id > 10; UPDATE notes SET body = 'changed'`)
			require.NoError(t, err)
		}
		cmd := guideShell(t.Context(), p, app, line)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		t.Logf("%s\n%s%s", c, out.String(), errOut.String())
		require.NoError(t, err, "the guide's command failed: %s\n%s", c, errOut.String())
		if line == "make -f Makefile.ai ai-db-backup-data-only" {
			_, err := connect(t, url).Exec(t.Context(), `UPDATE notes SET body = 'again'`)
			require.NoError(t, err)
		}
		if line == "make -f Makefile.ai ai-db-migrate" {
			_, err := connect(t, p.status()["appdb"].URL).Exec(t.Context(), `INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 100) g`)
			require.NoError(t, err)
		}
	}
	require.NotNil(t, notes, "the guide restores")
	assert.Equal(t, notes, contentByName(t, url), "the guide's restores brought the rows back")
	assert.FileExists(t, filepath.Join(prefix, "bin", "aidb"), "installed")
	assert.FileExists(t, filepath.Join(app, "aidb.yaml"))
	assert.FileExists(t, filepath.Join(app, "report.xml"))
}
