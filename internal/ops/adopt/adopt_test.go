package adopt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestIsPostgresByTheImagesRepository(t *testing.T) {
	t.Parallel()
	for _, img := range []string{"postgres:15", "postgres", "pgvector/pgvector:pg17", "postgis/postgis:16-3.4", "timescale/timescaledb:latest-pg16",
		"registry.example:5000/team/postgres@sha256:abc", "aidb.local/postgres:17", "bitnami/postgresql:16"} {
		assert.True(t, IsPostgres(img), img)
	}
	for _, img := range []string{"nginx", "redis:7", "example/postgres-exporter:1", "mysql:8", ""} {
		assert.False(t, IsPostgres(img), img)
	}
}

// writeTree writes files (path: content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o700))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	}
}

const goose = "-- +goose Up\nCREATE TABLE t (id int);\n-- +goose Down\nDROP TABLE t;\n"

// Each PostgreSQL service gets the migration folder whose path names it;
// folders of no database, databases without one, and what is hidden or
// vendored are told apart.
func TestInspectMapsServicesToTheirMigrationFolders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"compose.yaml":                        "services: {}\n",
		"db/appdb/001_a.sql":                  goose,
		"services/vectors/migrations/1_b.sql": goose,
		"tools/old_sql/x.sql":                 goose,
		"node_modules/pkg/appdb/1.sql":        goose,
		".git/appdb/1.sql":                    goose,
		"db/seeds/appdb.sql":                  "INSERT INTO t VALUES (1);\n",
		"a/b/c/d/e/appdb/1.sql":               goose,
	})
	images := map[string]string{"vectors": "pgvector/pgvector:pg17", "appdb": "postgres:15", "cache": "redis:7", "reports": "postgres:17"}
	p, err := Inspect(filepath.Join(dir, "compose.yaml"), images)
	require.NoError(t, err)
	assert.Equal(t, []string{"db/appdb", "services/vectors/migrations", "tools/old_sql"}, p.Folders)
	assert.Equal(t, []Database{
		{Name: "appdb", Service: "appdb", Image: "postgres:15", Migrations: "db/appdb"},
		{Name: "reports", Service: "reports", Image: "postgres:17"},
		{Name: "vectors", Service: "vectors", Image: "pgvector/pgvector:pg17", Migrations: "services/vectors/migrations"},
	}, p.Databases)
	notes := strings.Join(p.Notes, "\n")
	assert.Contains(t, notes, "reports: no migration folder found")
	assert.Contains(t, notes, "tools/old_sql holds goose migrations of no database")

	cfg := p.Config()
	var doc struct {
		BackupDir string `yaml:"backup_dir"`
		Databases map[string]struct {
			Service    string `yaml:"service"`
			Migrations string `yaml:"migrations"`
		} `yaml:"databases"`
	}
	require.NoError(t, yaml.Unmarshal(cfg, &doc), string(cfg))
	assert.Equal(t, "backups", doc.BackupDir)
	assert.Equal(t, "db/appdb", doc.Databases["appdb"].Migrations)
	assert.Equal(t, "reports", doc.Databases["reports"].Service)
	assert.Empty(t, doc.Databases["reports"].Migrations)

	mk := string(p.Makefile())
	assert.Contains(t, mk, "AIDB       ?= aidb\n")
	assert.Contains(t, mk, "RULESDB    ?= appdb\n")
	assert.Contains(t, mk, "MEMORYDB   ?= reports\n")
	assert.Contains(t, mk, "(the others, vectors, through DB=name)")
	assert.True(t, strings.HasSuffix(mk, Workflow), "the story's targets, whole")
	assert.NotContains(t, mk, "go build", "no Go module needed")
}

// One database and one folder belong together, whatever the folder's
// name; no PostgreSQL service is an error naming the services.
func TestInspectOneDatabaseAndNone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"migrations/001.sql": goose})
	p, err := Inspect(filepath.Join(dir, "docker-compose.yml"), map[string]string{"db": "postgres:16", "web": "nginx"})
	require.NoError(t, err)
	require.Len(t, p.Databases, 1)
	assert.Equal(t, "migrations", p.Databases[0].Migrations)
	assert.Empty(t, p.Notes)
	assert.Contains(t, string(p.Makefile()), "MEMORYDB   ?= \n")

	_, err = Inspect(filepath.Join(dir, "docker-compose.yml"), map[string]string{"web": "nginx", "cache": "redis:7"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no PostgreSQL service")
	assert.Contains(t, err.Error(), "cache (redis:7), web (nginx)")
}

// Names YAML would read otherwise are quoted: each reads back as itself.
func TestYAMLKey(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "app_db-1", yamlKey("app_db-1"))
	for _, s := range []string{"yes", "it's", "1.0", "a: b", "#x", "null", ""} {
		var m map[string]string
		require.NoError(t, yaml.Unmarshal([]byte("k: "+yamlKey(s)), &m))
		assert.Equal(t, s, m["k"], "%q written as %s", s, yamlKey(s))
	}
}
