package backupdir

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/owner"
)

func TestNameAndParseRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 5, 17, 9, 30, 5, 0, time.UTC)
	for _, k := range []Kind{Full, Schema, Data} {
		for _, c := range []Compression{None, Gzip, Zstd} {
			name := Name("memorydb", k, at, c)
			p, ok := Parse(name)
			require.True(t, ok, name)
			assert.Equal(t, Parsed{Database: "memorydb", Kind: k, Created: at, Compression: c}, p, name)
		}
	}
	assert.Equal(t, "rulesdb-20250517-093005.sql", Name("rulesdb", Full, at, None), "the user story's names")
	assert.Equal(t, "memorydb-data-20250517-093005.sql", Name("memorydb", Data, at, None))
	assert.Equal(t, "memorydb-schema-20250517-093005.sql.zst", Name("memorydb", Schema, at.In(time.FixedZone("CEST", 7200)), Zstd), "UTC whatever the zone")
	for _, other := range []string{"rulesdb-latest.sql", "notes.txt", "rulesdb-20250517.sql", "x.sql.manifest.json", "rulesdb-20250517-093005.sql.partial"} {
		_, ok := Parse(other)
		assert.False(t, ok, other)
	}
}

func TestCreateCommitAbort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := Create(dir, "a.sql")
	require.NoError(t, err)
	_, err = f.WriteString("SELECT 1;\n")
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(dir, "a.sql"), "no final name before Commit")
	partial := filepath.Join(dir, "a.sql~"+owner.Self().String()+".partial")
	assert.FileExists(t, partial, "the partial file names its owner")
	require.NoError(t, f.Commit())
	st, err := os.Stat(filepath.Join(dir, "a.sql"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	assert.NoFileExists(t, partial)
	require.NoError(t, f.Abort(), "Abort after Commit keeps the file")
	assert.FileExists(t, filepath.Join(dir, "a.sql"))

	_, err = Create(dir, "a.sql")
	assert.ErrorContains(t, err, "already exists", "never replaces a backup")

	g, err := Create(dir, "b.sql")
	require.NoError(t, err)
	require.NoError(t, g.Abort())
	assert.NoFileExists(t, g.Name())
	assert.NoFileExists(t, filepath.Join(dir, "b.sql"))
}

func TestFreeTimeSkipsTakenSeconds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	at := time.Date(2025, 5, 17, 9, 30, 5, 0, time.UTC)
	names := func(t time.Time) []string { return []string{Name("rulesdb", Full, t, None)} }
	require.NoError(t, os.WriteFile(filepath.Join(dir, Name("rulesdb", Full, at, None)), nil, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, Name("rulesdb", Full, at.Add(time.Second), None)), nil, 0o600))
	assert.Equal(t, at.Add(2*time.Second), FreeTime(dir, at.Add(300*time.Millisecond), names))
}

func TestLatestPointerAndList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := time.Date(2025, 5, 17, 9, 0, 0, 0, time.UTC)
	for i, c := range []Compression{None, Zstd} {
		name := Name("memorydb", Full, old.Add(time.Duration(i)*time.Hour), c)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600))
		require.NoError(t, PointLatest(dir, "memorydb", c, filepath.Join(dir, name)))
	}
	target, err := filepath.EvalSymlinks(filepath.Join(dir, "memorydb-latest.sql.zst"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "memorydb-20250517-100000.sql.zst"), target)
	assert.NoFileExists(t, filepath.Join(dir, "memorydb-latest.sql"), "one latest pointer per database")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "memorydb-20250517-110000.sql.partial"), nil, 0o600))
	entries, err := List(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "pointers and partial files are not backups")
	assert.Equal(t, Zstd, entries[0].Compression, "newest first")

	missing, err := List(filepath.Join(dir, "nope"))
	require.NoError(t, err)
	assert.Empty(t, missing)
}
