package pgtools

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/orchestrator"
)

// Psql runs the database image's own psql against database dbname on the
// database's server, feeding it script (plain SQL) on its input, with
// ON_ERROR_STOP. Like Dump, the helper transport passes the script through
// a named pipe in workDir and the stream transport through docker exec's
// stdin; the password is never an argument. What psql printed to stderr is
// in the ToolError when it fails.
//
// If reading script fails, psql's input ends early: a script that opens a
// transaction and commits only at its very end is then rolled back, never
// half applied (callers write their scripts that way).
func (r *Runner) Psql(ctx context.Context, db compose.Database, dbname string, t Transport, workDir string, script io.Reader) error {
	c, err := r.dbs.Running(ctx, db)
	if err != nil {
		return err
	}
	err = r.psqlIn(ctx, c, db, dbname, t, workDir, script)
	return r.explainStopped(ctx, c.ID, "database container "+containerName(c), db, err)
}

// StoppedError says the container of the server psql was loading into
// stopped while it ran: the plain cause behind psql's "server closed the
// connection unexpectedly".
type StoppedError struct {
	// Container names the container ("database container rulesdb-1").
	Container string
	State     orchestrator.ContainerState
	// Err is what psql reported.
	Err error
	// By names who reported Err: "" for psql, else (a parallel load's
	// sessions) what to call them.
	By string
}

func (e *StoppedError) Error() string {
	how := fmt.Sprintf("%s, exit code %d", e.State.Status, e.State.ExitCode)
	switch {
	case e.State.OOMKill:
		how += ": killed for lack of memory"
	case e.State.ExitCode == 137:
		how += ": killed (docker kill, or the kernel for lack of memory)"
	}
	by := e.By
	if by == "" {
		by = "psql"
	}
	return fmt.Sprintf("the %s stopped while the file was loading (%s); %s said: %v", e.Container, how, by, e.Err)
}

// WatchLoad returns what turns the failure of a load into db's server by
// aidb's own sessions (a parallel restore) into a StoppedError when the
// database's container stopped under it (see explainStopped); the
// container must be running now.
func (r *Runner) WatchLoad(ctx context.Context, db compose.Database) (func(error) error, error) {
	c, err := r.dbs.Running(ctx, db)
	if err != nil {
		return nil, err
	}
	return func(err error) error {
		return asLoad(r.explainStopped(ctx, c.ID, "database container "+containerName(c), db, err))
	}, nil
}

// asLoad marks a StoppedError as reported by a parallel load's sessions.
func asLoad(err error) error {
	var st *StoppedError
	if errors.As(err, &st) {
		st.By = "the loading session"
	}
	return err
}

func (e *StoppedError) Unwrap() error { return e.Err }

// explainStopped turns err into a StoppedError when the container id is
// no longer running. A server killed under psql can be gone a moment before
// the engine records its container as stopped, so unless the server still
// answers as db, this waits up to 5 s for the engine to catch
// up. Other errors, Ctrl-C and nil pass unchanged. It runs without
// cancellation: the container's state is the news.
func (r *Runner) explainStopped(ctx context.Context, id, what string, db compose.Database, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	st, ierr := r.state(ictx, id)
	if ierr == nil && st.Running {
		pctx, pcancel := context.WithTimeout(ictx, 2*time.Second)
		alive := r.dbs.Ping(pctx, db) == nil
		pcancel()
		if alive {
			return err
		}
		wctx, wcancel := context.WithTimeout(ictx, 5*time.Second)
		w := r.docker.ContainerWait(wctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
		select {
		case <-w.Result:
		case <-w.Error: //nolint:errcheck // only its arrival counts: the state, read next, says how it ended
		}
		wcancel()
		st, ierr = r.state(ictx, id)
	}
	switch {
	case cerrdefs.IsNotFound(ierr):
		st = orchestrator.ContainerState{Status: "removed"}
	case ierr != nil, st.Running:
		return err
	}
	return &StoppedError{Container: what, State: st, Err: err}
}

// state is container id's state now.
func (r *Runner) state(ctx context.Context, id string) (orchestrator.ContainerState, error) {
	res, err := r.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return orchestrator.ContainerState{}, err
	}
	st := res.Container.State
	if st == nil {
		return orchestrator.ContainerState{}, fmt.Errorf("container %s has no state", id)
	}
	return orchestrator.ContainerState{Running: st.Running, Status: string(st.Status), ExitCode: st.ExitCode, OOMKill: st.OOMKilled}, nil
}

// psqlIn is Psql against container c, whose server has db's credentials.
func (r *Runner) psqlIn(ctx context.Context, c container.Summary, db compose.Database, dbname string, t Transport, workDir string, script io.Reader) error {
	args := []string{"--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1", "--username=" + db.User, "--dbname=" + dbname}
	h, err := r.startHelper(ctx, c, db, "psql", orchestrator.RoleLoad, workDir, t)
	if err != nil {
		return err
	}
	if h != nil {
		return r.psqlViaHelper(ctx, h, db, args, script)
	}
	return r.psqlViaExec(ctx, c, args, script)
}

func (r *Runner) psqlViaExec(ctx context.Context, c container.Summary, args []string, script io.Reader) error {
	cmd := append([]string{"psql"}, args...)
	ex, err := r.docker.ExecCreate(ctx, c.ID, client.ExecCreateOptions{AttachStdin: true, AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return fmt.Errorf("start psql in %s: %w", containerName(c), err)
	}
	att, err := r.docker.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("attach to psql in %s: %w", containerName(c), err)
	}
	stop := context.AfterFunc(ctx, func() { att.Close() })
	defer stop()
	defer att.Close()

	var stderr bytes.Buffer
	outDone := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(io.Discard, &limitedWriter{w: &stderr, n: 64 << 10}, att.Reader)
		outDone <- err
	}()
	_, inErr := io.Copy(att.Conn, script)
	if inErr == nil {
		inErr = att.CloseWrite()
	} else {
		// Drop the connection: psql's input ends without the script's
		// COMMIT and it rolls back.
		att.Close()
	}
	outErr := <-outDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	res, err := r.docker.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect psql in %s: %w", containerName(c), err)
	}
	if inErr != nil {
		return fmt.Errorf("send the script to psql: %w", inErr)
	}
	if res.ExitCode != 0 {
		return &ToolError{Tool: "psql", ExitCode: res.ExitCode, Stderr: stderr.String()}
	}
	if outErr != nil {
		return fmt.Errorf("read psql's output: %w", outErr)
	}
	return nil
}

// psqlViaHelper runs psql in the started helper container h (see helper)
// reading the script from a pipe that this process writes; h is closed
// when it returns.
func (r *Runner) psqlViaHelper(ctx context.Context, h *helper, db compose.Database, args []string, script io.Reader) (retErr error) {
	defer func() { retErr = errors.Join(retErr, h.close(ctx)) }()
	// Made before the script names it: psql opens it once its shell has
	// read the script (handOver, below).
	fifo, err := h.pipe("in")
	if err != nil {
		return err
	}
	wait := h.wait
	kill := func() error { return h.kill(ctx) }
	cmd := append([]string{"exec", "psql"}, quoteAll(args)...)
	cmd = append(cmd, "--host=127.0.0.1", "--port=5432", shellQuote("--file="+h.inHelper(fifo)))

	// The feeder first hands the helper's shell its script (credentials,
	// then psql's command line), then feeds psql. It opens psql's pipe only
	// once psql has opened the read end (opening a pipe for writing waits
	// for a reader), so nothing written can be lost to a pipe nobody holds
	// open; psql sees end of file when the feeder closes it.
	// fed carries only errors reading the script (the file changed or is
	// unreadable); a write that fails because psql stopped is psql's error,
	// and a helper that never read its script reports its own exit.
	fed := make(chan error, 1)
	gone := make(chan struct{})
	go func() {
		if err := h.handOver(ctx, strings.Join(cmd, " ")+"\n", gone); err != nil {
			fed <- nil
			return
		}
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			fed <- err
			return
		}
		src := &readErr{r: script}
		_, _ = io.Copy(w, src)
		if src.err != nil {
			// Stop psql before its input ends, so nothing commits.
			_ = kill()
		}
		_ = w.Close()
		fed <- src.err
	}()
	// release lets a feeder finish when psql is gone: gone ends a wait to
	// hand over the script; opening psql's pipe read-write (which never
	// waits) ends the feeder's wait in open, and what is written is
	// discarded; the returned function closes it once the feeder is done.
	release := func() func() {
		close(gone)
		r, err := os.OpenFile(fifo, os.O_RDWR, 0)
		if err != nil {
			return func() {}
		}
		go func() { _, _ = io.Copy(io.Discard, r) }()
		return func() { _ = r.Close() }
	}

	var exit container.WaitResponse
	var feedErr error
	select {
	case feedErr = <-fed:
		select {
		case exit = <-wait.Result:
		case err := <-wait.Error:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("wait for psql helper of %s: %w", db.Name, err)
		}
	case exit = <-wait.Result:
		// psql ended before the whole script was sent: a statement failed,
		// and psql's own error, below, is the one to report; or the feeder
		// could not read the script and killed psql, and its error is.
		stop := release()
		feedErr = <-fed
		stop()
	case err := <-wait.Error:
		_ = kill()
		stop := release()
		<-fed //nolint:errcheck // the feeder's error follows from the kill: the wait's is the one to report
		stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("wait for psql helper of %s: %w", db.Name, err)
	}
	if feedErr != nil {
		return fmt.Errorf("send the script to psql: %w", feedErr)
	}
	if exit.StatusCode != 0 {
		return h.failure(ctx, exit.StatusCode)
	}
	return nil
}

// readErr remembers the error its reader returned, other than io.EOF.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}
