package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLatestMovesOnlyToAVerifiedBackup: with --verify, <db>-latest (what
// users restore from) moves to the new file only once it proved
// restorable. A verification cut short by Ctrl-C leaves the pointer at the
// backup before, and says so; a verified backup moves it.
func TestLatestMovesOnlyToAVerifiedBackup(t *testing.T) {
	t.Parallel()
	p := newProject(t, "latestverified")
	dir := p.backupDir()
	p.seeded("50", "rulesdb")
	first := p.backupJSON("rulesdb").Files[0].Path
	pointer := filepath.Join(dir, "rulesdb-latest.sql")
	target := func() string {
		t.Helper()
		got, err := os.Readlink(pointer)
		require.NoError(t, err)
		return got
	}
	require.Equal(t, filepath.Base(first), target())

	cmd := p.command(t.Context(), "backup", "rulesdb", "--verify")
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, 2*time.Minute, func() bool { return strings.Contains(stderr.String(), "verifying ") })
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	_ = cmd.Wait()
	assert.Equal(t, 130, cmd.ProcessState.ExitCode(), stderr.String())
	assert.Equal(t, filepath.Base(first), target(), "the pointer stays at the backup before: the new one was not proven")
	assert.Contains(t, stderr.String(), "rulesdb-latest.sql not moved: ")
	assert.NotContains(t, stderr.String(), "did not answer SELECT 1", "Ctrl-C is not a slow start")

	r := p.aidb("backup", "rulesdb", "--verify")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotEqual(t, filepath.Base(first), target(), "a verified backup moves the pointer")
	assert.True(t, strings.HasPrefix(target(), "rulesdb-2"), target())
}
