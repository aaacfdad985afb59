package folder

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/runs/owner"
)

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
	names := func(t time.Time) []string {
		return []string{backupfile.Name("rulesdb", backupfile.Full, t, backupfile.None)}
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, backupfile.Name("rulesdb", backupfile.Full, at, backupfile.None)), nil, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, backupfile.Name("rulesdb", backupfile.Full, at.Add(time.Second), backupfile.None)), nil, 0o600))
	assert.Equal(t, at.Add(2*time.Second), FreeTime(dir, at.Add(300*time.Millisecond), names))
}

func TestLinkRemoveReadDirAndList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := time.Date(2025, 5, 17, 9, 0, 0, 0, time.UTC)
	var names []string
	for i, c := range []backupfile.Compression{backupfile.None, backupfile.Zstd} {
		name := backupfile.Name("memorydb", backupfile.Full, old.Add(time.Duration(i)*time.Hour), c)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600))
		names = append(names, name)
	}
	require.NoError(t, Link(dir, "memorydb-latest.sql", names[0]))
	require.NoError(t, Link(dir, "memorydb-latest.sql", names[1]), "replaces the link")
	target, err := filepath.EvalSymlinks(filepath.Join(dir, "memorydb-latest.sql"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, names[1]), target)
	raw, err := os.Readlink(filepath.Join(dir, "memorydb-latest.sql"))
	require.NoError(t, err)
	assert.Equal(t, names[1], raw, "relative: the folder can move")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "memorydb-20250517-110000.sql~1-2.partial"), nil, 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
	des, err := ReadDir(dir)
	require.NoError(t, err)
	assert.ElementsMatch(t, []DirEntry{
		{Name: names[0], Size: 1}, {Name: names[1], Size: 1},
		{Name: "memorydb-latest.sql", Link: true, Target: names[1]},
	}, des, "files and links; no partial file, no folder")

	entries, err := List(dir)
	require.NoError(t, err)
	require.Len(t, entries, 2, "pointers and partial files are not backups")
	assert.Equal(t, backupfile.Zstd, entries[0].Compression, "newest first")
	assert.Equal(t, filepath.Join(dir, names[1]), entries[0].Path)

	require.NoError(t, Remove(dir, "memorydb-latest.sql"))
	assert.FileExists(t, filepath.Join(dir, names[1]), "a link's removal leaves its file")
	assert.NoFileExists(t, filepath.Join(dir, "memorydb-latest.sql"))
	require.NoError(t, Remove(dir, "memorydb-latest.sql"), "a missing file is no error")
	require.NoError(t, Remove(dir, names[0]))
	assert.NoFileExists(t, filepath.Join(dir, names[0]))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "f"), nil, 0o600))
	assert.Error(t, Remove(dir, "sub"), "a failed removal is an error")

	for _, f := range []func(string) (int, error){
		func(d string) (int, error) { e, err := ReadDir(d); return len(e), err },
		func(d string) (int, error) { e, err := List(d); return len(e), err },
	} {
		n, err := f(filepath.Join(dir, "nope"))
		require.NoError(t, err, "a missing folder is empty")
		assert.Zero(t, n)
	}
}

// A shared sticky folder such as /tmp is refused without the advice to
// chmod it (that would break everyone else's use of it); a private one
// of its own is offered instead.
func TestEnsureRefusesASharedFolderWithoutChmodAdvice(t *testing.T) {
	t.Parallel()
	shared := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, os.Mkdir(shared, 0o700))
	require.NoError(t, os.Chmod(shared, 0o777|os.ModeSticky))
	err := Ensure(shared)
	require.ErrorIs(t, err, ErrWorldWritable)
	assert.NotContains(t, err.Error(), "chmod")
	assert.Contains(t, err.Error(), "set AIDB_BACKUP_DIR to a private folder")

	open := filepath.Join(t.TempDir(), "open")
	require.NoError(t, os.Mkdir(open, 0o700))
	require.NoError(t, os.Chmod(open, 0o777))
	err = Ensure(open)
	require.ErrorIs(t, err, ErrWorldWritable)
	assert.Contains(t, err.Error(), "chmod 700 "+open)
}
