package compose

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/fault"
)

func TestLoadEmbeddedDefault(t *testing.T) {
	t.Parallel()
	p, err := Load(t.Context(), Options{WorkingDir: t.TempDir()})
	require.NoError(t, err)

	assert.Equal(t, "aidb", p.Name, "the embedded file names its project")
	assert.Equal(t, DefaultComposeName, p.ComposeFile)
	assert.Equal(t, DefaultConfigName, p.ConfigFile)
	assert.Equal(t, 60*time.Second, p.ReadyTimeout)
	assert.Equal(t, 7*24*time.Hour, p.SafetyKeepWithin)
	assert.Equal(t, filepath.Join(p.WorkingDir, "backups"), p.BackupDir)
	require.Equal(t, []string{"memorydb", "rulesdb"}, p.DatabaseNames())

	rules, ok := p.Database("rulesdb")
	require.True(t, ok)
	assert.Equal(t, Database{
		Name: "rulesdb", Service: "rulesdb", Image: "postgres:15",
		User: "rules", Password: "rules-local-dev", DBName: "rulesdb",
		HostIP: "127.0.0.1", HostPort: 55432, DataMount: "/var/lib/postgresql/data",
		EnvVars: map[string][]string{"POSTGRES_USER": {"RULESDB_USER"}, "POSTGRES_PASSWORD": {"RULESDB_PASSWORD"}},
	}, rules, "EnvVars says which variables feed the environment, for messages")
	mem, _ := p.Database("memorydb")
	assert.Equal(t, 55433, mem.HostPort)
	assert.Equal(t, "aidb_memorydb-data", p.Compose.Volumes["memorydb-data"].Name)

	svc, ok := p.Service("rulesdb")
	require.True(t, ok)
	require.NotNil(t, svc.HealthCheck)
	assert.Contains(t, strings.Join(svc.HealthCheck.Test, " "), "pg_isready")
}

func TestLoadInterpolatesEnvironmentOverDotEnv(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// .env gives both ports; the environment wins for rulesdb, as in Compose.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".env"), []byte("RULESDB_PORT=61000\nMEMORYDB_PORT=61001\n"), 0o600))
	p, err := Load(t.Context(), Options{WorkingDir: dir, Env: []string{"RULESDB_PORT=62000", "AIDB_PROJECT=e2e-x1", "AIDB_BACKUP_DIR=/srv/bk"}})
	require.NoError(t, err)

	rules, _ := p.Database("rulesdb")
	mem, _ := p.Database("memorydb")
	assert.Equal(t, 62000, rules.HostPort)
	assert.Equal(t, 61001, mem.HostPort)
	assert.Equal(t, "e2e-x1", p.Name, "AIDB_PROJECT names the project")
	assert.Equal(t, "e2e-x1_rulesdb-data", p.Compose.Volumes["rulesdb-data"].Name)
	assert.Equal(t, "/srv/bk", p.BackupDir)
}

func TestLoadUserFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	composeFile := filepath.Join(dir, "compose.yml")
	require.NoError(t, os.WriteFile(composeFile, []byte(`
services:
  db:
    image: pgvector/pgvector:pg16
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["5499:5432"]
    volumes: ["dbdata:/var/lib/postgresql/data"]
  api:
    image: busybox
volumes:
  dbdata:
`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "aidb.yaml"), []byte(`
backup_dir: ./bk
ready_timeout: 90s
retention:
  safety_keep_within: 36h
  keep_last: 2
  keep_daily: 7
  keep_weekly: 4
  keep_yearly: 1
  pitr_keep_window: 72h
repository: s3://team-backups/aidb
databases:
  main:
    service: db
    migrations: db/migrations
`), 0o600))
	p, err := Load(t.Context(), Options{ComposeFile: composeFile})
	require.NoError(t, err)

	assert.Equal(t, loaderName(dir), p.Name, "no name in the file: the folder names the project")
	assert.Equal(t, filepath.Join(dir, "aidb.yaml"), p.ConfigFile, "aidb.yaml beside the compose file is found")
	assert.Equal(t, filepath.Join(dir, "bk"), p.BackupDir)
	assert.Equal(t, 90*time.Second, p.ReadyTimeout)
	assert.Equal(t, 36*time.Hour, p.SafetyKeepWithin)
	assert.Equal(t, KeepRules{Last: 2, Daily: 7, Weekly: 4, Yearly: 1}, p.Keep)
	assert.Equal(t, 72*time.Hour, p.PITRKeepWindow)
	assert.Equal(t, "s3://team-backups/aidb", p.Repository)
	assert.Equal(t, filepath.Join(dir, "aidb.yaml")+" repository", p.RepositoryFrom)
	db, ok := p.Database("main")
	require.True(t, ok)
	assert.Equal(t, Database{
		Name: "main", Service: "db", Image: "pgvector/pgvector:pg16",
		User: "postgres", Password: "pw", DBName: "postgres",
		Migrations: filepath.Join(dir, "db/migrations"),
		HostIP:     "0.0.0.0", HostPort: 5499, DataMount: "/var/lib/postgresql/data",
	}, db, "official image defaults for user and database")
}

func TestLoadBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		compose string
		config  string
		env     []string
		want    []string
	}{
		{
			name:    "malformed compose file names file and line",
			compose: "services:\n  rulesdb:\n    image: postgres:15\n   ports: [1]\n",
			// The misindented key is on line 4 (the YAML parser the Compose
			// SDK brings counts from 1; the one before said "line 3").
			want: []string{"compose.yml", "(line 4, column 4)"},
		},
		{
			name:   "unknown aidb.yaml key names file and line",
			config: "databases:\n  rulesdb:\n    servise: rulesdb\n",
			want:   []string{"aidb.yaml", "line 3", "servise"},
		},
		{
			name:   "database service missing from compose",
			config: "databases:\n  other:\n    service: nosuch\n",
			want:   []string{"nosuch", "not in the compose file", "memorydb, rulesdb"},
		},
		{
			name:   "no databases",
			config: "backup_dir: x\n",
			want:   []string{"no databases"},
		},
		{
			name:   "bad timeout",
			config: "ready_timeout: soon\ndatabases:\n  rulesdb: {}\n",
			want:   []string{"aidb.yaml", "soon"},
		},
		{
			name:   "negative safety retention",
			config: "retention:\n  safety_keep_within: -1h\ndatabases:\n  rulesdb: {}\n",
			want:   []string{"aidb.yaml", "line 2", "cannot be negative"},
		},
		{
			name:   "negative PITR window",
			config: "retention:\n  pitr_keep_window: -1h\ndatabases:\n  rulesdb: {}\n",
			want:   []string{"aidb.yaml", "line 2", "cannot be negative"},
		},
		{
			name:   "negative keep count",
			config: "retention:\n  keep_daily: -7\ndatabases:\n  rulesdb: {}\n",
			want:   []string{"aidb.yaml", "line 2", `"-7"`, "0 or more"},
		},
		{
			name:   "unknown retention key",
			config: "retention:\n  keep_safety: 1h\ndatabases:\n  rulesdb: {}\n",
			want:   []string{"aidb.yaml", "line 2", "keep_safety"},
		},
		{
			name:    "database without a host port",
			compose: "services:\n  rulesdb:\n    image: postgres:15\n  memorydb:\n    image: postgres:15\n    ports: [\"5433:5432\"]\n",
			want:    []string{"rulesdb", "publishes no host port"},
		},
		{
			name: "port variable that is not a number names the variable and the entry",
			env:  []string{"RULESDB_PORT=abc"},
			want: []string{`RULESDB_PORT="abc" gives no host port`, "service rulesdb", `"127.0.0.1:${RULESDB_PORT:-55432}:5432"`, "(embedded) docker-compose.yaml", "set RULESDB_PORT to a free port number", "file's default"},
		},
		{
			name: "port variable out of range",
			env:  []string{"MEMORYDB_PORT=70000"},
			want: []string{`MEMORYDB_PORT="70000"`, "service memorydb"},
		},
		{
			name:    "long-syntax published port from a variable",
			compose: "services:\n  rulesdb:\n    image: postgres:15\n    ports:\n      - target: 5432\n        published: ${PG_PORT}\n",
			env:     []string{"PG_PORT=x1"},
			want:    []string{`PG_PORT="x1" gives no host port`, "service rulesdb", "compose.yml"},
		},
		{
			name: "bad project name",
			env:  []string{"AIDB_PROJECT=Bad Name"},
			want: []string{"AIDB_PROJECT", "Bad Name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := Options{WorkingDir: dir, Env: tt.env}
			if tt.compose != "" {
				opts.ComposeFile = filepath.Join(dir, "compose.yml")
				require.NoError(t, os.WriteFile(opts.ComposeFile, []byte(tt.compose), 0o600))
			}
			if tt.config != "" {
				opts.ConfigFile = filepath.Join(dir, "aidb.yaml")
				require.NoError(t, os.WriteFile(opts.ConfigFile, []byte(tt.config), 0o600))
			}
			_, err := Load(t.Context(), opts)
			require.Error(t, err)
			assert.Equal(t, fault.Invalid, fault.KindOf(err), "bad input exits 2: %v", err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	p, err := Load(t.Context(), Options{WorkingDir: t.TempDir()})
	require.NoError(t, err)

	all, err := p.Select(nil)
	require.NoError(t, err)
	assert.Len(t, all, 2)

	one, err := p.Select([]string{"rulesdb"})
	require.NoError(t, err)
	require.Len(t, one, 1)
	assert.Equal(t, "rulesdb", one[0].Name)

	_, err = p.Select([]string{"rulesdb", "nosuchdb"})
	require.Error(t, err)
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assert.Contains(t, err.Error(), `unknown database "nosuchdb"`)
	assert.Contains(t, err.Error(), "memorydb, rulesdb")
}

func loaderName(dir string) string { return strings.ToLower(filepath.Base(dir)) }

// Profiles are as in Docker Compose (the option, else COMPOSE_PROFILES,
// from the environment or .env), and never disable a database.
func TestLoadProfiles(t *testing.T) {
	t.Parallel()
	file := `services:
  rulesdb:
    image: postgres:15
    profiles: [db]
    environment: {POSTGRES_PASSWORD: pw}
    ports: ["127.0.0.1:55432:5432"]
  memorydb:
    image: postgres:15
    environment: {POSTGRES_PASSWORD: pw}
    ports: ["127.0.0.1:55433:5432"]
  api: {image: api:1, profiles: [app]}
  worker: {image: worker:1, profiles: [jobs]}
  web: {image: web:1}
`
	for _, tc := range []struct {
		name     string
		env      []string
		dotEnv   string
		profiles []string
		want     []string
	}{
		{name: "none", want: []string{"memorydb", "rulesdb", "web"}},
		{name: "COMPOSE_PROFILES", env: []string{"COMPOSE_PROFILES=app, jobs"}, want: []string{"api", "memorydb", "rulesdb", "web", "worker"}},
		{name: ".env", dotEnv: "COMPOSE_PROFILES=jobs\n", want: []string{"memorydb", "rulesdb", "web", "worker"}},
		{name: "the option wins", env: []string{"COMPOSE_PROFILES=jobs"}, profiles: []string{"app"}, want: []string{"api", "memorydb", "rulesdb", "web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			f := filepath.Join(dir, "compose.yaml")
			require.NoError(t, os.WriteFile(f, []byte(file), 0o600))
			if tc.dotEnv != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, ".env"), []byte(tc.dotEnv), 0o600))
			}
			p, err := Load(t.Context(), Options{ComposeFile: f, Env: tc.env, Profiles: tc.profiles})
			require.NoError(t, err)
			names := p.Compose.ServiceNames()
			sort.Strings(names)
			assert.Equal(t, tc.want, names)
			assert.Equal(t, []string{"memorydb", "rulesdb"}, p.DatabaseNames())
		})
	}
}

// ImageVars names the variables a database's image is interpolated from
// (what to set in .env after an upgrade); none where the image is written
// out.
func TestImageVars(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "compose.yaml")
	content := strings.Replace(string(defaultCompose), "image: postgres:15", "image: postgres:${RULESDB_PG:-15}", 1)
	require.NoError(t, os.WriteFile(f, []byte(content), 0o600))
	p, err := Load(t.Context(), Options{ComposeFile: f, WorkingDir: dir})
	require.NoError(t, err)
	rules, _ := p.Database("rulesdb")
	mem, _ := p.Database("memorydb")
	assert.Equal(t, "postgres:15", rules.Image)
	assert.Equal(t, []string{"RULESDB_PG"}, rules.ImageVars)
	assert.Empty(t, mem.ImageVars)
}

// Without -f, aidb finds the project's compose file as Docker Compose
// does: the first of compose.yaml, compose.yml, docker-compose.yaml and
// docker-compose.yml in the folder, else in the nearest folder above; the
// project's folder is then the file's (aidb.yaml, .env and the backups
// beside it). Without an aidb.yaml there, the error names both files and
// says to run aidb init.
func TestLoadDiscoversTheProjectsComposeFile(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	deep := filepath.Join(root, "src", "app")
	require.NoError(t, os.MkdirAll(deep, 0o700))
	service := []byte("services:\n  appdb:\n    image: postgres:15\n    environment:\n      POSTGRES_PASSWORD: pw\n    ports: [\"127.0.0.1:5499:5432\"]\n")
	require.NoError(t, os.WriteFile(filepath.Join(root, "docker-compose.yml"), service, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(root, "compose.yaml"), service, 0o600))

	found, err := FindComposeFile(deep)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(root, "compose.yaml"), found, "compose.yaml before docker-compose.yml, from a folder below")

	_, err = Load(t.Context(), Options{Discover: true, WorkingDir: deep})
	require.Error(t, err)
	assert.Equal(t, fault.Invalid, fault.KindOf(err), "%v", err)
	for _, want := range []string{filepath.Join(root, "compose.yaml"), DefaultConfigName, "aidb init", `service "memorydb" is not in the compose file`, "services: appdb"} {
		assert.Contains(t, err.Error(), want)
	}

	require.NoError(t, os.WriteFile(filepath.Join(root, "aidb.yaml"), []byte("databases:\n  app:\n    service: appdb\n"), 0o600))
	p, err := Load(t.Context(), Options{Discover: true, WorkingDir: deep})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(root, "compose.yaml"), p.ComposeFile)
	assert.Equal(t, filepath.Join(root, "aidb.yaml"), p.ConfigFile, "aidb.yaml beside the compose file found")
	assert.Equal(t, filepath.Join(root, "backups"), p.BackupDir)
	_, ok := p.Database("app")
	assert.True(t, ok)

	none, err := FindComposeFile("/")
	require.NoError(t, err)
	assert.Empty(t, none, "no compose file at the root: the embedded default")
	p, err = Load(t.Context(), Options{Discover: false, WorkingDir: deep})
	require.NoError(t, err)
	assert.Equal(t, DefaultComposeName, p.ComposeFile, "without Discover, the embedded default")
}
