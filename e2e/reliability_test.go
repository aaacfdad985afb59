package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/runs/oplock"
	"github.com/aidb/aidb/internal/store/folder"
)

func TestOneOperationAtATimePerDatabase(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rlock")
	p.backupDir()
	p.seeded("30")
	url := p.status()["rulesdb"].URL

	// Another operation holds rulesdb's lock.
	held, err := oplock.Database(t.Context(), url, "aidb test-holder", time.Second, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = held.Release(t.Context()) })

	r := p.aidb("backup", "rulesdb", "--lock-timeout", "1s")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "waiting for another aidb operation to finish (aidb test-holder")
	assert.Contains(t, r.stderr, "rulesdb is busy")
	entries, err := folder.List(filepath.Join(p.dir, "backups"))
	require.NoError(t, err)
	assert.Empty(t, entries, "the refused backup wrote nothing")

	// A waiting operation goes on once the holder is done.
	cmd := p.command(t.Context(), "migrate", "rulesdb")
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(stderr.String(), "waiting for another aidb operation") })
	require.NoError(t, held.Release(t.Context()))
	require.NoError(t, cmd.Wait(), stderr.String())
	assert.Contains(t, stderr.String(), "rulesdb: up to date")

	// memorydb was never locked: it does not wait.
	r = p.aidb("backup", "memorydb", "--lock-timeout", "1s")
	assert.Equal(t, 0, r.code, r.stderr)
}

func TestWorldWritableBackupFolderIsRefused(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rperm")
	dir := p.backupDir()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	require.NoError(t, os.Chmod(dir, 0o777))
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	r := p.aidb("backup", "rulesdb")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "writable by everyone")
	assert.Contains(t, r.stderr, "chmod 700")
	entries, err := folder.List(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)

	require.NoError(t, os.Chmod(dir, 0o755))
	r = p.aidb("backup", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "an existing folder of ours is made private")
}

func TestSigtermExits143AndUndoes(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rterm")
	p.writeCompose(`
services:
  rulesdb:
    image: postgres:15
    command: ["postgres", "-c", "listen_addresses="]
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
  memorydb:
    image: postgres:15
    environment:
      POSTGRES_PASSWORD: pw
    ports: ["127.0.0.1:${MEMORYDB_PORT}:5432"]
`)
	cmd := p.command(t.Context(), "up", "rulesdb", "--timeout", "5m")
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, time.Minute, func() bool { return strings.Contains(stderr.String(), "waiting for SELECT 1") })
	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	_ = cmd.Wait()
	assert.Equal(t, 143, cmd.ProcessState.ExitCode(), stderr.String())
	assert.Less(t, time.Since(start), 5*time.Second, "stops promptly (a bound on a hang, not a speed test)")
	assert.Empty(t, p.labelled(t.Context()))
}

func TestBackupFolderThatFillsUp(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root: mounting a tiny tmpfs needs it")
		}
		t.Skip("mounting a tiny tmpfs needs root")
	}
	p := newProject(t, "rfull")
	dir := filepath.Join(p.dir, "tiny")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	p.env = append(p.env, "AIDB_BACKUP_DIR="+dir)
	p.seeded("300", "memorydb")
	before := content(t, p.status()["memorydb"].URL)

	r := p.aidb("backup", "memorydb")
	assert.Equal(t, 1, r.code, r.stderr)
	assert.Contains(t, r.stderr, "no space left on device")
	assert.Empty(t, partials(t, dir), "the partial file is removed")
	entries, err := folder.List(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no file with a final name")
	assert.Zero(t, dumpHelpers(t, p))
	assert.Equal(t, before, content(t, p.status()["memorydb"].URL), "the database is untouched")
}

func TestNukeWaitsForARunningBackup(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rnuke")
	dir := p.backupDir()
	p.seeded("50")
	url := p.status()["rulesdb"].URL

	release := blockDump(t, url) // the backup is mid-way while this lock is held
	backup := p.command(t.Context(), "backup", "rulesdb")
	var bout safeBuffer
	backup.Stderr = &bout
	require.NoError(t, backup.Start())
	waitFor(t, 30*time.Second, func() bool { return len(partials(t, dir)) > 0 })

	nuke := p.command(t.Context(), "nuke", "--yes")
	var nout safeBuffer
	nuke.Stderr = &nout
	require.NoError(t, nuke.Start())
	waitFor(t, 30*time.Second, func() bool {
		return strings.Contains(nout.String(), "waiting for another aidb operation to finish (aidb backup")
	})
	assert.NotEmpty(t, p.labelled(t.Context()), "nothing removed while the backup runs")

	release()
	require.NoError(t, backup.Wait(), bout.String())
	require.NoError(t, nuke.Wait(), nout.String())
	entries, err := folder.List(dir)
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	for _, e := range entries {
		m := readManifest(t, e.Path)
		assert.NoError(t, manifest.Check(e.Path, m), "%s is whole", e.Path)
	}
	assert.Empty(t, p.labelled(t.Context()))
}

// TestPasswordStaysSecret checks that the database password appears in no
// process's arguments during a restore, and in no manifest, message or JSON
// document other than status's URLs.
func TestPasswordStaysSecret(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rsecret")
	dir := p.backupDir()
	p.seeded("40")
	url := p.status()["memorydb"].URL
	password := "memory-local-dev"
	require.Contains(t, url, password, "status URLs carry the password, by contract")

	res := p.aidb("backup", "--json", "--verify")
	require.Equal(t, 0, res.code, res.stderr)
	assert.NotContains(t, res.stdout+res.stderr, password)
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	for _, f := range files {
		if strings.HasSuffix(f, ".json") {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			assert.NotContains(t, string(b), password, f)
		}
	}

	// During a restore (held mid-way by a lock) no process shows it.
	data := p.backupJSON("memorydb", "--data-only").Files[0].Path
	conn := connect(t, url)
	tx, err := conn.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), "LOCK TABLE memory_links IN ACCESS SHARE MODE")
	require.NoError(t, err)
	cmd := p.command(t.Context(), "restore", "--yes", "--no-backup", "--data-only", "--json", "memorydb", data)
	var stdout, stderr safeBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, time.Minute, func() bool {
		var n int
		err := connect(t, url).QueryRow(t.Context(), "SELECT count(*) FROM pg_locks WHERE NOT granted").Scan(&n)
		return err == nil && n > 0
	})
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		if b, err := os.ReadFile(f); err == nil {
			assert.NotContains(t, string(b), password, "%s shows the password", f)
		}
	}
	require.NoError(t, tx.Rollback(t.Context()))
	require.NoError(t, cmd.Wait(), stderr.String())
	assert.NotContains(t, stdout.String()+stderr.String(), password)

	// Nor does a failure's message.
	r := p.aidb("restore", "--yes", "--no-backup", "rulesdb", data)
	assert.Equal(t, 2, r.code)
	assert.NotContains(t, r.stderr, password)
}

// TestEngineGoneDuringBackup cuts the connection to the Docker engine (a
// proxy in front of its socket) while a backup streams through it.
func TestEngineGoneDuringBackup(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rengine")
	dir := p.backupDir()
	p.seeded("40", "rulesdb")
	url := p.status()["rulesdb"].URL
	before := content(t, url)

	proxy := newEngineProxy(t)
	release := blockDump(t, url)
	cmd := p.command(t.Context(), "backup", "rulesdb")
	cmd.Env = append(cmd.Env, "DOCKER_HOST=tcp://"+proxy.addr())
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, 30*time.Second, func() bool { return len(partials(t, dir)) > 0 })
	proxy.cut()
	err := cmd.Wait()
	release()
	assert.Error(t, err)
	assert.Equal(t, 1, cmd.ProcessState.ExitCode(), stderr.String())
	assert.Empty(t, partials(t, dir))
	entries, err := folder.List(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.Equal(t, before, content(t, url))
}
