package restore

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/backupfile"
	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/fault"
	"github.com/aidb/aidb/fingerprint"
	"github.com/aidb/aidb/manifest"
	"github.com/aidb/aidb/pgdump"
	"github.com/aidb/aidb/pgrun"
)

// fakeEngine is the engine of a restore's steps that need no server: the
// connection string, and psql reading its script.
type fakeEngine struct {
	psqlErr error
	// script and dbname are what psql was given.
	script []byte
	dbname string
}

func (f *fakeEngine) RequireReady(context.Context, compose.Database) error { return nil }
func (f *fakeEngine) ConnString(db compose.Database) string {
	return "postgres://aidb@127.0.0.1:5432/" + db.DBName + "?sslmode=disable"
}

func (f *fakeEngine) Psql(_ context.Context, _ compose.Database, dbname string, _ pgrun.Transport, _ string, script io.Reader) error {
	f.dbname = dbname
	b, err := io.ReadAll(script)
	f.script = b
	if err != nil {
		return err
	}
	return f.psqlErr
}

func TestNewStagingNamesItsDatabases(t *testing.T) {
	t.Parallel()
	s := newStaging(&fakeEngine{}, Plan{Request: Request{DB: compose.Database{Name: "rulesdb", DBName: "rules"}}})
	assert.Equal(t, "rules", s.target)
	assert.Equal(t, "postgres://aidb@127.0.0.1:5432/postgres?sslmode=disable", s.admin)
	assert.Regexp(t, `^rules_aidb_restore_[0-9a-f]{8}$`, s.temp)

	// The swap cannot rename the database it is connected to.
	s = newStaging(&fakeEngine{}, Plan{Request: Request{DB: compose.Database{Name: "pg", DBName: "postgres"}}})
	assert.Equal(t, "postgres://aidb@127.0.0.1:5432/template1?sslmode=disable", s.admin)
	assert.Regexp(t, `^postgres_aidb_restore_[0-9a-f]{8}$`, s.temp)
}

func TestStagingLoadRunsTheFileIntoTheTemporaryDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rulesdb-20250102-030405.sql")
	require.NoError(t, os.WriteFile(path, []byte(sampleDump), 0o600))
	plan := func(phases *[]Phase) Plan {
		return Plan{
			Request: Request{DB: compose.Database{Name: "rulesdb", DBName: "rules"}, File: "rulesdb-latest.sql",
				Phase: func(ph Phase) { *phases = append(*phases, ph) }},
			Path: path, Size: int64(len(sampleDump)), Compression: backupfile.None, Kind: backupfile.Full,
		}
	}

	var phases []Phase
	e := &fakeEngine{}
	s := newStaging(e, plan(&phases))
	require.NoError(t, s.load(t.Context()))
	assert.Equal(t, s.temp, e.dbname, "loaded into the temporary database, never the target")
	// The index builds get their memory for the whole load (LoadSettings).
	assert.Equal(t, "BEGIN;\nSET LOCAL maintenance_work_mem = '256MB';\nSET LOCAL max_parallel_maintenance_workers = '0';\n\n"+sampleDump+"\n\nCOMMIT;\n", string(e.script))
	assert.Equal(t, []Phase{PhaseLoad}, phases)

	phases = nil
	e = &fakeEngine{psqlErr: errors.New("psql: ERROR: syntax error")}
	s = newStaging(e, plan(&phases))
	err := s.load(t.Context())
	require.Error(t, err)
	assert.Equal(t, "restore rulesdb-latest.sql into a temporary database (the target was not touched): psql: ERROR: syntax error", err.Error())
	assert.ErrorIs(t, err, e.psqlErr)
}

func TestFingerprintOptionsMatchTheManifest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		kind backupfile.Kind
		m    *manifest.Manifest
		want fingerprint.Options
	}{
		{name: "full without a manifest", kind: backupfile.Full, want: fingerprint.Options{Data: true}},
		{name: "full", kind: backupfile.Full, m: &manifest.Manifest{Format: manifest.Format, MigrationTable: "public.goose_db_version"},
			want: fingerprint.Options{Data: true, MigrationTable: "public.goose_db_version", Columns: map[string][]string{}}},
		{name: "full reads the manifest's columns by name, in its order", kind: backupfile.Full, m: &manifest.Manifest{Format: manifest.Format,
			Tables: []fingerprint.Table{{Schema: "public", Name: "b_star", Columns: []string{"class", "a", "b", "z"}}, {Schema: "public", Name: "none"}}},
			want: fingerprint.Options{Data: true, Columns: map[string][]string{"public.b_star": {"class", "a", "b", "z"}}}},
		{name: "full, format 2 schema hash with the children's column order", kind: backupfile.Full, m: &manifest.Manifest{Format: 2},
			want: fingerprint.Options{Data: true, ChildColumnOrder: true, Columns: map[string][]string{}}},
		{name: "full, format 1 hashes", kind: backupfile.Full, m: &manifest.Manifest{Format: 1},
			want: fingerprint.Options{Data: true, WholeRow: true, ChildColumnOrder: true, Columns: map[string][]string{}}},
		{name: "schema compares the bookkeeping rows", kind: backupfile.Schema, m: &manifest.Manifest{Format: manifest.Format, MigrationTable: "public.goose_db_version"},
			want: fingerprint.Options{MigrationTable: "public.goose_db_version", DataOf: []string{"public.goose_db_version"}, Columns: map[string][]string{}}},
		{name: "schema without migrations", kind: backupfile.Schema, m: &manifest.Manifest{Format: manifest.Format},
			want: fingerprint.Options{Columns: map[string][]string{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, fingerprintOptions(Plan{Kind: tt.kind, Manifest: tt.m}))
		})
	}
}

func TestDataTablesFromManifestOrFile(t *testing.T) {
	t.Parallel()
	tables := pgdump.Tables{Copies: []pgdump.Copy{{Table: pgdump.Table{Schema: "public", Name: "rules"}, Columns: []string{"id", "Name"}}}}
	assert.Equal(t, []fingerprint.Table{{Schema: "public", Name: "rules", Columns: []string{"id", "Name"}}}, dataTables(nil, tables))
	m := &manifest.Manifest{Tables: []fingerprint.Table{{Schema: "app", Name: "memories", Columns: []string{"id"}}}}
	assert.Equal(t, m.Tables, dataTables(m, tables), "the manifest wins")
}

func TestMissingColumns(t *testing.T) {
	t.Parallel()
	tables := []fingerprint.Table{
		{Schema: "public", Name: "rules", Columns: []string{"id", "Name", "body"}},
		{Schema: "public", Name: "projects", Columns: []string{"id"}},
		{Schema: "My Schema", Name: "odd.table", Columns: []string{"x"}},
	}
	have := map[string]map[string]bool{
		"public.rules":        {"id": true, "body": true, "name": true},
		"My Schema.odd.table": {"x": true},
	}
	assert.Equal(t, []string{"column public.rules.Name", "table public.projects"}, missingColumns(tables, have))
	have["public.rules"]["Name"] = true
	have["public.projects"] = map[string]bool{"id": true}
	assert.Empty(t, missingColumns(tables, have))
}

func TestCannotTakeDataSaysWhatIsMissing(t *testing.T) {
	t.Parallel()
	p := &Plan{Request: Request{DB: compose.Database{Name: "rulesdb"}, File: "rulesdb-data-20250102-030405.sql"},
		Manifest: &manifest.Manifest{MigrationVersion: 7}}
	err := p.cannotTakeData([]string{"table public.rules", "column public.projects.owner"}, true, 5, "backups/rulesdb-schema-20250101-000000.sql")
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assert.Equal(t, "rulesdb cannot take the data of rulesdb-data-20250102-030405.sql: it lacks table public.rules, column public.projects.owner."+
		" Its migration version is 5; the backup was taken at 7. Restore the schema first; nothing was changed", err.Error())
	// What to run (migrate, or restore the schema backup) is cmd's advice,
	// made of these fields (cmd/aidb's advice test).
	var se *SchemaError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, &SchemaError{Database: "rulesdb", File: "rulesdb-data-20250102-030405.sql",
		Missing: []string{"table public.rules", "column public.projects.owner"}, Older: true, Version: 5, BackupVersion: 7,
		SchemaBackup: "backups/rulesdb-schema-20250101-000000.sql"}, se)
	assertNoCLI(t, err, "older, tables missing")

	err = p.cannotTakeData([]string{"table public.rules"}, false, 0, "")
	assert.Equal(t, "rulesdb cannot take the data of rulesdb-data-20250102-030405.sql: it lacks table public.rules."+
		" Restore the schema first; nothing was changed", err.Error())
	require.ErrorAs(t, err, &se)
	assert.Empty(t, se.SchemaBackup)
}
