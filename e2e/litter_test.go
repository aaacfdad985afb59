package e2e

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/runs/owner"
	"github.com/aidb/aidb/internal/store/folder"
	"github.com/aidb/aidb/orchestrator"
)

// TestKilledBackupLeavesNoSecretAndNoLitter kills aidb backup with SIGKILL
// mid-dump (nothing of aidb's own runs after that): no file in the folder
// holds the password at any moment, and the next command that takes the
// folder lock removes the partial file, the pipes and the helper container
// the killed run left, says so, and backs up; a live run's work stays. A
// killed verify's throwaway container is cleared the same way.
func TestKilledBackupLeavesNoSecretAndNoLitter(t *testing.T) {
	t.Parallel()
	p := newProject(t, "litter")
	dir := p.backupDir()
	p.seeded("50", "rulesdb")
	rulesURL := p.status()["rulesdb"].URL
	password := strings.Split(strings.Split(strings.TrimPrefix(rulesURL, "postgres://"), "@")[0], ":")[1]

	release := blockDump(t, rulesURL) // the dump waits mid-way while this lock is held
	cmd := p.command(t.Context(), "backup", "rulesdb")
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	conn := connect(t, rulesURL)
	leaks := map[string]bool{}
	waitFor(t, 30*time.Second, func() bool {
		for _, f := range holding(t, dir, password) {
			leaks[f] = true
		}
		if len(workFiles(t, dir, ".partial")) == 0 || len(workContainers(t, p)) != 1 {
			return false
		}
		// pg_dump runs: it waits for the blocking lock.
		var n int
		err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_locks WHERE NOT granted").Scan(&n)
		return err == nil && n > 0
	})
	assert.Empty(t, leaks, "files that held the password while the dump ran")
	secretFree(t, dir, password)
	helper := workContainers(t, p)[0]
	in, err := docker.ContainerInspect(t.Context(), helper, client.ContainerInspectOptions{})
	require.NoError(t, err)
	assert.NotContains(t, strings.Join(in.Container.Config.Env, " "), password, "the helper's environment")
	assert.NotContains(t, strings.Join(append(in.Container.Config.Entrypoint, in.Container.Config.Cmd...), " "), password, "the helper's command")

	killed := cmd.Process.Pid
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	// What the killed run left: nothing of it readable, all of it litter.
	secretFree(t, dir, password)
	require.NotEmpty(t, workFiles(t, dir, ".partial"), "the killed run left its partial file")
	require.NotEmpty(t, workContainers(t, p), "the killed run left its helper container")
	release()
	live := liveWork(t, dir)

	r := p.aidb("backup", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "removed what an aidb run (pid "+strconv.Itoa(killed)+") killed before it finished left: partial rulesdb-")
	assert.Contains(t, r.stderr, "helper container")
	assert.Equal(t, 1, strings.Count(r.stderr, "killed before it finished"), "said once")
	live()
	assert.Empty(t, workFiles(t, dir, ".fifo"), "no pipe is left")
	assert.Empty(t, workFiles(t, dir, ".pgpass"), "no credentials file is left")
	assert.Empty(t, workContainers(t, p), "no helper or throwaway container of the project is left")
	entries, err := folder.List(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the second backup, whole")
	require.NoError(t, manifest.Check(entries[0].Path, readManifest(t, entries[0].Path)))
	secretFree(t, dir, password)

	// Said once: the next command finds nothing to clear.
	r = p.aidb("backup", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "killed before it finished")

	// A verify killed once its throwaway container exists leaves it (and
	// perhaps a psql helper and its pipes): cleared the same way.
	verify := p.command(t.Context(), "verify", entries[0].Path)
	require.NoError(t, verify.Start())
	waitFor(t, time.Minute, func() bool { return len(workContainers(t, p)) > 0 })
	killed = verify.Process.Pid
	require.NoError(t, verify.Process.Kill())
	_ = verify.Wait()
	require.NotEmpty(t, workContainers(t, p), "the killed verify left its throwaway container")
	r = p.aidb("backup", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "removed what an aidb run (pid "+strconv.Itoa(killed)+") killed before it finished left: ")
	assert.Contains(t, r.stderr, "throwaway container")
	assert.Empty(t, workContainers(t, p))
	assert.Empty(t, workFiles(t, dir, ".fifo"))
	assert.Empty(t, workFiles(t, dir, ".partial"))
}

// liveWork puts a partial file of this (live) test process into dir, as
// a backup that runs would have, and returns a check that it is still there
// and removes it.
func liveWork(t *testing.T, dir string) func() {
	t.Helper()
	path := owner.Name(filepath.Join(dir, "rulesdb-20990101-000000.sql"), folder.PartialSuffix)
	require.NoError(t, os.WriteFile(path, []byte("COPY"), 0o600))
	return func() {
		assert.FileExists(t, path, "a live run's partial file stays")
		require.NoError(t, os.Remove(path))
		assert.Empty(t, workFiles(t, dir, ".partial"), "no partial file of the killed run is left")
	}
}

// secretFree checks that no file in dir holds the password.
func secretFree(t *testing.T, dir, password string) {
	t.Helper()
	assert.Empty(t, holding(t, dir, password), "files that hold the password")
}

// holding lists the files in dir that hold the password (pipes are not
// opened: reading one would take a helper's data).
func holding(t *testing.T, dir, password string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, de := range des {
		if !de.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err == nil && strings.Contains(string(b), password) {
			out = append(out, de.Name())
		}
	}
	return out
}

// workFiles lists the entries of dir whose names end with suffix.
func workFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(d.Name(), suffix) {
			out = append(out, d.Name())
		}
		return nil
	})
	require.NoError(t, err)
	return out
}

// workContainers lists the project's helper and throwaway containers.
func workContainers(t *testing.T, p *project) []string {
	t.Helper()
	cs, err := docker.ContainerList(context.WithoutCancel(t.Context()), client.ContainerListOptions{All: true, Filters: make(client.Filters).
		Add("label", orchestrator.LabelProject+"="+p.name)})
	require.NoError(t, err)
	var out []string
	for _, c := range cs.Items {
		switch c.Labels[orchestrator.LabelRole] {
		case orchestrator.RoleDump, orchestrator.RoleLoad, orchestrator.RoleVerify:
			out = append(out, c.ID)
		}
	}
	return out
}
