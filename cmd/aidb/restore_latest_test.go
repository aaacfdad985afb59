package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/fault"
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
