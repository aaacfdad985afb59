package pgimage

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMountPoints(t *testing.T) {
	t.Parallel()
	info := `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 22 0:5 / /tmp/aidb-pgimage-1/proc rw - proc proc rw
36 22 0:6 / /tmp/aidb-pgimage-1/dev/with\040space rw - tmpfs nodev rw
`
	assert.Equal(t, []string{"/", "/tmp/aidb-pgimage-1/proc", "/tmp/aidb-pgimage-1/dev/with space"}, mountPoints(info))
}

func TestStatFields(t *testing.T) {
	t.Parallel()
	state, pgrp, ok := statFields("4242 (a (weird) name) S 1 4240 4240 0 -1 4194560")
	assert.True(t, ok)
	assert.Equal(t, "S", state)
	assert.Equal(t, 4240, pgrp)
	_, _, ok = statFields("garbage")
	assert.False(t, ok)
}

// TestKillTreeEndsTheGroupAndWhatWorksInRoot starts a shell with children
// in a process group of its own and a process working inside root outside
// that group, as debootstrap's tree looks; killTree ends them all.
func TestKillTreeEndsTheGroupAndWhatWorksInRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	group := exec.Command("sh", "-c", "sleep 300 & sleep 300 & wait")
	group.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, group.Start())
	t.Cleanup(func() { _ = syscall.Kill(-group.Process.Pid, syscall.SIGKILL) })
	stray := exec.Command("sleep", "300")
	stray.Dir = root
	stray.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	require.NoError(t, stray.Start())
	t.Cleanup(func() { _ = stray.Process.Kill() })

	// The shell, its two children, and the stray.
	var members []int
	require.Eventually(t, func() bool {
		members = treeProcesses(group.Process.Pid, root)
		return len(members) >= 4
	}, 10*time.Second, 20*time.Millisecond, "the shell did not start its children")
	assert.Contains(t, members, stray.Process.Pid, "working inside root")

	done := make(chan struct{})
	go func() { _ = group.Wait(); _ = stray.Wait(); close(done) }()
	require.NoError(t, killTree(group.Process.Pid, root))
	<-done
	for _, pid := range members {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err == nil {
			state, _, _ := statFields(string(b))
			assert.Equal(t, "Z", strings.TrimSpace(state), "process %d ended", pid)
		}
	}
}
