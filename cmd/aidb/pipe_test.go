package main

import (
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A write to stdout or stderr whose reader is gone says so once it fails
// (EPIPE), so the run stops as on Ctrl-C, with SIGPIPE's exit code.
func TestPipeWatchTellsAReaderGone(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer func() { _ = w.Close() }()
	told := 0
	p := &pipeWatch{f: w, broken: func() { told++ }}
	_, err = p.Write([]byte("read\n"))
	require.NoError(t, err)
	assert.Zero(t, told, "a reader is there")
	require.NoError(t, r.Close())
	_, err = p.Write([]byte("gone\n"))
	assert.ErrorIs(t, err, syscall.EPIPE)
	assert.Equal(t, 1, told)
	code, what := signalExit(syscall.SIGPIPE)
	assert.Equal(t, 141, code)
	assert.Contains(t, what, "the reader of its output went away")
}
