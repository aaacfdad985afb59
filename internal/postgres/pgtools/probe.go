package pgtools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/aidb/aidb/compose"
)

// probeDeadline is how long, once its container has started, a probing
// helper's token may take to come through its pipe. Starting the container
// is not in it (that is the engine's own time); sh and printf take
// milliseconds, even on a busy machine. Where the token never comes (an
// engine in a VM that shares the folder's files but not its pipes) the
// run waits this long once.
const probeDeadline = 5 * time.Second

// probeNoPipe is a probing helper's exit code when its token pipe is not a
// pipe where it looks (the engine mounted another folder).
const probeNoPipe = 97

// probeScript is a probing helper's entrypoint (sh -c, with $1 the token
// pipe, $2 the token, $3 the script pipe): it writes the token, then runs
// the script as an unprobed helper does. It writes only into a pipe that
// is there: where the engine mounted another folder, it creates no file.
const probeScript = `[ -p "$1" ] || { echo "aidb: no pipe at $1" >&2; exit 97; }; printf '%s\n' "$2" >"$1" || exit 98; exec sh "$3"`

// tokenPipe is the pipe a probing helper writes its token into, held open
// for reading and writing by this process: the helper's open never waits
// for a reader, and this process can wake its own read (awaitToken).
type tokenPipe struct {
	path  string
	token string
	f     *os.File
}

// tokenPipe makes the helper's token pipe; close removes it (close of the
// helper too).
func (h *helper) tokenPipe() (*tokenPipe, error) {
	path, err := h.pipe("probe")
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open pipe %s: %w", path, err)
	}
	return &tokenPipe{path: path, token: randomTag() + randomTag(), f: f}, nil
}

// close closes and removes the pipe: a token read or not, nothing of it
// stays.
func (t *tokenPipe) close() {
	_ = t.f.Close()
	_ = os.Remove(t.path)
}

// awaitToken waits, at most deadline, for the helper's token to come
// through tok: nil when it came; else why not, as one sentence: the
// helper found no pipe (the engine sees another folder), it exited, or the
// pipe carried nothing in time. ctx's error when ctx ended first. The
// caller removes the helper.
func (h *helper) awaitToken(ctx context.Context, tok *tokenPipe, deadline time.Duration) error {
	dir := filepath.Dir(h.base)
	got := make(chan string, 1)
	go func() { got <- readLine(tok.f) }()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	var err error
	select {
	case line := <-got:
		if line == tok.token {
			return nil
		}
		return fmt.Errorf("a pipe in %s carried something else than a helper container's token", dir)
	case exit := <-h.wait.Result:
		h.exited = true
		err = h.noToken(ctx, dir, exit.StatusCode)
	case werr := <-h.wait.Error:
		h.exited = true
		err = fmt.Errorf("wait for a helper container: %w", werr)
	case <-timer.C:
		err = fmt.Errorf("a pipe in %s carried nothing from a helper container within %s: the engine shares the folder's files but not its pipes (as in a VM)", dir, deadline)
	case <-ctx.Done():
		err = ctx.Err()
	}
	// A line of this process's own ends the read: a read of a pipe cannot
	// be cancelled everywhere (macOS's pipes have no deadlines).
	_, _ = tok.f.Write([]byte("\n"))
	<-got
	return err
}

// noToken is why a probing helper that exited with code wrote no token.
func (h *helper) noToken(ctx context.Context, dir string, code int64) error {
	if code == probeNoPipe {
		return fmt.Errorf("the engine's containers see another folder at %s than aidb does: a helper container found no pipe there (an engine in a VM or on another machine)", dir)
	}
	logs, _ := h.r.logs(context.WithoutCancel(ctx), h.id, 5)
	return fmt.Errorf("a helper container exited with code %d before it wrote into its pipe in %s: %s", code, dir, strings.TrimSpace(logs))
}

// readLine reads one line from r, without its newline (at most 256 bytes).
func readLine(r io.Reader) string {
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() < 256 {
		if n, err := r.Read(buf); n == 0 || err != nil {
			break
		}
		if buf[0] == '\n' {
			break
		}
		b.WriteByte(buf[0])
	}
	return b.String()
}

// startHelper makes and starts a helper of tool for db in container c, on
// the path paths chooses for t: nil (and nothing left behind) where the
// exec stream is the path. The first helper of a run proves the helper
// path (start with probe); later ones start as they are.
func (r *Runner) startHelper(ctx context.Context, c container.Summary, db compose.Database, tool, role, workDir string, t Transport) (*helper, error) {
	if r.paths.settled(t) {
		return nil, nil
	}
	h, err := r.newHelper(db, tool, role, workDir)
	if err != nil {
		return nil, err
	}
	probed := false
	tr, err := r.paths.choose(ctx, t, probeFunc(func(ctx context.Context) error {
		probed = true
		return h.start(ctx, c, role, true)
	}))
	if err == nil && tr == TransportHelper && !probed {
		err = h.start(ctx, c, role, false)
	}
	if err != nil || tr != TransportHelper {
		return nil, errors.Join(err, h.abandon(ctx))
	}
	return h, nil
}
