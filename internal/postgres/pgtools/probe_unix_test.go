//go:build unix

package pgtools

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// probingHelper is a helper whose pipes are in a folder of the test's and
// whose exit the test reports on exit.
func probingHelper(t *testing.T) (*helper, chan container.WaitResponse) {
	t.Helper()
	exit := make(chan container.WaitResponse, 1)
	h := &helper{base: filepath.Join(t.TempDir(), ".aidb-dump-test")}
	h.wait = client.ContainerWaitResult{Result: exit, Error: make(chan error)}
	return h, exit
}

// awaitToken: the token through the pipe is the helper path proven; a
// helper that found no pipe, or a pipe that carries nothing before the
// deadline, is a reason; the token pipe is gone afterwards either way.
func TestAwaitToken(t *testing.T) {
	t.Parallel()
	t.Run("the token comes", func(t *testing.T) {
		t.Parallel()
		h, _ := probingHelper(t)
		tok, err := h.tokenPipe()
		require.NoError(t, err)
		go func() {
			w, err := os.OpenFile(tok.path, os.O_WRONLY, 0)
			if err == nil {
				_, _ = w.WriteString(tok.token + "\n")
				_ = w.Close()
			}
		}()
		assert.NoError(t, h.awaitToken(t.Context(), tok, 10*time.Second))
		tok.close()
		assert.NoFileExists(t, tok.path)
	})
	t.Run("nothing comes before the deadline", func(t *testing.T) {
		t.Parallel()
		h, _ := probingHelper(t)
		tok, err := h.tokenPipe()
		require.NoError(t, err)
		start := time.Now()
		err = h.awaitToken(t.Context(), tok, 200*time.Millisecond)
		require.Error(t, err)
		assert.Less(t, time.Since(start), 5*time.Second, "the deadline ends the wait")
		assert.Contains(t, err.Error(), "carried nothing from a helper container within 200ms")
		assert.Contains(t, err.Error(), filepath.Dir(h.base))
		tok.close()
		assert.NoFileExists(t, tok.path)
	})
	t.Run("the helper found no pipe", func(t *testing.T) {
		t.Parallel()
		h, exit := probingHelper(t)
		tok, err := h.tokenPipe()
		require.NoError(t, err)
		exit <- container.WaitResponse{StatusCode: probeNoPipe}
		err = h.awaitToken(t.Context(), tok, 10*time.Second)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "see another folder at "+filepath.Dir(h.base))
		assert.Contains(t, err.Error(), "found no pipe there")
		assert.True(t, h.exited, "its exit is read: nothing waits for it")
		tok.close()
	})
	t.Run("something else comes", func(t *testing.T) {
		t.Parallel()
		h, _ := probingHelper(t)
		tok, err := h.tokenPipe()
		require.NoError(t, err)
		_, err = tok.f.WriteString("not the token\n")
		require.NoError(t, err)
		assert.ErrorContains(t, h.awaitToken(t.Context(), tok, 10*time.Second), "something else")
		tok.close()
	})
}

// The probing helper's entrypoint, run by this system's sh: where its pipe
// is, it writes the token and runs the script; where it is not (the
// engine mounted another folder), it exits 97 and creates no file.
func TestProbeScript(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "script")
	require.NoError(t, os.WriteFile(script, []byte("echo script ran\n"), 0o600))

	missing := filepath.Join(dir, "missing.fifo")
	out, err := exec.Command("sh", "-c", probeScript, "sh", missing, "tok", script).CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "%v: %s", err, out)
	assert.Equal(t, probeNoPipe, exit.ExitCode())
	assert.Contains(t, string(out), "no pipe at "+missing)
	assert.NoFileExists(t, missing, "no token file where the pipe is not")

	h, _ := probingHelper(t)
	tok, err := h.tokenPipe()
	require.NoError(t, err)
	defer tok.close()
	cmd := exec.Command("sh", "-c", probeScript, "sh", tok.path, tok.token, script)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	require.NoError(t, cmd.Start())
	require.NoError(t, h.awaitToken(t.Context(), tok, 10*time.Second))
	require.NoError(t, cmd.Wait())
	assert.Equal(t, "script ran\n", stdout.String(), "then the script runs")
}
