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
