package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/fault"
)

// "latest" names the database's latest pointer whatever its compression
// and encryption; other names pass as they are; no pointer, or a
// data-only restore, is bad input naming what to do.
func TestLatestFileFindsThePointerWhateverItsSuffix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	got, err := latestFile(dir, "rulesdb", "backups/x.sql", false)
	require.NoError(t, err)
	assert.Equal(t, "backups/x.sql", got)

	_, err = latestFile(dir, "rulesdb", "latest", false)
	require.Error(t, err)
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assert.Contains(t, err.Error(), "aidb backup rulesdb --verify")

	require.NoError(t, os.Symlink("rulesdb_20260101T000000Z.sql.zst.age", filepath.Join(dir, "rulesdb-latest.sql.zst.age")))
	for _, name := range []string{"latest", "rulesdb-latest"} {
		got, err = latestFile(dir, "rulesdb", name, false)
		require.NoError(t, err, name)
		assert.Equal(t, filepath.Join(dir, "rulesdb-latest.sql.zst.age"), got, name)
	}
	_, err = latestFile(dir, "memorydb", "latest", false)
	assert.Error(t, err, "another database's pointer is not its")

	_, err = latestFile(dir, "rulesdb", "latest", true)
	require.Error(t, err)
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assert.Contains(t, err.Error(), "--data-only")
}

// A bare name that is not in the working folder names the backup folder's
// file (aidb list shows those names); a name with a folder, or one found
// where the command runs, is taken as it is.
func TestInFolderFindsABareNameInTheBackupFolder(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(t.TempDir())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rulesdb-1.sql"), nil, 0o600))
	assert.Equal(t, filepath.Join(dir, "rulesdb-1.sql"), inFolder(dir, "rulesdb-1.sql"))
	got, err := latestFile(dir, "rulesdb", "rulesdb-1.sql", false)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "rulesdb-1.sql"), got)
	assert.Equal(t, "other/rulesdb-1.sql", inFolder(dir, "other/rulesdb-1.sql"), "a name with a folder is as given")
	assert.Equal(t, "gone.sql", inFolder(dir, "gone.sql"), "a name found nowhere is as given (and refused as missing)")
	require.NoError(t, os.WriteFile("rulesdb-1.sql", nil, 0o600))
	assert.Equal(t, "rulesdb-1.sql", inFolder(dir, "rulesdb-1.sql"), "the working folder's file first")
}
