package backup

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/backupfile"
	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/fingerprint"
	"github.com/aidb/aidb/manifest"
)

func TestUnquote(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "public.goose_db_version", unquote("public.goose_db_version"))
	assert.Equal(t, `My Schema.a"b`, unquote(`"My Schema"."a""b"`))
	assert.Equal(t, "a.b.c", unquote(`"a.b".c`))
}

func TestPlanDump(t *testing.T) {
	t.Parallel()
	base := []string{"--format=plain", "--no-owner", "--no-privileges", "--snapshot=00000003-1"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	tests := []struct {
		name     string
		kind     backupfile.Kind
		migTable string
		want     dumpPlan
	}{
		{name: "full", kind: backupfile.Full, migTable: "public.goose_db_version",
			want: dumpPlan{args: base}},
		{name: "schema carries the bookkeeping rows", kind: backupfile.Schema, migTable: `"My Schema".goose_db_version`,
			want: dumpPlan{args: with("--schema-only"),
				then:   [][]string{with("--data-only", `--table="My Schema".goose_db_version`)},
				dataOf: []string{"My Schema.goose_db_version"}}},
		{name: "schema without migrations", kind: backupfile.Schema,
			want: dumpPlan{args: with("--schema-only")}},
		{name: "data leaves the bookkeeping out, and carries the schema with it", kind: backupfile.Data, migTable: "public.goose_db_version",
			want: dumpPlan{args: with("--data-only", "--exclude-table=public.goose_db_version"),
				schema:  [][]string{with("--schema-only"), with("--data-only", "--table=public.goose_db_version")},
				exclude: []string{"public.goose_db_version"}}},
		{name: "data without migrations carries the schema", kind: backupfile.Data,
			want: dumpPlan{args: with("--data-only"), schema: [][]string{with("--schema-only")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := planDump(tt.kind, "00000003-1", tt.migTable)
			tt.want.kind, tt.want.snapshot, tt.want.migTable = tt.kind, "00000003-1", tt.migTable
			assert.Equal(t, tt.want, got)
		})
	}
}

// A data-only backup's schema part is dumped as a schema backup of the
// same snapshot is, with the full dump's options (owners, privileges):
// they come from one place.
func TestPlanDumpSchemaPartIsTheSchemaBackupsRuns(t *testing.T) {
	t.Parallel()
	for _, mig := range []string{"", "public.goose_db_version"} {
		data := planDump(backupfile.Data, "s-1", mig)
		schema := planDump(backupfile.Schema, "s-1", mig)
		full := planDump(backupfile.Full, "s-1", mig)
		assert.Equal(t, append([][]string{schema.args}, schema.then...), data.schema, mig)
		for _, run := range data.schema {
			assert.Equal(t, full.args, run[:len(full.args)], "%s: the full dump's options", mig)
		}
		assert.Empty(t, schema.schema, "only data-only backups carry a schema part")
		assert.Empty(t, full.schema)
	}
}

func TestPointLatest(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	db := compose.Database{Name: "rulesdb"}
	tests := []struct {
		name   string
		kind   backupfile.Kind
		safety *manifest.Safety
		hold   bool
		moves  bool
	}{
		{name: "full", kind: backupfile.Full, moves: true},
		{name: "safety backup", kind: backupfile.Full, safety: &manifest.Safety{}},
		{name: "held until verified", kind: backupfile.Full, hold: true},
		{name: "schema", kind: backupfile.Schema},
		{name: "data", kind: backupfile.Data},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			name := backupfile.Name(db.Name, tt.kind, at, backupfile.Gzip)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("--\n"), 0o600))
			req := Request{Kind: tt.kind, Compression: backupfile.Gzip, Dir: dir, Safety: tt.safety, HoldLatest: tt.hold}
			latest, err := pointLatest(t.Context(), req, db, filepath.Join(dir, name))
			require.NoError(t, err)
			pointer := filepath.Join(dir, backupfile.LatestName(db.Name, backupfile.Gzip))
			_, statErr := os.Lstat(pointer)
			if !tt.moves {
				assert.Empty(t, latest)
				assert.ErrorIs(t, statErr, fs.ErrNotExist, "no latest pointer")
				return
			}
			assert.Equal(t, pointer, latest)
			target, err := os.Readlink(pointer)
			require.NoError(t, err)
			assert.Equal(t, name, target)
		})
	}
}

func TestNewManifestHasNoNilSequences(t *testing.T) {
	t.Parallel()
	s, err := newSink(io.Discard, false, backupfile.None, nil, nil)
	require.NoError(t, err)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	m := newManifest(Request{Kind: backupfile.Schema, ToolVersion: "v1"}, compose.Database{Name: "rulesdb"}, "img", at,
		"/b/rulesdb-schema-20250102-030405.sql", `"My Schema".goose_db_version`, s, taken{dumpDur: time.Second})
	assert.Equal(t, []fingerprint.Sequence{}, m.Sequences, "an empty list, never null, in the JSON")
	assert.Equal(t, "rulesdb-schema-20250102-030405.sql", m.File)
	assert.Equal(t, "My Schema.goose_db_version", m.MigrationTable)
	assert.Equal(t, 1.0, m.DumpSeconds)
	assert.Equal(t, "img", m.Image)
	assert.Equal(t, s.sum(), m.SHA256)
}
