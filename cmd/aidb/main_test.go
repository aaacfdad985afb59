package main

import (
	"bytes"
	"runtime/debug"
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

// What a user asked for is the command's output: a completion script that
// went to stderr could not be sourced, help piped to less was empty.
func TestRequestedOutputGoesToStdout(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "Exit codes"},
		{[]string{"restore", "--help"}, "--data-only"},
		{[]string{"--version"}, "aidb "},
		{[]string{"completion", "bash"}, "bash completion"},
		{[]string{"completion", "zsh"}, "compdef"},
		{[]string{"__complete", "ver"}, "verify"},
		{nil, "Available Commands"},
	} {
		code, stdout, stderr := runAidb(t, tc.args...)
		assert.Equal(t, 0, code, "%v: %s", tc.args, stderr)
		assert.Contains(t, stdout, tc.want, "%v", tc.args)
		if tc.args != nil && tc.args[0] == "__complete" {
			// cobra's debug line; the shell scripts discard it
			assert.NotContains(t, stderr, tc.want, "%v", tc.args)
			continue
		}
		assert.Empty(t, stderr, "%v", tc.args)
	}
}

func TestUnknownCommandExit2(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bakup"}, `unknown command "bakup" for "aidb" (did you mean backup?)`},
		{[]string{"image", "biuld"}, `unknown command "biuld" for "aidb image"`},
	} {
		code, stdout, stderr := runAidb(t, tc.args...)
		assert.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		assert.Empty(t, stdout, "%v", tc.args)
		assert.Contains(t, stderr, tc.want, "%v", tc.args)
		assert.Contains(t, stderr, "aidb --help", "%v", tc.args)
	}
}

func TestVersionNamesTheRevision(t *testing.T) {
	t.Parallel()
	stamped := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/aidb/aidb", Version: "(devel)"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tagged := &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "false"},
	}}
	for _, tc := range []struct {
		name     string
		override string
		info     *debug.BuildInfo
		want     string
	}{
		{"checkout", "", stamped, "devel (revision 0123456789abcdef0123456789abcdef01234567, 2026-01-02T03:04:05Z, modified)"},
		{"module version", "", tagged, "v1.4.0 (revision abc)"},
		{"ldflags override", "v2.0.0", tagged, "v2.0.0 (revision abc)"},
		{"no vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "devel (no VCS revision: built outside a git checkout or with -buildvcs=false)"},
		{"no build info", "", nil, "devel"},
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
	} {
		assert.Equal(t, tc.want, versionOf(tc.override, tc.info), tc.name)
	}
}

// A JUnit path that cannot be written is refused before any verification
// (and before the engine is needed), not after minutes of it.
func TestVerifyJUnitPathCheckedFirst(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock") // never reached
	code, _, stderr := runAidb(t, "verify", "--all", "--junit", t.TempDir()+"/no/such/dir/report.xml")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, "report.xml: cannot write the report there")
	assert.Contains(t, stderr, "nothing was verified")
	assert.NotContains(t, stderr, "Docker", "refused before the engine is needed")
}
