package e2e

import (
	"bufio"
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// guideCommands are the commands of a guide's sh blocks, in order: one per
// line, continuation lines joined, comments dropped by the shell.
func guideCommands(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []string
	in, pending := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.TrimSpace(line) == "```sh":
			in = true
		case in && strings.TrimSpace(line) == "```":
			in = false
		case in:
			if strings.HasSuffix(line, "\\") {
				pending += strings.TrimSuffix(line, "\\") + " "
				continue
			}
			if cmd := strings.TrimSpace(pending + line); cmd != "" && !strings.HasPrefix(cmd, "#") {
				out = append(out, cmd)
			}
			pending = ""
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// TestOnboardingGuideRuns runs every command of docs/onboarding.md, as
// written, in a project of its own: a guide that drifts from what aidb does
// is a failing test. make runs this build of aidb (AIDB=), in the
// project's folder, with its backups in backups/ there.
func TestOnboardingGuideRuns(t *testing.T) {
	t.Parallel()
	p := newProject(t, "guide")
	p.backupDir()
	cmds := guideCommands(t, "../docs/onboarding.md")
	require.GreaterOrEqual(t, len(cmds), 10, "the guide's commands: %q", cmds)
	mk := "make -f " + makefile(t) + " AIDB=" + aidbBin + " SOURCES="
	for _, c := range cmds {
		require.Contains(t, c, "make -f Makefile.ai ", "every command of the onboarding guide is a make target: %s", c)
		line := strings.Replace(c, "make -f Makefile.ai", mk, 1)
		cmd := p.command(t.Context())
		cmd.Path, cmd.Args, cmd.Err = "/bin/sh", []string{"sh", "-ec", line}, nil
		env := cmd.Env[:0:0]
		for _, kv := range cmd.Env {
			if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") {
				env = append(env, kv)
			}
		}
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		t.Logf("%s\n%s", c, errOut.String())
		require.NoError(t, err, "the guide's command failed: %s\n%s", c, errOut.String())
	}
	_, err := os.Stat(p.dir + "/report.xml")
	assert.NoError(t, err, "ai-db-verify-all JUNIT=report.xml wrote its report")
}
