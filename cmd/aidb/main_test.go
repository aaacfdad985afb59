package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// These run the command line in-process, with no engine needed: bad usage
// and bad input are refused before aidb contacts the engine.

func runAidb(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	for _, args := range [][]string{
		{"up", "--no-such-flag"},
		{"status", "--json=maybe"},
		{"up", "--timeout", "soon"},
	} {
		code, _, stderr := runAidb(t, args...)
		assert.Equal(t, 2, code, "%v: %s", args, stderr)
		assert.Contains(t, stderr, "aidb --help", "%v", args)
	}
}

func TestUnknownDatabaseExit2ListsKnown(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock") // never reached
	code, stdout, stderr := runAidb(t, "up", "nosuchdb")
	assert.Equal(t, 2, code, stderr)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, `unknown database "nosuchdb"`)
	assert.Contains(t, stderr, "memorydb, rulesdb")
	assert.NotContains(t, stderr, "Docker engine", "refused before contacting the engine")
}

func TestMissingComposeFileExit2(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	code, _, stderr := runAidb(t, "status", "-f", t.TempDir()+"/nope.yaml")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, "nope.yaml")
}

func TestEngineUnreachableExit1Quickly(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:1") // nothing listens on port 1
	start := time.Now()
	code, _, stderr := runAidb(t, "status")
	elapsed := time.Since(start)
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, "tcp://127.0.0.1:1", "names the address tried")
	assert.Contains(t, stderr, "is the Docker daemon running?")
	// The contract is "within 5 s": this bounds a hang, it is not a speed test.
	assert.Less(t, elapsed, 5*time.Second)
}
