package restore

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

const sampleDump = `--
-- PostgreSQL database dump
--
COPY public.rules (id, "Name", body) FROM stdin;
1	a	b
2	COPY public.fake (x) FROM stdin;	c
\.

COPY "My Schema"."odd.table" (x) FROM stdin;
\.

--
-- PostgreSQL database dump complete
--
`

func TestDetectByContentAndCompleteness(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var gz, zs bytes.Buffer
	gw := gzip.NewWriter(&gz)
	_, _ = gw.Write([]byte(sampleDump))
	require.NoError(t, gw.Close())
	zw, err := zstd.NewWriter(&zs)
	require.NoError(t, err)
	_, _ = zw.Write([]byte(sampleDump))
	require.NoError(t, zw.Close())
	// Names that lie: the content decides.
	files := map[string]struct {
		data []byte
		want backupfile.Compression
	}{
		"plain.sql.gz": {[]byte(sampleDump), backupfile.None},
		"gzip.sql":     {gz.Bytes(), backupfile.Gzip},
		"zstd.sql":     {zs.Bytes(), backupfile.Zstd},
	}
	for name, f := range files {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, f.data, 0o600))
		c, err := detect(path)
		require.NoError(t, err)
		assert.Equal(t, f.want, c, name)
		assert.NoError(t, readWhole(path, c), name)
	}
	cut := filepath.Join(dir, "cut.sql")
	require.NoError(t, os.WriteFile(cut, []byte(sampleDump[:len(sampleDump)/2]), 0o600))
	assert.ErrorIs(t, readWhole(cut, backupfile.None), errCutShort)
}

// readWhole reads a file without a manifest to its end, as a restore does.
func readWhole(path string, c backupfile.Compression) error {
	ct, err := openContent(path, c, nil, nil, nil)
	if err != nil {
		return err
	}
	defer func() { _ = ct.Close() }()
	_, err = io.Copy(io.Discard, ct)
	return err
}

func TestContentChecksManifestAtTheEnd(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "f.sql")
	require.NoError(t, os.WriteFile(path, []byte(sampleDump), 0o600))
	m := &manifest.Manifest{Size: int64(len(sampleDump)), SHA256: "0000"}
	ct, err := openContent(path, backupfile.None, m, nil, nil)
	require.NoError(t, err)
	defer func() { _ = ct.Close() }()
	var out bytes.Buffer
	_, err = out.ReadFrom(ct)
	assert.ErrorContains(t, err, "changed while it was being restored", "a wrong checksum ends the stream with an error, not a clean end")
}

func TestCompare(t *testing.T) {
	t.Parallel()
	n := func(v int64) *int64 { return &v }
	m := manifest.Manifest{SchemaHash: "s1", Tables: []fingerprint.Table{
		{Schema: "public", Name: "a", Rows: n(3), Hash: "10"},
		{Schema: "public", Name: "b", Rows: n(2), Hash: "20"},
		{Schema: "public", Name: "c", Rows: n(1), Hash: "30"},
	}}
	got := fingerprint.Fingerprint{SchemaHash: "s1", Tables: []fingerprint.Table{
		{Schema: "public", Name: "a", Rows: n(3), Hash: "10"},
		{Schema: "public", Name: "b", Rows: n(2), Hash: "21"},
		{Schema: "public", Name: "d", Rows: n(0), Hash: "0"},
	}}
	assert.Equal(t, []string{
		"public.b: same 2 rows but different content (hash 21, the backup has 20)",
		"public.c: missing",
		"public.d: not in the backup",
	}, Compare(m, got))
	got.Tables = m.Tables
	assert.Empty(t, Compare(m, got))

	// Format 4: a lost grant is named by its object's ACL line.
	m.Format, m.SchemaHash = 4, "s4"
	m.Privileges = []string{"acl relation public.a \"app_reader\":SELECT:rules rules:SELECT:rules", "owner relation public.a rules"}
	got.SchemaHash, got.Privileges = "s5", []string{"acl relation public.a rules:SELECT:rules", "owner relation public.a rules"}
	assert.Equal(t, []string{
		"privileges: the backup has acl relation public.a \"app_reader\":SELECT:rules rules:SELECT:rules; the restored database does not",
		"privileges: the restored database has acl relation public.a rules:SELECT:rules; the backup does not",
		"schema: hash s5, the backup has s4",
	}, Compare(m, got))
}

func TestCheckContentRefusesIncompleteManifest(t *testing.T) {
	t.Parallel()
	_, err := checkContent("rulesdb", []fingerprint.Table{{Schema: "public", Name: "a"}}, false)
	assert.Error(t, err)
	n := int64(2)
	sql, err := checkContent("rulesdb", []fingerprint.Table{{Schema: "public", Name: "it's", Rows: &n, Hash: "-12"}}, false)
	require.NoError(t, err)
	// The table name sits inside the literal that format() expands.
	assert.Contains(t, sql, `FROM ONLY "public"."it''s" AS t', cols)`)
	assert.Contains(t, sql, `attrelid = '"public"."it''s"'::regclass`)
	assert.Contains(t, sql, `'public.it''s'`, "names are quoted as literals")

	// With the manifest's columns: read by name in the manifest's order,
	// with the fingerprint's own query, whatever the physical order.
	sql, err = checkContent("rulesdb", []fingerprint.Table{{Schema: "public", Name: "b_star", Columns: []string{"class", "a", "it's", "z"}, Rows: &n, Hash: "-12"}}, false)
	require.NoError(t, err)
	assert.Contains(t, sql, "  EXECUTE "+literal(fingerprint.OrderedColumnsSQL)+` INTO cols USING ARRAY['class', 'a', 'it''s', 'z']::text[], '"public"."b_star"'::text;`)
	assert.True(t, strings.HasPrefix(sql, dumpformat.SetLocal(dumpformat.ValueSettings())), "the check runs under the fingerprint's settings")
	assert.Equal(t, []string{"public.a: 1 rows (the backup has 2), content hash 5 (the backup has 6)"},
		contentDiffs("psql: ERROR:  aidb: content differs:\npublic.a: 1 rows (the backup has 2), content hash 5 (the backup has 6)\nCONTEXT: ..."))
}
