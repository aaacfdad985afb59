package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/orchestrator"
)

// readPosition says whether process pid has file open and, if so, how far
// it has read it (the open file's offset, from /proc/<pid>/fdinfo): an
// outside view of how far a restore or verification has streamed a backup.
func readPosition(t *testing.T, pid int, file string) (int64, bool) {
	t.Helper()
	want, err := filepath.EvalSymlinks(file)
	require.NoError(t, err)
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, false // the process is gone
	}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if err != nil || strings.TrimSuffix(link, " (deleted)") != want {
			continue
		}
		info, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + fd.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "pos:"); ok {
				pos, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				require.NoError(t, err)
				return pos, true
			}
		}
	}
	return 0, false
}

// containersWithRole lists the IDs of the project's containers with role.
func containersWithRole(t *testing.T, p *project, role string) []string {
	t.Helper()
	cs, err := docker.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: make(client.Filters).
		Add("label", orchestrator.LabelProject+"="+p.name).Add("label", orchestrator.LabelRole+"="+role)})
	require.NoError(t, err)
	ids := make([]string, len(cs.Items))
	for i, c := range cs.Items {
		ids[i] = c.ID
	}
	return ids
}

// TestVerifyThrowawayKilledMidLoad kills the throwaway container a
// verification restores into while the file is loading.
func TestVerifyThrowawayKilledMidLoad(t *testing.T) {
	t.Parallel()
	p := newProject(t, "fvkill")
	dir := p.backupDir()
	p.seeded("3000")
	url := p.status()["memorydb"].URL
	file := p.backupJSON("memorydb").Files[0].Path
	st, err := os.Stat(file)
	require.NoError(t, err)
	source := content(t, url)

	cmd := p.command(t.Context(), "verify", file)
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	// The load is under way once aidb streams the file (opened after the
	// checksum pass) to a psql helper. The throwaway is frozen first, so
	// the kill lands before the load can finish.
	waitFor(t, 2*time.Minute, func() bool {
		_, open := readPosition(t, cmd.Process.Pid, file)
		return open && len(containersWithRole(t, p, orchestrator.RoleLoad)) > 0
	})
	ids := containersWithRole(t, p, orchestrator.RoleVerify)
	require.Len(t, ids, 1)
	_, err = docker.ContainerPause(t.Context(), ids[0], client.ContainerPauseOptions{})
	require.NoError(t, err)
	pos, open := readPosition(t, cmd.Process.Pid, file)
	require.True(t, open, "aidb still streams the file")
	require.Less(t, pos, st.Size(), "the file is still loading when its server dies")
	_, err = docker.ContainerKill(t.Context(), ids[0], client.ContainerKillOptions{Signal: "SIGKILL"})
	require.NoError(t, err)

	_ = cmd.Wait()
	assert.Equal(t, 1, cmd.ProcessState.ExitCode(), "could not verify: neither equal (0) nor a difference (3)\n%s", stderr.String())
	assert.Contains(t, stderr.String(), "NOT VERIFIED: ")
	assert.Contains(t, stderr.String(), "the throwaway container "+ids[0][:12]+" stopped while the file was loading (exited, exit code 137: killed")
	assert.Empty(t, containersWithRole(t, p, orchestrator.RoleVerify), "no throwaway container left")
	assert.Empty(t, containersWithRole(t, p, orchestrator.RoleLoad), "no psql helper left")
	assert.Empty(t, partials(t, dir))
	assert.Equal(t, source, content(t, url), "the source database is unchanged")
}
