package routine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/ops/verify"
)

// TestPointLatestMovesOnlyToVerifiedFullBackups is the rule users restore
// by: <db>-latest names a full backup that verification found equal, and
// stays where it was for one that differed, failed or was interrupted.
func TestPointLatestMovesOnlyToVerifiedFullBackups(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(db string, k backupfile.Kind) backup.File {
		p := filepath.Join(dir, db+"-"+string(k)+".sql")
		require.NoError(t, os.WriteFile(p, []byte("-- x\n"), 0o600))
		return backup.File{Database: db, Kind: k, Path: p, Codec: backupfile.None}
	}
	equal, differs, failed, schema := file("a", backupfile.Full), file("b", backupfile.Full), file("c", backupfile.Full), file("d", backupfile.Schema)
	results := []verify.Result{
		{File: equal.Path, OK: true},
		{File: differs.Path, OK: false, Differences: []string{"t: rows"}},
		{File: failed.Path, OK: true, Error: "could not start"},
		{File: schema.Path, OK: true},
	}
	got := PointLatest(t.Context(), dir, []backup.File{equal, differs, failed, schema}, results)
	require.Len(t, got, 3, "a schema backup has no latest pointer")
	assert.True(t, got[0].Moved)
	assert.NoError(t, got[0].Err)
	target, err := os.Readlink(filepath.Join(dir, backupfile.LatestName("a", backupfile.None)))
	require.NoError(t, err)
	assert.Equal(t, filepath.Base(equal.Path), filepath.Base(target))
	for _, l := range got[1:] {
		var nv *NotVerifiedError
		assert.False(t, l.Moved, l.Database)
		assert.True(t, errors.As(l.Err, &nv), "%s: %v", l.Database, l.Err)
		_, err := os.Lstat(filepath.Join(dir, backupfile.LatestName(l.Database, backupfile.None)))
		assert.True(t, os.IsNotExist(err), "%s: no pointer", l.Database)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	again := file("e", backupfile.Full)
	got = PointLatest(ctx, dir, []backup.File{again}, []verify.Result{{File: again.Path, OK: true}})
	require.Len(t, got, 1)
	assert.False(t, got[0].Moved, "an interrupted run moves nothing")
}

func TestConfiguredPolicy(t *testing.T) {
	t.Parallel()
	_, ok := ConfiguredPolicy(&compose.Project{})
	assert.False(t, ok, "no keep rule in aidb.yaml")
	p, ok := ConfiguredPolicy(&compose.Project{Keep: compose.KeepRules{Last: 3, Daily: 7}, SafetyKeepWithin: 5})
	require.True(t, ok)
	assert.Equal(t, 3, p.KeepLast)
	assert.Equal(t, 7, p.KeepDaily)
	assert.EqualValues(t, 5, p.SafetyKeepWithin)
}
