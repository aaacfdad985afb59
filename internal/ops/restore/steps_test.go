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

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/pgtools"
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

func (f *fakeEngine) Psql(_ context.Context, _ compose.Database, dbname string, _ pgtools.Transport, _ string, script io.Reader) error {
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

// With one job (--jobs 1) the file goes through one psql stream, in one
// transaction, as before parallel loads.
func TestStagingLoadWithOneJobRunsTheFileThroughPsql(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "rulesdb-20250102-030405.sql")
	require.NoError(t, os.WriteFile(path, []byte(sampleDump), 0o600))
	plan := func(phases *[]Phase) Plan {
		return Plan{
			Request: Request{DB: compose.Database{Name: "rulesdb", DBName: "rules"}, File: "rulesdb-latest.sql", Jobs: 1,
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
			want: fingerprint.Options{Data: true, MigrationTable: "public.goose_db_version", Columns: map[string][]string{}, Privileges: fingerprint.WithOwners}},
		{name: "full reads the manifest's columns by name, in its order", kind: backupfile.Full, m: &manifest.Manifest{Format: manifest.Format,
			Tables: []fingerprint.Table{{Schema: "public", Name: "b_star", Columns: []string{"class", "a", "b", "z"}}, {Schema: "public", Name: "none"}}},
			want: fingerprint.Options{Data: true, Columns: map[string][]string{"public.b_star": {"class", "a", "b", "z"}}, Privileges: fingerprint.WithOwners}},
		{name: "full, format 2 schema hash with the children's column order", kind: backupfile.Full, m: &manifest.Manifest{Format: 2},
			want: fingerprint.Options{Data: true, ChildColumnOrder: true, Columns: map[string][]string{}}},
		{name: "full, format 1 hashes", kind: backupfile.Full, m: &manifest.Manifest{Format: 1},
			want: fingerprint.Options{Data: true, WholeRow: true, ChildColumnOrder: true, Columns: map[string][]string{}}},
		{name: "schema compares the bookkeeping rows", kind: backupfile.Schema, m: &manifest.Manifest{Format: manifest.Format, MigrationTable: "public.goose_db_version"},
			want: fingerprint.Options{MigrationTable: "public.goose_db_version", DataOf: []string{"public.goose_db_version"}, Columns: map[string][]string{}, Privileges: fingerprint.WithOwners}},
		{name: "schema without migrations", kind: backupfile.Schema, m: &manifest.Manifest{Format: manifest.Format},
			want: fingerprint.Options{Columns: map[string][]string{}, Privileges: fingerprint.WithOwners}},
		{name: "full, format 3: taken without owners and privileges", kind: backupfile.Full, m: &manifest.Manifest{Format: 3},
			want: fingerprint.Options{Data: true, Columns: map[string][]string{}}},
		{name: "full taken with --no-owner: privileges without owners", kind: backupfile.Full, m: &manifest.Manifest{Format: 4, NoOwner: true},
			want: fingerprint.Options{Data: true, Columns: map[string][]string{}, Privileges: fingerprint.WithoutOwners}},
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
	tables := dumpformat.Tables{Copies: []dumpformat.Copy{{Table: dumpformat.Table{Schema: "public", Name: "rules"}, Columns: []string{"id", "Name"}}}}
	assert.Equal(t, []fingerprint.Table{{Schema: "public", Name: "rules", Columns: []string{"id", "Name"}}}, dataTables(nil, tables))
	m := &manifest.Manifest{Tables: []fingerprint.Table{{Schema: "app", Name: "memories", Columns: []string{"id"}}}}
	assert.Equal(t, m.Tables, dataTables(m, tables), "the manifest wins")
}

func TestCompareColumns(t *testing.T) {
	t.Parallel()
	backup := []fingerprint.Table{
		{Schema: "public", Name: "scores", Columns: []string{"player", "points"}, Types: []string{"text", "integer"}},
		{Schema: "My Schema", Name: "odd.table", Columns: []string{"x"}, Types: []string{"public.mood"}},
	}
	// same is the target with exactly the backup's tables and columns.
	same := func() map[string][]column {
		return map[string][]column{
			"public.scores":       {{Name: "player", Type: "text", NotNull: true}, {Name: "points", Type: "integer", NotNull: true}},
			"My Schema.odd.table": {{Name: "x", Type: "public.mood"}},
			"public.other":        {{Name: "id", Type: "integer", NotNull: true}},
		}
	}
	tests := []struct {
		name   string
		tables []fingerprint.Table
		change func(map[string][]column)
		want   columnDiffs
	}{
		{name: "identical (a table the backup does not load is no concern)", tables: backup, change: func(map[string][]column) {}},
		{name: "missing table", tables: backup, change: func(h map[string][]column) { delete(h, "public.scores") },
			want: columnDiffs{missing: []string{"table public.scores"}}},
		{name: "missing column", tables: backup, change: func(h map[string][]column) { h["public.scores"] = h["public.scores"][:1] },
			want: columnDiffs{missing: []string{"column public.scores.points"}}},
		{name: "changed type", tables: backup, change: func(h map[string][]column) {
			h["public.scores"][1].Type = "text"
			h["My Schema.odd.table"][0].Type = "text"
		}, want: columnDiffs{changed: []string{"column public.scores.points is text here, integer in the backup",
			"column My Schema.odd.table.x is text here, public.mood in the backup"}}},
		{name: "extra column NOT NULL without a default: a row cannot be loaded", tables: backup, change: func(h map[string][]column) {
			h["public.scores"] = append(h["public.scores"], column{Name: "team", Type: "text", NotNull: true})
		}, want: columnDiffs{extra: []string{"column public.scores.team"}}},
		{name: "extra columns the load fills: warnings", tables: backup, change: func(h map[string][]column) {
			h["public.scores"] = append(h["public.scores"],
				column{Name: "note", Type: "text"},
				column{Name: "level", Type: "integer", NotNull: true, Default: true},
				column{Name: "seq", Type: "bigint", NotNull: true, Identity: true},
				column{Name: "total", Type: "integer", Generated: true})
		}, want: columnDiffs{warnings: []string{
			"column public.scores.note is not in the backup: it will be NULL in the restored rows",
			"column public.scores.level is not in the backup: the restored rows get its default",
			"column public.scores.seq is not in the backup: the restored rows get its default"}}},
		{name: "every kind at once, in the file's order", tables: backup, change: func(h map[string][]column) {
			h["public.scores"] = []column{{Name: "player", Type: "character varying(20)"}, {Name: "team", Type: "text", NotNull: true}}
			delete(h, "My Schema.odd.table")
		}, want: columnDiffs{missing: []string{"column public.scores.points", "table My Schema.odd.table"},
			changed: []string{"column public.scores.player is character varying(20) here, text in the backup"},
			extra:   []string{"column public.scores.team"}}},
		{name: "a manifest without types is compared by name", tables: []fingerprint.Table{{Schema: "public", Name: "scores", Columns: []string{"player", "points"}}},
			change: func(h map[string][]column) { h["public.scores"][1].Type = "text" }},
		{name: "names are exact: Name is not name", tables: []fingerprint.Table{{Schema: "public", Name: "scores", Columns: []string{"Player", "points"}}},
			change: func(h map[string][]column) { h["public.scores"][0].NotNull = false },
			want: columnDiffs{missing: []string{"column public.scores.Player"},
				warnings: []string{"column public.scores.player is not in the backup: it will be NULL in the restored rows"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			have := same()
			tt.change(have)
			assert.Equal(t, tt.want, compareColumns(tt.tables, have))
		})
	}
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
