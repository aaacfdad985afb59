package pgtools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"

	"github.com/aidb/aidb/compose"
)

// A ToolRun is one client tool (pg_dump or psql) of a helper that runs
// several at once, each writing its standard output into a pipe of its own.
type ToolRun struct {
	// Name says what the run is in errors ("psql (public.memories, part 2
	// of 2)").
	Name string
	Tool string
	// Args come before the connection options, which are added.
	Args []string
	// Env is set for this run only (KEY=value).
	Env []string
	// Lane orders the runs: runs of one lane run one after another, in the
	// order given; lanes run at the same time.
	Lane int
}

// Streams is a helper running ToolRuns, whose outputs this process reads.
type Streams struct {
	h      *helper
	db     compose.Database
	exited chan struct{}
	exit   container.WaitResponse
	err    error
	// watching says a goroutine waits for the helper's exit.
	watching bool

	mu sync.Mutex
	// pipes are the runs' pipes; done says the helper has exited (no run
	// can open a pipe made from now on).
	pipes []*pipe
	done  bool
}

// pipe is the read end of one run's pipe, opened as soon as the pipe
// exists: the open returns once the run's shell has opened the write end.
type pipe struct {
	path   string
	opened chan struct{}
	f      *os.File
	err    error
}

func openPipe(path string) *pipe {
	p := &pipe{path: path, opened: make(chan struct{})}
	go func() {
		p.f, p.err = os.OpenFile(path, os.O_RDONLY, 0)
		close(p.opened)
	}()
	return p
}

// release lets a pending open return once no run can open the pipe any
// more (the helper has exited): with a writer of its own held until the
// open is done, the reader then sees end of file.
func (p *pipe) release() {
	u, err := os.OpenFile(p.path, os.O_RDWR, 0)
	<-p.opened
	if err == nil {
		_ = u.Close()
	}
}

// StartStreams starts a helper container of the database's image (see
// helper) that waits for its runs (Run): the container starts while the
// caller decides what to run. Each run's output is read with Stream; Wait
// says whether every run succeeded, and Close removes the helper and its
// pipes. A stream's end of file alone does not prove its run succeeded:
// Wait does. It returns nil Streams, and starts nothing, where t's path is
// the exec stream (forced, or auto where the helper path does not work:
// see paths); the caller then uses Dump. A forced helper that does not
// work is a *PathError.
func (r *Runner) StartStreams(ctx context.Context, db compose.Database, role, workDir string, t Transport) (_ *Streams, retErr error) {
	if r.paths.settled(t) {
		return nil, nil
	}
	c, err := r.dbs.Running(ctx, db)
	if err != nil {
		return nil, err
	}
	// The script pipe: sh reads it once Run has written it.
	h, err := r.startHelper(ctx, c, db, "pg_dump", role, workDir, t)
	if err != nil || h == nil {
		return nil, err
	}
	s := &Streams{h: h, db: db, exited: make(chan struct{})}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, s.Close(ctx))
		}
	}()
	s.watching = true
	go func() {
		select {
		case s.exit = <-h.wait.Result:
		case s.err = <-h.wait.Error:
		}
		s.mu.Lock()
		s.done = true
		pipes := s.pipes
		s.mu.Unlock()
		for _, p := range pipes {
			p.release()
		}
		close(s.exited)
	}()
	return s, nil
}

// Run gives the helper its runs, once.
func (s *Streams) Run(ctx context.Context, runs []ToolRun) error {
	if len(runs) > 0 {
		s.h.tool = runs[0].Tool
	}
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return s.ended(ctx)
	}
	var paths []string
	for i := range runs {
		path, err := s.h.pipe(strconv.Itoa(i))
		if err != nil {
			s.mu.Unlock()
			return err
		}
		paths = append(paths, path)
		s.pipes = append(s.pipes, openPipe(path))
	}
	s.mu.Unlock()
	conn := []string{"--host=127.0.0.1", "--port=5432", "--username=" + s.db.User, "--dbname=" + s.db.DBName}
	return s.handOver(ctx, streamsScript(runs, conn, paths, s.h.inHelper))
}

// handOver writes the script into the helper's script pipe.
func (s *Streams) handOver(ctx context.Context, script string) error {
	err := s.h.handOver(ctx, script, s.exited)
	if errors.Is(err, errHelperGone) {
		return s.ended(ctx)
	}
	return err
}

// Dir is the work folder the helper's pipes are in.
func (s *Streams) Dir() string { return filepath.Dir(s.h.base) }

// ended is the error for a helper that exited before it was given its
// runs.
func (s *Streams) ended(ctx context.Context) error {
	if err := s.Wait(ctx); err != nil {
		return err
	}
	return fmt.Errorf("the %s helper for %s exited before it was given its work", s.h.tool, s.db.Name)
}

// streamsScript is the shell script that runs the runs, lanes in the
// background, and exits non-zero if any failed, having said which.
func streamsScript(runs []ToolRun, conn, fifos []string, inHelper func(string) string) string {
	lanes := map[int][]string{}
	var order []int
	for i, r := range runs {
		cmd := append([]string{"run", shellQuote(r.Name), shellQuote(inHelper(fifos[i])), "env"}, quoteAll(r.Env)...)
		cmd = append(cmd, "$SB")
		cmd = append(cmd, shellQuote(r.Tool))
		cmd = append(cmd, quoteAll(r.Args)...)
		cmd = append(cmd, quoteAll(conn)...)
		if _, ok := lanes[r.Lane]; !ok {
			order = append(order, r.Lane)
		}
		lanes[r.Lane] = append(lanes[r.Lane], strings.Join(cmd, " "))
	}
	var b strings.Builder
	// Output written in 1 MiB pieces rather than stdio's 4 KiB wakes this
	// process a quarter as often (a third less time for a dump here).
	b.WriteString(withStdbuf + "\n")
	b.WriteString(`run() { what=$1; out=$2; shift 2; "$@" >"$out" || { rc=$?; echo "aidb: $what exited with code $rc" >&2; return $rc; }; }` + "\n")
	for i, l := range order {
		fmt.Fprintf(&b, "( %s ) & lane%d=$!\n", strings.Join(lanes[l], " && "), i)
	}
	b.WriteString("rc=0\n")
	for i := range order {
		fmt.Fprintf(&b, "wait $lane%d || rc=1\n", i)
	}
	b.WriteString("exit $rc\n")
	return b.String()
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return out
}

// withStdbuf sets SB to the command that runs a tool with its output in 1
// MiB pieces, where the image has stdbuf (Debian's coreutils), else to
// nothing.
const withStdbuf = `SB=; command -v stdbuf >/dev/null 2>&1 && SB='stdbuf -o 1M';`

// shellQuote quotes s for sh: inside single quotes nothing is special but
// the single quote itself.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Stream is run i's output. It waits until the run has started writing
// (or the helper has ended); the caller closes it.
func (s *Streams) Stream(ctx context.Context, i int) (io.ReadCloser, error) {
	p := s.pipes[i]
	select {
	case <-p.opened:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.err != nil {
		return nil, fmt.Errorf("open pipe %s: %w", p.path, p.err)
	}
	growPipe(p.f)
	return p.f, nil
}

// Wait waits for the helper to exit: nil if every run succeeded, else what
// the runs said.
func (s *Streams) Wait(ctx context.Context) error {
	select {
	case <-s.exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("wait for the %s helper: %w", s.h.tool, s.err)
	}
	if s.exit.StatusCode != 0 {
		logs, failed := s.said(ctx)
		if failed != nil {
			return failed
		}
		return &ToolError{Tool: s.h.tool, ExitCode: int(s.exit.StatusCode), Stderr: logs}
	}
	return nil
}

// said is what the runs wrote (the helper's last 50 lines of output) and
// the first run that failed, if one did.
func (s *Streams) said(ctx context.Context) (string, *ToolError) {
	logs, _ := s.h.r.logs(context.WithoutCancel(ctx), s.h.id, 50)
	return logs, runFailure(logs)
}

// runFailed is the line the script writes for a run that failed.
var runFailed = regexp.MustCompile(`(?m)^aidb: (.+) exited with code (\d+)$`)

// runFailure names the first run that failed, from the helper's output:
// its name, exit code and what the runs said. Nil when no run failed.
func runFailure(logs string) *ToolError {
	m := runFailed.FindStringSubmatch(logs)
	if m == nil {
		return nil
	}
	code, _ := strconv.Atoi(m[2])
	said := strings.TrimSpace(runFailed.ReplaceAllString(logs, ""))
	return &ToolError{Tool: m[1], ExitCode: code, Stderr: said}
}

// Abort stops the runs, when the reader of their outputs has failed: it
// returns what a run that had already failed said (its failure is the
// likelier cause), else nil.
func (s *Streams) Abort(ctx context.Context) error {
	// Read before the kill, which removes the container and its output.
	_, failed := s.said(ctx)
	_ = s.h.kill(ctx)
	if s.watching {
		<-s.exited
	}
	if failed != nil {
		return failed
	}
	return nil
}

// Close kills the helper if it still runs and removes it, its pipes and
// the read ends of the pipes.
func (s *Streams) Close(ctx context.Context) error {
	err := s.h.kill(ctx)
	if s.watching {
		<-s.exited
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pipes {
		<-p.opened
		if p.f != nil {
			_ = p.f.Close()
		}
	}
	return errors.Join(err, s.h.close(ctx))
}
