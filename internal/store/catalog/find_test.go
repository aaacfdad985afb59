package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
)

// putSchema writes a backup file named for nameAt with a manifest created at
// created (at version v); damaged files get a manifest that does not match.
func putSchema(t *testing.T, dir string, nameAt, created time.Time, v int64, damaged bool) string {
	t.Helper()
	path := filepath.Join(dir, backupfile.Name("rulesdb", backupfile.Schema, nameAt, backupfile.None))
	body := []byte("-- schema at " + created.String() + "\n")
	require.NoError(t, os.WriteFile(path, body, 0o600))
	sum := sha256.Sum256(body)
	m := manifest.Manifest{Format: manifest.Format, Database: "rulesdb", Kind: backupfile.Schema, Created: created, MigrationVersion: v,
		Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	if damaged {
		m.Size++
	}
	require.NoError(t, manifest.Write(path, m))
	return path
}

func TestNewestRanksByManifestAndSkipsDamaged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	// The file named newest was created first (its name lies).
	putSchema(t, dir, base.Add(72*time.Hour), base, 3, false)
	want := putSchema(t, dir, base.Add(time.Hour), base.Add(48*time.Hour), 3, false)
	putSchema(t, dir, base.Add(2*time.Hour), base.Add(60*time.Hour), 3, true)  // newer, damaged
	putSchema(t, dir, base.Add(3*time.Hour), base.Add(70*time.Hour), 4, false) // newer, another version
	// A file without a manifest named newest of all.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rulesdb-schema-20991231-235959.sql"), []byte("x"), 0o600))

	c := New(Folder{Dir: dir})
	got, m, err := c.Newest(t.Context(), "rulesdb", backupfile.Schema, func(m manifest.Manifest) bool { return m.MigrationVersion == 3 })
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, int64(3), m.MigrationVersion)

	got, _, err = c.Newest(t.Context(), "rulesdb", backupfile.Schema, nil)
	require.NoError(t, err)
	assert.Contains(t, got, "20261101-030000", "the newest by created time, any version")

	got, _, err = c.Newest(t.Context(), "memorydb", backupfile.Schema, nil)
	require.NoError(t, err)
	assert.Empty(t, got)
}
