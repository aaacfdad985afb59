package migrations

import (
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/fault"
)

func TestDefaultSets(t *testing.T) {
	t.Parallel()
	for db, want := range map[string]int{"rulesdb": 3, "memorydb": 3} {
		f, ok := Default(db)
		require.True(t, ok, db)
		files, err := fs.Glob(f, "*.sql")
		require.NoError(t, err)
		assert.Len(t, files, want, db)
		for _, name := range files {
			b, err := fs.ReadFile(f, name)
			require.NoError(t, err)
			assert.Contains(t, string(b), "-- +goose Up", name)
			assert.Contains(t, string(b), "-- +goose Down", name)
		}
	}
	_, ok := Default("nosuchdb")
	assert.False(t, ok)
}

func TestSourceFor(t *testing.T) {
	t.Parallel()
	src, ok, err := SourceFor("rulesdb", "")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "(embedded) rulesdb", src.Name)

	_, ok, err = SourceFor("userdb", "")
	require.NoError(t, err)
	assert.False(t, ok, "a database with neither a folder nor a default set has no migrations")

	missing := filepath.Join(t.TempDir(), "nope")
	_, _, err = SourceFor("rulesdb", missing)
	require.Error(t, err)
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assert.Contains(t, err.Error(), missing)
}

func TestOpenRejectsBadFileNames(t *testing.T) {
	t.Parallel()
	// Opening does not connect; the file names are checked first.
	bad := fstest.MapFS{
		"00001_a.sql": {Data: []byte("-- +goose Up\nSELECT 1;\n")},
		"00001_b.sql": {Data: []byte("-- +goose Up\nSELECT 2;\n")},
	}
	_, err := Open("postgres://u:p@127.0.0.1:1/db", Source{FS: bad, Name: "dup"}, Options{})
	require.Error(t, err)
	assert.Equal(t, fault.Invalid, fault.KindOf(err), "%v", err)
	assert.Contains(t, err.Error(), "dup")

	good := fstest.MapFS{"00001_a.sql": {Data: []byte("-- +goose Up\nSELECT 1;\n")}}
	r, err := Open("postgres://u:p@127.0.0.1:1/db", Source{FS: good, Name: "good"}, Options{})
	require.NoError(t, err)
	require.NoError(t, r.Close())
}

// A negative target is refused before the server is asked (nothing listens
// on port 1): a VersionError, bad input.
func TestDownToRefusesANegativeVersion(t *testing.T) {
	t.Parallel()
	good := fstest.MapFS{"00001_a.sql": {Data: []byte("-- +goose Up\nSELECT 1;\n")}}
	r, err := Open("postgres://u:p@127.0.0.1:1/db", Source{FS: good, Name: "good"}, Options{})
	require.NoError(t, err)
	defer func() { _ = r.Close() }()
	_, err = r.DownTo(t.Context(), -1)
	var ve *VersionError
	require.ErrorAs(t, err, &ve)
	assert.Equal(t, int64(-1), ve.Version)
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assert.Equal(t, "target version -1: a version is 0 or more", err.Error())
}
