package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/orchestrator"
)

// fallbackSaid is what aidb says, once per run, when it takes the exec
// stream because the helper path does not work.
const fallbackSaid = "go through docker exec's stream instead"

// unshared runs aidb with args in a mount namespace of its own in which the
// backup folder dir is another folder, shadow (a bind mount): aidb writes
// its files and pipes into shadow while the engine, outside, mounts dir
// into a helper container as it is: the engine and aidb see different
// folders, as with an engine in a VM (Docker Desktop, Colima) or on another
// machine.
func (p *project) unshared(dir, shadow string, args ...string) result {
	p.t.Helper()
	cmd := p.command(p.t.Context(), args...)
	unshare, err := exec.LookPath("unshare")
	require.NoError(p.t, err)
	cmd.Path = unshare
	cmd.Args = append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" "$2" && shift 2 && exec "$@"`, "sh", shadow, dir, aidbBin}, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		p.t.Fatalf("run aidb %v in a mount namespace: %v", args, err)
	}
	p.t.Logf("(unshared) aidb %s -> exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// helpers lists the project's helper and throwaway containers, running or
// not.
func helpers(t *testing.T, p *project) []string {
	t.Helper()
	cs, err := docker.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", orchestrator.LabelProject+"="+p.name)})
	require.NoError(t, err)
	var out []string
	for _, c := range cs.Items {
		switch c.Labels[orchestrator.LabelRole] {
		case orchestrator.RoleDump, orchestrator.RoleLoad, orchestrator.RoleVerify:
			out = append(out, c.Labels[orchestrator.LabelRole]+" "+c.ID[:12])
		}
	}
	return out
}

// names lists the names in dir.
func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// Where the engine does not see the backup folder aidb writes into (an
// engine in a VM, on another machine), the helper path cannot work: aidb
// tries it once per run (a helper writes a token into a pipe), finds it
// does not, says so once with the reason, and backs up, restores and
// verifies through the exec stream. A forced --via helper is refused,
// naming the reason and --via stream. Nothing is left: no pipe, no token
// file (on either side), no helper container. Where the engine does see
// the folder, the same check finds the helper path and says nothing.
func TestBackupFolderTheEngineDoesNotSee(t *testing.T) {
	t.Parallel()
	needCores(t)
	if os.Geteuid() != 0 {
		t.Skip("mounting in a mount namespace of its own needs root")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare (util-linux)")
	}
	p := newProject(t, "paths")
	dir := p.backupDir()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	shadow := filepath.Join(p.dir, "shadow")
	require.NoError(t, os.MkdirAll(shadow, 0o700))
	p.seeded("2000")
	_, err := connect(t, p.status()["rulesdb"].URL).Exec(t.Context(), "ANALYZE")
	require.NoError(t, err)
	// in names a file of aidb's view of the folder outside the namespace.
	in := func(path string) string { return filepath.Join(shadow, strings.TrimPrefix(path, dir)) }
	clean := func(what string) {
		t.Helper()
		assert.Empty(t, names(t, dir), "%s: the folder the engine sees holds nothing (no token file, no pipe)", what)
		for _, n := range names(t, shadow) {
			assert.False(t, strings.HasSuffix(n, ".fifo") || strings.HasSuffix(n, ".partial"), "%s: left %s", what, n)
		}
		assert.Empty(t, helpers(t, p), "%s: no helper or throwaway container left", what)
	}

	// Both databases at once, each reading its large tables in parts
	// where the helper works (--split-over 1): the stream reads none.
	r := p.unshared(dir, shadow, "backup", "--json", "--split-over", "1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, 1, strings.Count(r.stderr, fallbackSaid), "said once for the run: %s", r.stderr)
	assert.Contains(t, r.stderr, "found no pipe", "the reason is named")
	var res backup.Result
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	require.Len(t, res.Files, 2)
	for _, f := range res.Files {
		assert.Empty(t, f.Split, "%s: the exec stream reads no table in parts", f.Database)
		assert.FileExists(t, in(f.Path))
	}
	clean("backup")
	rules := res.Files[0].Path
	if res.Files[0].Database != "rulesdb" {
		rules = res.Files[1].Path
	}

	// The restore's safety backup and its load, one run: said once.
	r = p.unshared(dir, shadow, "restore", "rulesdb", rules, "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, 1, strings.Count(r.stderr, fallbackSaid), r.stderr)
	assert.Contains(t, r.stderr, "restored and verified")
	clean("restore")

	// Verify's load through one psql stream (--load-jobs 1) goes through
	// the transport: said once. Its parallel load connects to the
	// throwaway's sessions itself, through no folder, and needs no path.
	r = p.unshared(dir, shadow, "verify", "--json", "--load-jobs", "1", rules)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, 1, strings.Count(r.stderr, fallbackSaid), r.stderr)
	clean("verify")
	r = p.unshared(dir, shadow, "verify", "--json", rules)
	require.Equal(t, 0, r.code, r.stderr)
	clean("verify")

	// Forced: refused, naming the reason and the way out; no file written.
	before := names(t, shadow)
	r = p.unshared(dir, shadow, "backup", "rulesdb", "--via", "helper")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "found no pipe")
	assert.Contains(t, r.stderr, "--via stream")
	assert.NotContains(t, r.stderr, fallbackSaid)
	assert.Equal(t, before, names(t, shadow), "a refused backup writes nothing")
	clean("forced helper")

	// Where the engine sees the folder, the check finds the helper path:
	// nothing said, and the large tables read in parts.
	r = p.aidb("backup", "rulesdb", "--json", "--split-over", "1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, fallbackSaid)
	res = backup.Result{}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	require.Len(t, res.Files, 1)
	assert.NotEmpty(t, res.Files[0].Split, "the helper path reads large tables in parts")
	assert.Empty(t, helpers(t, p))
}
