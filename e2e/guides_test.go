package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/ops/scheduler"
)

// guideBlock is one fenced block of a guide: its language and its lines.
// An sh block's lines are its commands, one a line: continuation lines
// joined, blank lines and whole-line comments dropped (the shell drops
// the rest); other blocks keep their lines as written.
type guideBlock struct {
	lang  string
	lines []string
}

// guideBlocks returns the fenced blocks of a guide, in order.
func guideBlocks(t *testing.T, path string) []guideBlock {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	var out []guideBlock
	var cur *guideBlock
	pending := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &guideBlock{lang: strings.TrimPrefix(trimmed, "```")}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur, pending = nil, ""
		case cur != nil && cur.lang != "sh":
			cur.lines = append(cur.lines, line)
		case cur != nil:
			if strings.HasSuffix(line, "\\") {
				pending += strings.TrimSuffix(line, "\\") + " "
				continue
			}
			if cmd := strings.TrimSpace(pending + line); cmd != "" && !strings.HasPrefix(cmd, "#") {
				cur.lines = append(cur.lines, cmd)
			}
			pending = ""
		}
	}
	require.NoError(t, sc.Err())
	require.Nil(t, cur, "%s: a fenced block is not closed", path)
	return out
}

// guideCommands are the commands of a guide's sh blocks, in order.
func guideCommands(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	for _, b := range guideBlocks(t, path) {
		if b.lang == "sh" {
			out = append(out, b.lines...)
		}
	}
	return out
}

// guideShell is sh -ec script in the project's environment, in dir: make
// inherits no flags of a make above go test.
func guideShell(ctx context.Context, p *project, dir, script string) *exec.Cmd {
	cmd := p.command(ctx)
	cmd.Path, cmd.Args, cmd.Err = "/bin/sh", []string{"sh", "-ec", script}, nil
	cmd.Dir = dir
	env := cmd.Env[:0:0]
	for _, kv := range cmd.Env {
		if !strings.HasPrefix(kv, "MAKEFLAGS=") && !strings.HasPrefix(kv, "MFLAGS=") && !strings.HasPrefix(kv, "MAKELEVEL=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	return cmd
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
		cmd := guideShell(t.Context(), p, p.dir, line)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		t.Logf("%s\n%s", c, errOut.String())
		require.NoError(t, err, "the guide's command failed: %s\n%s", c, errOut.String())
	}
	_, err := os.Stat(p.dir + "/report.xml")
	assert.NoError(t, err, "ai-db-verify-all JUNIT=report.xml wrote its report")
}

// guideSubst maps one placeholder of a guide (a path, a URL, a credential
// written for a human) to the test's own value, given when the command
// runs.
type guideSubst struct {
	from string
	to   func() string
}

func fixed(s string) func() string { return func() string { return s } }

// placeholderRE finds what looks like a placeholder a human fills in. A
// command that still holds one once the substitution table is applied is a
// guide this test does not know how to run: a failure, not a pass.
var placeholderRE = regexp.MustCompile(`example|…|\.\.\.|UUID|/srv/|path/to|\.internal\b|<[A-Za-z_ -]+>|YOUR_|CHANGEME`)

// checkSubstitutions fails the test when an entry of the table no longer
// occurs in the guides' commands, or when a command holds a placeholder
// the table does not cover.
func checkSubstitutions(t *testing.T, table []guideSubst, cmds []string) {
	t.Helper()
	all := strings.Join(cmds, "\n")
	for _, s := range table {
		if !strings.Contains(all, s.from) {
			t.Errorf("the substitution table's %q no longer occurs in the guides' commands: the guide drifted, or the table must follow it", s.from)
		}
	}
	for _, c := range cmds {
		left := c
		for _, s := range table {
			left = strings.ReplaceAll(left, s.from, "")
		}
		if m := placeholderRE.FindString(left); m != "" {
			t.Errorf("the guide's command holds %q, which the substitution table does not cover: %s", m, c)
		}
	}
	require.False(t, t.Failed(), "the guides and the substitution table must agree")
}

// needTool returns the path of a tool the guide runs. make is one of the
// README's three requirements, and age's tools are brought by TestMain (Go
// tools of ../tools/go.mod): a missing one fails the test, never skips it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	require.NoError(t, err, "%s should be on PATH (make is a requirement; the test tools come from ../tools/go.mod)", name)
	return p
}

// descendant is the process below pid (its child, grandchild, ...) whose
// executable is exe, 0 when there is none.
func descendant(t *testing.T, pid int, exe string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	parent := map[int]int{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after
		// its closing parenthesis.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 {
			if pp, err := strconv.Atoi(f[1]); err == nil {
				parent[n] = pp
			}
		}
	}
	for n := range parent {
		for a := parent[n]; a > 1; a = parent[a] {
			if a == pid {
				if target, err := os.Readlink("/proc/" + strconv.Itoa(n) + "/exe"); err == nil && target == exe {
					return n
				}
				break
			}
		}
	}
	return 0
}

// TestAdminGuideRuns runs the commands of docs/admin.md (its sh blocks,
// its cron lines, its systemd unit's ExecStart lines, its aidb.yaml
// retention block) and docs/ci-restore-validation.md's sh block in a
// project of its own, each placeholder replaced through one table, and
// checks what each did: the stale-backup mail sent and then not, encrypted
// backups written, verified and pruned by aidb.yaml's policy, an object
// pushed, listed and pulled back byte for byte, serve's metrics, ping and
// notice and its exit 143 on SIGTERM, the major upgrade switching to 17,
// rolling back to 15 and finishing, and the CI job's JUnit report.
func TestAdminGuideRuns(t *testing.T) {
	t.Parallel()
	needTool(t, "make")
	needTool(t, "age-keygen")
	const bucket = "aidb-admin"
	s3srv := newS3Server(t)
	s3srv.bucket(bucket)
	p := newProject(t, "admin")
	dir := p.backupDir()

	// The notify and ping receiver.
	type request struct {
		method, path string
		notice       scheduler.Notification
	}
	var mu sync.Mutex
	var requests []request
	hook := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		rq := request{method: r.Method, path: r.URL.Path}
		if r.URL.Path == "/notify" {
			b, _ := io.ReadAll(r.Body)
			assert.NoError(t, json.Unmarshal(b, &rq.notice), "%s", b)
		}
		mu.Lock()
		defer mu.Unlock()
		requests = append(requests, rq)
	}))
	defer hook.Close()
	received := func(method, path string, match func(scheduler.Notification) bool) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, rq := range requests {
			if rq.method == method && rq.path == path && (match == nil || match(rq.notice)) {
				return true
			}
		}
		return false
	}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))

	// bin/aidb is the binary under test, where the guides call it; mail
	// is a stand-in that records what it was asked to send.
	require.NoError(t, os.Mkdir(filepath.Join(p.dir, "bin"), 0o700))
	require.NoError(t, os.Symlink(aidbBin, filepath.Join(p.dir, "bin", "aidb")))
	fakeBin, mailLog := t.TempDir(), filepath.Join(p.dir, "mail.log")
	require.NoError(t, os.WriteFile(filepath.Join(fakeBin, "mail"), []byte("#!/bin/sh\nprintf '%s\\n' \"$*\" >>'"+mailLog+"'\n"), 0o700))
	p.env = append(p.env, "PATH="+fakeBin+":"+os.Getenv("PATH"),
		// The S3 client reads none of the machine's AWS files or metadata.
		"AWS_CONFIG_FILE="+filepath.Join(p.dir, "no-aws-config"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(p.dir, "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PROFILE=", "AWS_SESSION_TOKEN=", "AWS_ENDPOINT_URL=")

	// The one substitution table: each placeholder of the guides, and the
	// test's value for it.
	pulled := "" // the backup the off-site block pulls, once written
	table := []guideSubst{
		{"make -f Makefile.ai", fixed("make -f " + makefile(t) + " SOURCES=")}, // bin/aidb as it is, never rebuilt
		{"/srv/app", fixed(p.dir)},
		{"ops@example", fixed("ops@localhost")},
		{"SCHEDULE='30 2 * * *'", fixed("SCHEDULE='@every 2s'")},
		{"127.0.0.1:9187", fixed(metricsAddr)},
		{"https://hooks.example/aidb", fixed(hook.URL + "/notify")},
		{"https://hc.example/ping/UUID", fixed(hook.URL + "/ping")},
		{"s3://team-backups/app", fixed("s3://" + bucket + "/app")},
		{"rulesdb-20261130-023000.sql.zst.age", func() string { return pulled }},
		{"AWS_ACCESS_KEY_ID=…", fixed("AWS_ACCESS_KEY_ID=" + s3Access)},
		{"AWS_SECRET_ACCESS_KEY=…", fixed("AWS_SECRET_ACCESS_KEY=" + s3Secret)},
		{"AWS_REGION=eu-central-1", fixed("AWS_REGION=us-east-1")},
		{"https://minio.internal:9000", fixed(s3srv.endpoint())},
		{"path/to/backups", fixed("backups")},
	}
	subst := func(s string) string {
		for _, e := range table {
			s = strings.ReplaceAll(s, e.from, e.to())
		}
		return s
	}

	// The guides' commands, by section. A block this test does not know is
	// a failure: it would be a command nobody runs.
	var keys, offsite, upgrades, serve, cron []string
	var execStart, execStartPost, workDir, retentionYAML string
	for _, b := range guideBlocks(t, "../docs/admin.md") {
		j := strings.Join(b.lines, "\n")
		switch {
		case b.lang == "sh" && strings.Contains(j, "age-keygen"):
			keys = b.lines
		case b.lang == "sh" && strings.Contains(j, "AIDB_REPOSITORY"):
			offsite = b.lines
		case b.lang == "sh" && strings.Contains(j, "ai-db-pitr-enable"):
			// TestAdminGuidePITRRuns runs it.
		case b.lang == "sh" && strings.Contains(j, "ai-db-upgrade"):
			upgrades = b.lines
		case b.lang == "sh" && strings.Contains(j, "ai-db-serve"):
			serve = b.lines
		case b.lang == "cron":
			for _, l := range b.lines {
				if strings.TrimSpace(l) == "" {
					continue
				}
				m := regexp.MustCompile(`^\s*(?:\S+\s+){5}(.+)$`).FindStringSubmatch(l)
				require.NotNil(t, m, "a cron line is five fields and a command: %s", l)
				cron = append(cron, m[1])
			}
		case b.lang == "ini":
			for _, l := range b.lines {
				if k, v, ok := strings.Cut(l, "="); ok {
					switch k {
					case "ExecStart":
						execStart = v
					case "ExecStartPost":
						execStartPost = v
					case "WorkingDirectory":
						workDir = v
					}
				}
			}
		case b.lang == "yaml" && strings.HasPrefix(j, "retention:"):
			retentionYAML = j + "\n"
		default:
			t.Fatalf("docs/admin.md has a %s block this test does not run: %s", b.lang, j)
		}
	}
	for name, got := range map[string]int{"keys": len(keys), "off-site": len(offsite), "upgrade": len(upgrades), "serve": len(serve),
		"cron": len(cron), "ExecStart": len(execStart), "ExecStartPost": len(execStartPost), "WorkingDirectory": len(workDir), "retention": len(retentionYAML)} {
		require.Positive(t, got, "docs/admin.md's %s commands", name)
	}
	require.Len(t, serve, 1)
	require.Len(t, cron, 2)
	var cronBackup, cronCheck string
	for _, c := range cron {
		switch {
		case strings.Contains(c, " backup "):
			cronBackup = c
		case strings.Contains(c, " check "):
			cronCheck = c
		}
	}
	require.NotEmpty(t, cronBackup, "the backup cron line: %q", cron)
	require.NotEmpty(t, cronCheck, "the check cron line: %q", cron)
	ci := guideCommands(t, "../docs/ci-restore-validation.md")
	require.Len(t, ci, 2, "docs/ci-restore-validation.md's commands: %q", ci)
	all := slices.Concat(keys, offsite, upgrades, serve, cron, []string{execStart, execStartPost, workDir}, ci)
	checkSubstitutions(t, table, all)

	// sh runs one of the guide's scripts, placeholders replaced, in dir.
	sh := func(dir, script string) result {
		t.Helper()
		cmd := guideShell(t.Context(), p, dir, subst(script))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else {
			require.NoError(t, err, script)
		}
		t.Logf("%s -> exit %d\n%s", script, code, errOut.String())
		return result{code: code, stdout: out.String(), stderr: errOut.String()}
	}
	mails := func() string {
		b, err := os.ReadFile(mailLog)
		if os.IsNotExist(err) {
			return ""
		}
		require.NoError(t, err)
		return string(b)
	}
	latest := func() string {
		target, err := filepath.EvalSymlinks(filepath.Join(dir, "rulesdb-latest.sql.zst.age"))
		require.NoError(t, err)
		return filepath.Base(target)
	}
	major := func() string { return serverMajor(t, p.status()["rulesdb"].URL) }

	// aidb.yaml: the default with the guide's retention block, and rulesdb
	// its only database (quicker: the guide's commands are the same for
	// both).
	def, err := os.ReadFile("../compose/aidb.yaml")
	require.NoError(t, err)
	cfg := string(def)
	for old, repl := range map[string]string{"retention:\n  safety_keep_within: 168h\n": retentionYAML, "  memorydb:\n    service: memorydb\n": ""} {
		require.Equal(t, 1, strings.Count(cfg, old), "compose/aidb.yaml holds %q once", old)
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "aidb.yaml"), []byte(cfg), 0o600))
	p.rulesOn15("30")

	// Keys: an identity and its recipient line; backups are encrypted from
	// here on.
	r := sh(p.dir, strings.Join(keys, "\n"))
	require.Equal(t, 0, r.code, r.stderr)
	rcpt, err := os.ReadFile(filepath.Join(p.dir, "recipients.txt"))
	require.NoError(t, err)
	require.Regexp(t, `^age1[0-9a-z]{20,}\n$`, string(rcpt), "recipients.txt holds the public key line")
	p.env = append(p.env, "AIDB_AGE_RECIPIENTS_FILE="+filepath.Join(p.dir, "recipients.txt"), "AIDB_AGE_IDENTITY_FILE="+filepath.Join(p.dir, "ops.key"))

	// The morning check, before any backup: it mails.
	r = sh("/", cronCheck)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, mails(), "-s aidb: stale backups ops@localhost", "check exited non-zero with no backup, so the cron line mailed")
	mailed := mails()

	// aidb serve on a schedule of seconds: a run backs up rulesdb (metrics,
	// a ping); rulesdb down, a run fails (a notice); SIGTERM ends it with
	// 143 (make reports its recipe's exit) and nothing left.
	started := time.Now().Unix()
	cmd := guideShell(t.Context(), p, p.dir, subst(serve[0]))
	var serveOut safeBuffer
	cmd.Stdout, cmd.Stderr = &serveOut, &serveOut
	ownGroup(cmd)
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		killGroup(cmd) // its own process group, should it still run
		<-exited
	})
	lastSuccess := regexp.MustCompile(`(?m)^aidb_backup_last_success_timestamp_seconds\{database="rulesdb"\} (\S+)$`)
	waitFor(t, 5*time.Minute, func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false // not listening yet
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		m := lastSuccess.FindSubmatch(b)
		if m == nil {
			return false
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		require.NoError(t, err)
		return v >= float64(started)
	})
	waitFor(t, time.Minute, func() bool { return received(http.MethodGet, "/ping", nil) })
	d := p.aidb("down", "rulesdb")
	require.Equal(t, 0, d.code, d.stderr)
	waitFor(t, 5*time.Minute, func() bool {
		return received(http.MethodPost, "/notify", func(n scheduler.Notification) bool {
			return n.Database == "rulesdb" && n.Step == "backup" && n.Error != ""
		})
	})
	var pid int
	waitFor(t, 10*time.Second, func() bool { pid = descendant(t, cmd.Process.Pid, aidbBin); return pid != 0 })
	require.NoError(t, terminate(pid))
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop within 60 s of SIGTERM:\n%s", serveOut.String())
	}
	assert.Regexp(t, `ai-db-serve\] Error 143`, serveOut.String(), "serve exited 143")
	assert.Equal(t, 2, cmd.ProcessState.ExitCode(), "make fails when its recipe does")
	assert.Empty(t, partials(t, dir), "no partial file or pipe left")
	for _, l := range p.labelled(t.Context()) {
		if strings.HasPrefix(l, "container ") {
			assert.Equal(t, "container /"+p.name+"-rulesdb", l, "no helper or throwaway container left")
		}
	}
	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)

	// The systemd unit's lines, in its WorkingDirectory, without a shell
	// (as systemd runs them): an encrypted, compressed, verified backup,
	// and a prune by aidb.yaml's policy.
	wd := subst(workDir)
	require.Equal(t, p.dir, wd)
	for _, line := range []string{execStart, execStartPost} {
		argv := strings.Fields(subst(line))
		c := p.command(t.Context())
		c.Path, c.Args, c.Err, c.Dir = argv[0], argv, nil, wd
		out, err := c.CombinedOutput()
		require.NoError(t, err, "%s:\n%s", line, out)
		t.Logf("%s\n%s", line, out)
	}
	pulled = latest()
	nameRE := regexp.MustCompile(`^` + regexp.MustCompile(`\d`).ReplaceAllString(regexp.QuoteMeta("rulesdb-20261130-023000.sql.zst.age"), `\d`) + `$`)
	require.Regexp(t, nameRE, pulled, "the guide's file name is the shape of aidb's")

	// The retention block is accepted, and its rules are the plan's.
	r = p.aidb("prune")
	require.Equal(t, 0, r.code, r.stderr)
	rules := regexp.MustCompile(`(?m)^\s+keep_(\w+): (\d+)$`).FindAllStringSubmatch(retentionYAML, -1)
	require.NotEmpty(t, rules)
	for _, m := range rules {
		assert.Contains(t, r.stdout+r.stderr, "keep-"+m[1]+" "+m[2], "prune applies aidb.yaml's retention")
	}

	// Off-site: push and list; the local copy removed, pull brings it back
	// byte for byte. The exports stay for what follows, as in a crontab.
	var exports []string
	for _, c := range offsite {
		if strings.HasPrefix(c, "export ") {
			exports = append(exports, c)
		}
	}
	require.NotEmpty(t, exports)
	local := filepath.Join(dir, pulled)
	pushed := fileSum(t, local)
	ran := map[string]bool{}
	for _, c := range offsite {
		if strings.HasPrefix(c, "export ") {
			continue
		}
		verb := regexp.MustCompile(`^bin/aidb (\w+)`).FindStringSubmatch(c)
		require.NotNil(t, verb, "an off-site command this test knows: %s", c)
		if verb[1] == "pull" {
			require.NoError(t, os.Remove(local))
			require.NoError(t, os.Remove(local+manifest.Suffix))
		}
		r = sh(p.dir, strings.Join(append(slices.Clone(exports), c), "\n"))
		require.Equal(t, 0, r.code, r.stderr)
		switch verb[1] {
		case "push":
			assert.Subset(t, s3srv.keys(bucket), []string{"app/" + pulled, "app/" + pulled + manifest.Suffix})
		case "list": // both locations
			assert.Contains(t, r.stdout+r.stderr, "in "+dir+" or s3://"+bucket+"/app:", "the folder named once")
			assert.Contains(t, r.stdout+r.stderr, "\n"+pulled+" ", "the folder's file by name")
			assert.Contains(t, r.stdout+r.stderr, "s3://"+bucket+"/app/"+pulled)
		case "pull":
			assert.Equal(t, pushed, fileSum(t, local), "the pulled file is the pushed one")
		default:
			t.Fatalf("an off-site command this test does not check: %s", c)
		}
		ran[verb[1]] = true
	}
	assert.Len(t, ran, 3, "push, list and pull ran: %v", ran)
	r = sh(p.dir, strings.Join(exports, "\n")+"\nenv")
	require.Equal(t, 0, r.code, r.stderr)
	exported := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?:^export|\s)([A-Za-z_][A-Za-z0-9_]*)=`).FindAllStringSubmatch(strings.Join(exports, "\n"), -1) {
		exported[m[1]] = true
	}
	for _, kv := range strings.Split(r.stdout, "\n") {
		if k, _, ok := strings.Cut(kv, "="); ok && exported[k] {
			p.env = append(p.env, kv)
		}
	}
	assert.Len(t, exported, 5, "the variables the off-site block exports: %v", exported)

	// The nightly cron line, from / (cron's folder), with the repository:
	// a new backup, pushed; the morning check then sends no mail.
	r = sh("/", cronBackup)
	require.Equal(t, 0, r.code, r.stderr)
	nightly := latest()
	assert.NotEqual(t, pulled, nightly, "a new backup")
	assert.Contains(t, s3srv.keys(bucket), "app/"+nightly, "pushed")
	r = sh("/", cronCheck)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, mailed, mails(), "fresh verified backups: no mail")

	// Major upgrade: rehearse on 17, upgrade, roll back to 15, upgrade
	// again and finish.
	var verify, up, rollback, finish string
	for _, c := range upgrades {
		switch {
		case strings.Contains(c, "ai-db-verify "):
			verify = c
		case strings.Contains(c, "ROLLBACK=1"):
			rollback = c
		case strings.Contains(c, "FINISH=1"):
			finish = c
		case strings.Contains(c, "ai-db-upgrade "):
			up = c
		default:
			t.Fatalf("an upgrade command this test does not run: %s", c)
		}
	}
	require.Equal(t, []string{verify, up, rollback, finish}, upgrades, "the guide rehearses, upgrades, then rolls back or finishes")
	assert.True(t, strings.HasPrefix(readManifest(t, filepath.Join(dir, nightly)).ServerVersion, "15."))
	r = sh(p.dir, verify)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "postgres:17")
	r = sh(p.dir, up)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "17", major())
	r = sh(p.dir, rollback)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "15", major())
	r = sh(p.dir, up)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "17", major())
	old := []string{"container /" + p.name + "-rulesdb-aidb-pre-upgrade", "volume " + p.name + "_rulesdb-data"}
	assert.Subset(t, p.labelled(t.Context()), old)
	r = sh(p.dir, finish)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "17", major())
	for _, l := range old {
		assert.NotContains(t, p.labelled(t.Context()), l, "finish removed it")
	}

	// The CI job: bin/aidb is up to date (not rebuilt), and every backup of
	// the folder verifies, in a JUnit report.
	r = sh(p.dir, ci[0])
	require.Equal(t, 0, r.code, r.stderr)
	fi, err := os.Lstat(filepath.Join(p.dir, "bin", "aidb"))
	require.NoError(t, err)
	assert.Equal(t, os.ModeSymlink, fi.Mode().Type(), "make found bin/aidb up to date")
	r = sh(p.dir, ci[1])
	require.Equal(t, 0, r.code, r.stderr)
	report, err := os.ReadFile(filepath.Join(p.dir, "verify-report.xml"))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, strings.Count(string(report), "<testcase"), 2, "%s", report)
	assert.NotContains(t, string(report), "<failure", "%s", report)
	assert.NotContains(t, string(report), "<error", "%s", report)
}

// fileSum is a file's sha256, hex.
func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestAdminGuidePITRRuns runs docs/admin.md's point-in-time recovery
// block with a repository set: PITR on, the stream pushed (its objects in
// the bucket), a restore to the guide's TIME (here a moment between two
// rows) that brings back the first row and not the second, FINISH, PITR
// on again, and a prune to 7 days.
func TestAdminGuidePITRRuns(t *testing.T) {
	t.Parallel()
	needTool(t, "make")
	s3srv := newS3Server(t)
	s3srv.bucket("aidb-adminpitr")
	p := newProject(t, "adminpitr")
	p.useRepository(s3srv.endpoint(), "s3://aidb-adminpitr/app")
	dir := p.backupDir()
	var block []string
	for _, b := range guideBlocks(t, "../docs/admin.md") {
		if b.lang == "sh" && strings.Contains(strings.Join(b.lines, "\n"), "ai-db-pitr-enable") {
			block = b.lines
		}
	}
	require.Len(t, block, 6, "docs/admin.md's PITR block")
	var target time.Time
	table := []guideSubst{
		{"make -f Makefile.ai", fixed("make -f " + makefile(t) + " SOURCES=")},
		{"2026-12-05 15:01:30", func() string { return target.Local().Format("2006-01-02 15:04:05.999999") }},
	}
	checkSubstitutions(t, table, block)
	run := func(line string) {
		t.Helper()
		for _, e := range table {
			line = strings.ReplaceAll(line, e.from, e.to())
		}
		cmd := guideShell(t.Context(), p, p.dir, line)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s:\n%s", line, out)
		t.Logf("%s\n%s", line, out)
	}
	// bin/aidb is the binary under test, where the make targets call it.
	require.NoError(t, os.Mkdir(filepath.Join(p.dir, "bin"), 0o700))
	require.NoError(t, os.Symlink(aidbBin, filepath.Join(p.dir, "bin", "aidb")))
	r := p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)

	run(block[0])
	conn := connect(t, p.status()["rulesdb"].URL)
	ctx := t.Context()
	_, err := conn.Exec(ctx, "CREATE TABLE marks (name text PRIMARY KEY)")
	require.NoError(t, err)
	target = markBeforeTarget(t, conn)
	_, err = conn.Exec(ctx, "INSERT INTO marks VALUES ('B')")
	require.NoError(t, err)
	switchedSegment(t, conn, filepath.Join(dir, "wal", "rulesdb"))
	_ = conn.Close(ctx)

	run(block[1])
	keys := strings.Join(s3srv.keys("aidb-adminpitr"), "\n")
	assert.Contains(t, keys, "app/wal/rulesdb/")
	assert.Contains(t, keys, "/"+pitr.RecordName)
	run(block[2])
	assert.Equal(t, []string{"A"}, marks(t, p.status()["rulesdb"].URL), "the guide's restore to a time")
	run(block[3])
	run(block[4])
	run(block[5])
	st := p.aidb("pitr", "status", "--json")
	require.Equal(t, 0, st.code, st.stderr)
	assert.Contains(t, st.stdout, `"running": true`, "PITR is on again after the guide's round")
}
