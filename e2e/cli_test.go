package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
)

// makefile is the repository's Makefile.ai.
func makefile(t *testing.T) string {
	t.Helper()
	f, err := filepath.Abs("../Makefile.ai")
	require.NoError(t, err)
	return f
}

// makeTarget runs make -f Makefile.ai target with vars (each NAME=value,
// one argument each: no shell in between, so the value is exactly what a
// user's shell would hand make) in the project's folder, with the binary
// under test as bin/aidb (SOURCES= keeps make from rebuilding it).
func (p *project) makeTarget(target string, vars ...string) result {
	p.t.Helper()
	return p.makeWith(makefile(p.t), target, vars...)
}

// makeWith runs make -f file target with vars as makeTarget does, with
// the binary under test as AIDB.
func (p *project) makeWith(file, target string, vars ...string) result {
	p.t.Helper()
	args := append([]string{"-f", file, "AIDB=" + aidbBin, "SOURCES=", target}, vars...)
	cmd := p.command(p.t.Context())
	mk, err := exec.LookPath("make")
	require.NoError(p.t, err, "make is needed to test Makefile.ai")
	cmd.Path, cmd.Args, cmd.Err = mk, append([]string{"make"}, args...), nil
	// This run's make must not inherit the flags of a make above go test.
	env := cmd.Env[:0:0]
	for _, kv := range cmd.Env {
		if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		p.t.Fatalf("make %v: %v", args, err)
	}
	p.t.Logf("make %s -> exit %d\n%s", strings.Join(append([]string{target}, vars...), " "), code, errOut.String())
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// copyBackup copies a backup file and its manifest to name in the
// project's folder.
func (p *project) copyBackup(src, name string) {
	p.t.Helper()
	for _, suffix := range []string{"", manifest.Suffix} {
		b, err := os.ReadFile(src + suffix)
		require.NoError(p.t, err)
		require.NoError(p.t, os.WriteFile(filepath.Join(p.dir, name+suffix), b, 0o600))
	}
}

// The restore targets without their file name their own variable, before
// anything is contacted.
func TestCLIRestoreTargetsNameTheirVariable(t *testing.T) {
	t.Parallel()
	p := &project{t: t, name: runPrefix + "-clivars", dir: t.TempDir()}
	p.env = append(p.env, "DOCKER_HOST=unix:///nonexistent/docker.sock") // never reached
	for _, tc := range []struct{ target, vars, example string }{
		{"ai-db-restore", "BACKUP", "make -f Makefile.ai ai-db-restore BACKUP=backups/rulesdb-"},
		{"ai-memorydb-restore", "BACKUP_FILE", "make -f Makefile.ai ai-memorydb-restore BACKUP_FILE=backups/memorydb-"},
		{"ai-db-restore-data", "BACKUP", "make -f Makefile.ai ai-db-restore-data BACKUP=backups/rulesdb-data-"},
		{"ai-memorydb-restore-data", "BACKUP_FILE", "make -f Makefile.ai ai-memorydb-restore-data BACKUP_FILE=backups/memorydb-data-"},
		{"ai-db-restore-all", "RULESDB_FILE", "make -f Makefile.ai ai-db-restore-all RULESDB_FILE=backups/rulesdb-"},
	} {
		r := p.makeTarget(tc.target)
		assert.Equal(t, 2, r.code, tc.target)
		assert.Contains(t, r.stderr, "no backup file given", tc.target)
		assert.Contains(t, r.stderr, "set "+tc.vars+", e.g. "+tc.example, tc.target)
		assert.NotContains(t, r.stderr, "Docker", tc.target)
	}
	r := p.makeTarget("ai-db-restore-all", "RULESDB_FILE=backups/x.sql")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "no backup file given for memorydb: set MEMORYDB_FILE, e.g. make -f Makefile.ai ai-db-restore-all RULESDB_FILE=")
	// The example names the folder the backups are in.
	p.env = append(p.env, "AIDB_BACKUP_DIR=/srv/aidb-backups")
	r = p.makeTarget("ai-db-restore")
	assert.Contains(t, r.stderr, "BACKUP=/srv/aidb-backups/rulesdb-")
}

// One project for the CLI's contracts that need real databases: seed's
// JSON, file names of every kind through the make targets, restore and
// verify progress without a terminal, and the narrow verification table.
func TestCLIOnRealDatabases(t *testing.T) {
	p := newProject(t, "cli")
	dir := p.backupDir()
	for _, args := range [][]string{{"up"}, {"migrate"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}

	type seeded struct {
		Database string           `json:"database"`
		Seeded   bool             `json:"seeded"`
		Rows     map[string]int64 `json:"rows"`
		Seconds  *float64         `json:"duration_s"`
	}
	seedJSON := func(t *testing.T, args ...string) []seeded {
		t.Helper()
		r := p.aidb(append([]string{"seed", "--json"}, args...)...)
		require.Equal(t, 0, r.code, r.stderr)
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		var doc struct {
			Databases *[]seeded `json:"databases"`
		}
		require.NoError(t, dec.Decode(&doc), r.stdout)
		_, err := dec.Token()
		require.ErrorIs(t, err, io.EOF, "stdout holds one JSON document: %s", r.stdout)
		require.NotNil(t, doc.Databases, "databases is a list, not null: %s", r.stdout)
		return *doc.Databases
	}
	t.Run("seed --json is a document", func(t *testing.T) {
		got := seedJSON(t, "--rows", "30")
		require.Len(t, got, 2)
		for _, s := range got {
			assert.True(t, s.Seeded, s.Database)
			assert.NotEmpty(t, s.Rows, s.Database)
			if assert.NotNil(t, s.Seconds, s.Database) {
				assert.Positive(t, *s.Seconds, s.Database)
			}
		}
		// Nothing seeded is still a document that names each database.
		got = seedJSON(t, "--if-empty")
		require.Len(t, got, 2)
		for _, s := range got {
			assert.False(t, s.Seeded, s.Database)
			assert.NotNil(t, s.Rows, "rows is {} when nothing was seeded: %s", s.Database)
		}
	})

	res := p.backupJSON()
	require.Len(t, res.Files, 2)
	files := map[string]string{}
	for _, f := range res.Files {
		files[f.Database] = f.Path
	}

	t.Run("make targets take any file name", func(t *testing.T) {
		for _, name := range []string{
			"rules db.sql",
			`rules"db.sql`,
			"rules'db.sql",
			"rules$db $(x) `y`.sql",
			"-rules.sql",
			"--yes",
		} {
			p.copyBackup(files["rulesdb"], name)
			r := p.makeTarget("ai-db-restore", "BACKUP="+name)
			assert.Equal(t, 0, r.code, "%q: %s", name, r.stderr)
			assert.Contains(t, r.stderr, "rulesdb: restored and verified", name)
			assert.Contains(t, r.stderr, "from "+name+"\n", "the file restored is the one named: %q", name)
		}
		p.copyBackup(files["memorydb"], "-memory 'db\".sql")
		r := p.makeTarget("ai-memorydb-restore", `BACKUP_FILE=-memory 'db".sql`)
		assert.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stderr, "memorydb: restored and verified")

		r = p.makeTarget("ai-db-restore-all", "RULESDB_FILE=rules db.sql", `MEMORYDB_FILE=-memory 'db".sql`)
		assert.Equal(t, 0, r.code, r.stderr)
		assert.Contains(t, r.stderr, "rulesdb: restored and verified")
		assert.Contains(t, r.stderr, "memorydb: restored and verified")

		// A missing file is named exactly as given; nothing changes.
		missing := `no such 'file" $HOME.sql`
		r = p.makeTarget("ai-db-restore", "BACKUP="+missing)
		assert.Equal(t, 2, r.code, r.stderr) // make's code for any failure
		assert.Contains(t, r.stderr, missing+":")

		// ai-db-verify takes any name too, and reports its phases.
		r = p.makeTarget("ai-db-verify", "BACKUP=-rules.sql")
		assert.Equal(t, 0, r.code, r.stderr)
		assert.Equal(t, 1, strings.Count(r.stderr, "-rules.sql: loading into a throwaway container"), r.stderr)
		assert.Equal(t, 1, strings.Count(r.stderr, "-rules.sql: checking what was loaded against the manifest"), r.stderr)
	})

	t.Run("restore reports its phases without a terminal", func(t *testing.T) {
		r := p.aidb("restore", "--yes", "--no-backup", "rulesdb", files["rulesdb"])
		require.Equal(t, 0, r.code, r.stderr)
		load := strings.Index(r.stderr, "rulesdb: loading "+files["rulesdb"]+" (")
		check := strings.Index(r.stderr, "rulesdb: checking what was loaded against the manifest")
		swap := strings.Index(r.stderr, "rulesdb: swapping the restored database in")
		assert.True(t, load >= 0 && check > load && swap > check, "load, check, swap in order:\n%s", r.stderr)
		for _, phase := range []string{"rulesdb: loading", "rulesdb: checking", "rulesdb: swapping"} {
			assert.Equal(t, 1, strings.Count(r.stderr, phase), "one line per phase: %q", phase)
		}
		assert.NotContains(t, r.stderr, "\r", "no redrawn bar without a terminal")
	})

	t.Run("the verification table stays narrow", func(t *testing.T) {
		plain := filepath.Join(dir, "rulesdb-plain.sql") // no manifest: a long reason
		require.NoError(t, os.WriteFile(plain, []byte("SELECT 1;\n"), 0o600))
		t.Cleanup(func() { _ = os.Remove(plain) })
		r := p.aidb("verify", plain, files["rulesdb"])
		assert.Equal(t, 1, r.code, r.stderr)
		lines := strings.Split(r.stderr, "\n")
		header := -1
		for i, l := range lines {
			if strings.HasPrefix(l, "BACKUP ") {
				header = i
			}
		}
		require.GreaterOrEqual(t, header, 0, r.stderr)
		require.Greater(t, len(lines), header+3, r.stderr)
		for _, l := range lines[header : header+3] {
			assert.Less(t, len(l), 100, "a table line: %q", l)
		}
		assert.Contains(t, lines[header+1], "NOT VERIFIED")
		assert.Contains(t, lines[header+2], "equal")
		assert.Contains(t, strings.Join(lines[header+3:], "\n"), "rulesdb-plain.sql: not verified: "+plain+" has no manifest")
	})
}

// aidb --version names the git revision it was built from, as make builds
// it in a checkout.
func TestCLIVersionNamesTheRevision(t *testing.T) {
	t.Parallel()
	top, err := exec.Command("git", "-C", "..", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	clone := filepath.Join(t.TempDir(), "aidb")
	out, err := exec.Command("git", "clone", "-q", strings.TrimSpace(string(top)), clone).CombinedOutput()
	require.NoError(t, err, "%s", out)
	head, err := exec.Command("git", "-C", clone, "rev-parse", "HEAD").Output()
	require.NoError(t, err)

	build := exec.CommandContext(t.Context(), "make", "-f", "Makefile.ai", "bin/aidb")
	build.Dir = clone
	out, err = build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	var stdout, stderr bytes.Buffer
	v := exec.CommandContext(context.WithoutCancel(t.Context()), filepath.Join(clone, "bin", "aidb"), "--version")
	v.Stdout, v.Stderr = &stdout, &stderr
	require.NoError(t, v.Run(), stderr.String())
	assert.Contains(t, stdout.String(), "revision "+strings.TrimSpace(string(head)), "stdout: %q, stderr: %q", stdout.String(), stderr.String())
	assert.NotContains(t, stdout.String(), "modified", "a fresh clone has no local changes")
	assert.Empty(t, stderr.String())
}

// TestMakeYesNoVariables: VERIFY and YES take 1/yes/true or 0/no/false;
// any other value is refused by make before aidb runs, instead of being
// read silently as one or the other (VERIFY=false verified; YES=yes did
// not remove).
func TestMakeYesNoVariables(t *testing.T) {
	t.Parallel()
	p := newProject(t, "makeyesno")
	for _, c := range []struct{ target, v string }{{"ai-db-backup", "VERIFY=maybe"}, {"ai-db-prune", "YES=sure"}} {
		r := p.makeTarget(c.target, c.v)
		assert.Equal(t, 2, r.code, r.stderr)
		name, _, _ := strings.Cut(c.v, "=")
		assert.Contains(t, r.stderr, c.v+": give "+name+"=1 or "+name+"=0")
		assert.NotContains(t, r.stdout, aidbBin, "aidb did not run")
	}
	r := p.makeTarget("ai-db-prune", "YES=yes", "KEEP=10")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "--keep-last 10 --yes", "YES=yes passes --yes")
	// Without KEEP (or KEEP_DAILY, ...) no keep flag is passed: aidb.yaml's
	// rules apply, else keep-last 10; the calendar variables pass theirs.
	r = p.makeTarget("ai-db-prune", "YES=1")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "prune --make-target=ai-db-prune --yes")
	assert.Contains(t, r.stderr, "policy: keep-last 10")
	r = p.makeTarget("ai-db-prune", "KEEP_DAILY=7", "KEEP_WEEKLY=4", "KEEP_YEARLY=1")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "--keep-daily 7 --keep-weekly 4 --keep-yearly 1")
	assert.Contains(t, r.stderr, "policy: keep-daily 7, keep-weekly 4, keep-yearly 1")
	r = p.makeTarget("ai-db-prune", "YES=no")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stdout, "--yes")
}
