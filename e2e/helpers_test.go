package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/orchestrator"
)

// project is one test's aidb project: its own name, ports and folder.
type project struct {
	t         *testing.T
	name      string
	rulesPort int
	memPort   int
	dir       string
	env       []string
}

// newProject returns a fresh project for t and registers, before anything is
// created, a cleanup that nukes it and checks that nothing labelled with it
// is left.
func newProject(t *testing.T, suffix string) *project {
	t.Helper()
	p := &project{
		t:         t,
		name:      runPrefix + "-" + suffix,
		rulesPort: freePort(t),
		memPort:   freePort(t),
		dir:       t.TempDir(),
	}
	t.Cleanup(func() {
		ctx := context.WithoutCancel(t.Context())
		// No safety backup: the test's data is not kept, and nuke's own
		// backups are tested where they are the point (nukekeeps_test.go).
		if r := p.run(ctx, "nuke", "--yes", "--all-volumes", "--no-backup"); r.code != 0 {
			t.Errorf("cleanup: aidb nuke: exit %d: %s", r.code, r.stderr)
		}
		require.Empty(t, p.labelled(ctx), "cleanup left resources of project %s", p.name)
	})
	return p
}

// result is one aidb run.
type result struct {
	code           int
	stdout, stderr string
}

// aidb runs the binary for this project and returns its exit code and output.
func (p *project) aidb(args ...string) result {
	return p.run(p.t.Context(), args...)
}

func (p *project) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, aidbBin, args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(),
		"AIDB_PROJECT="+p.name,
		"RULESDB_PORT="+strconv.Itoa(p.rulesPort),
		"MEMORYDB_PORT="+strconv.Itoa(p.memPort),
		"AIDB_COMPOSE_FILE=",
		"AIDB_CONFIG=",
	)
	cmd.Env = append(cmd.Env, p.env...)
	return cmd
}

// background starts aidb with args for this project (serve, say), its
// stderr gathered, and registers a cleanup that kills it; exited closes
// when it has ended.
func (p *project) background(ctx context.Context, args ...string) (cmd *exec.Cmd, stderr *safeBuffer, exited <-chan struct{}) {
	p.t.Helper()
	cmd = p.command(ctx, args...)
	stderr = &safeBuffer{}
	cmd.Stderr = stderr
	require.NoError(p.t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	p.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, stderr, done
}

func (p *project) run(ctx context.Context, args ...string) result {
	cmd := p.command(ctx, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		p.t.Fatalf("run aidb %v: %v", args, err)
	}
	p.t.Logf("aidb %s -> exit %d (%.1fs)\n%s", strings.Join(args, " "), code, took.Seconds(), errOut.String())
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

// writeCompose writes a compose file into the project folder and points the
// project at it.
func (p *project) writeCompose(content string) {
	p.t.Helper()
	f := filepath.Join(p.dir, "compose.yaml")
	require.NoError(p.t, os.WriteFile(f, []byte(content), 0o600))
	p.env = append(p.env, "AIDB_COMPOSE_FILE="+f)
}

// status runs aidb status --json.
func (p *project) status() map[string]orchestrator.Status {
	p.t.Helper()
	r := p.aidb("status", "--json")
	require.Equal(p.t, 0, r.code, r.stderr)
	var doc struct {
		Databases []orchestrator.Status `json:"databases"`
	}
	require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	m := map[string]orchestrator.Status{}
	for _, s := range doc.Databases {
		m[s.Name] = s
	}
	return m
}

// labelled lists the engine resources labelled with this project.
func (p *project) labelled(ctx context.Context) []string {
	p.t.Helper()
	f := make(client.Filters).Add("label", orchestrator.LabelProject+"="+p.name)
	var out []string
	cs, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	require.NoError(p.t, err)
	for _, c := range cs.Items {
		out = append(out, "container "+strings.Join(c.Names, ","))
	}
	vs, err := docker.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	require.NoError(p.t, err)
	for _, v := range vs.Items {
		out = append(out, "volume "+v.Name)
	}
	ns, err := docker.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	require.NoError(p.t, err)
	for _, n := range ns.Items {
		out = append(out, "network "+n.Name)
	}
	return out
}

// connect opens a connection through a status URL.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.WithoutCancel(t.Context())) })
	return conn
}

// portsGiven are the ports freePort handed out in this run.
var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// freePort is a loopback port nothing listens on, never the same twice in
// a run. It is drawn from 20000-31999, below the kernels' ephemeral ranges
// (Linux 32768-60999, macOS 49152-65535): a port from ":0" lies in that
// range, where an outbound connection or another ":0" listener can take it
// between this check and the engine's bind (a test once failed on "host
// port 45997 is already taken").
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		_ = l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		select {
		case <-tick.C:
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
}

// safeBuffer is a bytes.Buffer safe for a writing process and a reading test.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// engineProxy forwards TCP connections to the local engine's socket, until
// cut closes every connection and stops listening.
type engineProxy struct {
	l     net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newEngineProxy(t *testing.T) *engineProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &engineProxy{l: l}
	t.Cleanup(p.cut)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return p
}

func (p *engineProxy) addr() string { return p.l.Addr().String() }

func (p *engineProxy) cut() {
	_ = p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
}
