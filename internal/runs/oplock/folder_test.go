package oplock

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// holderRE is what a holder writes into the lock file.
var holderRE = regexp.MustCompile(`^aidb backup \(pid [0-9]+, since [0-9]{2}:[0-9]{2}:[0-9]{2}\)$`)

func lockFileText(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, ".aidb.lock"))
	require.NoError(t, err)
	return string(b)
}

func TestFolderSecondHolderWaitsNamesTheHolderAndTimesOut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := Folder(t.Context(), dir, "aidb backup", time.Second, func(string) { t.Error("the first holder waited") })
	require.NoError(t, err)
	defer func() { _ = first.Release() }()
	text := lockFileText(t, dir)
	assert.Regexp(t, holderRE, strings.TrimSuffix(text, "\n"))
	assert.Contains(t, text, fmt.Sprintf("(pid %d, ", os.Getpid()))

	var told []string
	start := time.Now()
	second, err := Folder(t.Context(), dir, "aidb nuke", 300*time.Millisecond, func(h string) { told = append(told, h) })
	assert.Nil(t, second)
	require.Error(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "it waited out its timeout")
	holder := strings.TrimSpace(text)
	assert.Equal(t, []string{holder}, told, "told once, with the holder")
	// The advice that follows (which flag raises the timeout) is the CLI's.
	assert.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf("the backup folder %s is busy: %s has held its lock for longer than 300ms", dir, holder)), err.Error())
	assert.Equal(t, text, lockFileText(t, dir), "the waiter left the holder's line alone")
}

func TestFolderReleaseLetsTheWaiterIn(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := Folder(t.Context(), dir, "aidb backup", time.Second, nil)
	require.NoError(t, err)

	waiting := make(chan string, 1)
	type got struct {
		l   *FolderLock
		err error
	}
	done := make(chan got, 1)
	go func() {
		l, err := Folder(t.Context(), dir, "aidb prune", time.Minute, func(h string) { waiting <- h })
		done <- got{l, err}
	}()
	select {
	case h := <-waiting:
		assert.Regexp(t, holderRE, h)
	case g := <-done:
		t.Fatalf("the second took a held lock: %v", g.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the second neither waited nor returned within 10s")
	}
	select {
	case g := <-done:
		t.Fatalf("the second returned while the first held the lock: %v", g.err)
	default:
	}

	require.NoError(t, first.Release())
	var g got
	select {
	case g = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the second did not get the lock within 10s of its release")
	}
	require.NoError(t, g.err)
	assert.Contains(t, lockFileText(t, dir), "aidb prune (pid ")
	require.NoError(t, g.l.Release())
	assert.Empty(t, lockFileText(t, dir), "a released lock names no holder")
}

func TestFolderWaitEndsOnCtrlC(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := Folder(t.Context(), dir, "aidb backup", time.Second, nil)
	require.NoError(t, err)
	defer func() { _ = first.Release() }()

	ctx, cancel := context.WithCancel(t.Context())
	l, err := Folder(ctx, dir, "aidb nuke", time.Minute, func(string) { cancel() })
	assert.Nil(t, l)
	assert.ErrorIs(t, err, context.Canceled)
}

// A lock file left by a process that died holding the lock (the kernel
// drops its flock) does not block: the next holder gets in at once.
func TestFolderLeftByADeadProcessDoesNotBlock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "OPLOCK_HELPER_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = stdin.Close() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	// While it lives, it holds the lock.
	_, err = Folder(t.Context(), dir, "aidb nuke", 0, nil)
	require.ErrorContains(t, err, "is busy: aidb backup (pid "+fmt.Sprint(cmd.Process.Pid)+", since ")

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	assert.Contains(t, lockFileText(t, dir), fmt.Sprintf("(pid %d, ", cmd.Process.Pid), "the dead holder's line is still there")

	l, err := Folder(t.Context(), dir, "aidb nuke", 0, func(h string) { t.Errorf("waited for a dead holder: %s", h) })
	require.NoError(t, err)
	assert.Contains(t, lockFileText(t, dir), "aidb nuke (pid ")
	require.NoError(t, l.Release())
}

// TestMain runs as the process TestFolderLeftByADeadProcessDoesNotBlock
// kills when OPLOCK_HELPER_DIR is set (not as a test, so the run's summary
// shows no skipped helper): it takes the lock, says so, and holds it until
// stdin closes.
func TestMain(m *testing.M) {
	dir := os.Getenv("OPLOCK_HELPER_DIR")
	if dir == "" {
		os.Exit(m.Run())
	}
	l, err := Folder(context.Background(), dir, "aidb backup", 0, nil)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = l.Release()
	os.Exit(0)
}
