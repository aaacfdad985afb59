package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

func TestUnquote(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "public.goose_db_version", unquote("public.goose_db_version"))
	assert.Equal(t, `My Schema.a"b`, unquote(`"My Schema"."a""b"`))
	assert.Equal(t, "a.b.c", unquote(`"a.b".c`))
}

func TestPlanDump(t *testing.T) {
	t.Parallel()
	// Owners and privileges are kept: no --no-owner, no --no-privileges.
	base := []string{"--format=plain", "--snapshot=00000003-1"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	noOwner := []string{"--format=plain", "--no-owner", "--snapshot=00000003-1"}
	tests := []struct {
		name     string
		kind     backupfile.Kind
		migTable string
		noOwner  bool
		want     dumpPlan
	}{
		{name: "full without owners", kind: backupfile.Full, noOwner: true,
			want: dumpPlan{args: noOwner, noOwner: true}},
		{name: "schema without owners", kind: backupfile.Schema, migTable: "public.goose_db_version", noOwner: true,
			want: dumpPlan{args: append(noOwner[:3:3], "--schema-only"), noOwner: true,
				then:   [][]string{append(noOwner[:3:3], "--data-only", "--table=public.goose_db_version")},
				dataOf: []string{"public.goose_db_version"}}},
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
			got := planDump(tt.kind, "00000003-1", tt.migTable, tt.noOwner)
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
		for _, noOwner := range []bool{false, true} {
			data := planDump(backupfile.Data, "s-1", mig, noOwner)
			schema := planDump(backupfile.Schema, "s-1", mig, noOwner)
			full := planDump(backupfile.Full, "s-1", mig, noOwner)
			assert.Equal(t, append([][]string{schema.args}, schema.then...), data.schema, mig)
			for _, run := range data.schema {
				assert.Equal(t, full.args, run[:len(full.args)], "%s: the full dump's options", mig)
			}
			assert.Empty(t, schema.schema, "only data-only backups carry a schema part")
			assert.Empty(t, full.schema)
		}
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
	s, err := newSink(io.Discard, false, backupfile.None, nil, "", "", nil)
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

// The roles go in after pg_dump's header; the rows are hashed from the
// dump's own stream, and the file's size and sha256 cover every byte.
func TestSinkPutsTheRolesAfterTheHeaderAndHashesTheWholeFile(t *testing.T) {
	t.Parallel()
	dump := "--\n-- PostgreSQL database dump\n--\n\nSET row_security = off;\n\n" +
		"--\n-- Name: t; Type: TABLE; Schema: public; Owner: rules\n--\n\nCREATE TABLE public.t (id integer);\n" +
		"ALTER TABLE public.t OWNER TO rules;\n\n" +
		"--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: rules\n--\n\nCOPY public.t (id) FROM stdin;\n1\n2\n\\.\n\n\n" +
		"--\n-- PostgreSQL database dump complete\n--\n\n"
	roles := "--\n-- Roles\n--\n\nDO $r$ BEGIN END $r$;\n\n"
	var file bytes.Buffer
	props := "--\n-- Name: DATABASE; Type: DATABASE PROPERTIES; Schema: -; Owner: -\n--\n\nDO $d$ BEGIN END $d$;\n\n"
	s, err := newSink(&file, true, backupfile.None, nil, roles, props, nil)
	require.NoError(t, err)
	for i := 0; i < len(dump); i += 7 {
		_, err := s.Write([]byte(dump[i:min(i+7, len(dump))]))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	got := file.String()
	assert.True(t, strings.HasPrefix(got, "--\n-- PostgreSQL database dump\n--\n\nSET row_security = off;\n\n"+roles+"--\n-- Name: t;"), got)
	assert.True(t, strings.HasSuffix(got, "\\.\n\n\n"+props+"--\n-- PostgreSQL database dump complete\n--\n\n"), "the database's properties before the closing comment: %s", got)
	assert.Equal(t, len(dump)+len(roles)+len(props), len(got))
	sum := sha256.Sum256(file.Bytes())
	assert.Equal(t, hex.EncodeToString(sum[:]), s.sum())
	assert.Equal(t, int64(file.Len()), s.size())

	tables := []fingerprint.Table{{Schema: "public", Name: "t", Columns: []string{"id"}}}
	require.NoError(t, s.rows.Fill(tables))
	require.NotNil(t, tables[0].Rows)
	assert.Equal(t, int64(2), *tables[0].Rows)

	// A dump cut within its header is no backup.
	s, err = newSink(io.Discard, false, backupfile.Gzip, nil, roles, props, nil)
	require.NoError(t, err)
	_, err = s.Write([]byte("--\n-- PostgreSQL database dump\n--\n\nSET row_security = off;\n"))
	require.NoError(t, err)
	require.ErrorContains(t, s.Close(), "cut short")
}
