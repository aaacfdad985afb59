package pgtools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/runs/owner"
)

// helperMount is where a helper container sees the work folder.
const helperMount = "/aidb-work"

// secretDir is a tmpfs of the helper's own where its shell writes the
// credentials file: in memory, gone with the container, never in the
// bind-mounted work folder. (libpq reads a password file only if it is a
// regular file, so a pipe cannot be PGPASSFILE.)
const secretDir = "/aidb-secret"

// helper is a client tool (pg_dump, psql) running in a container of the
// database's own image, in the database container's network namespace (so
// it reaches the server at 127.0.0.1:5432), with its --file a named pipe
// in the bind-mounted work folder.
//
// The container runs sh on a script it reads from a pipe in the work
// folder (script): aidb writes the script, credentials first, once the
// helper runs. So the password is never on disk, in the container's
// configuration (docker inspect) or in a process's arguments, and a run
// killed at any moment leaves nothing readable: a pipe holds nothing once
// read, nor after its writer is gone. Every pipe's name and the container's
// aidb.owner label name this process (package owner), so a later run can
// clear what a killed one left.
type helper struct {
	r    *Runner
	id   string
	tool string
	db   compose.Database
	// base is the pipes' common path, without owner and extension.
	base   string
	script string
	// fifos are all the helper's pipes, the script's included.
	fifos []string
	// wait reports the tool's exit; exited says a probe already read it.
	wait     client.ContainerWaitResult
	exited   bool
	killOnce sync.Once
	killErr  error
}

// newHelper makes the script pipe of a helper that is not started yet;
// close removes it.
func (r *Runner) newHelper(db compose.Database, tool, role, workDir string) (*helper, error) {
	absDir, err := filepath.Abs(workDir)
	if err != nil {
		return nil, err
	}
	h := &helper{r: r, tool: tool, db: db, base: filepath.Join(absDir, ".aidb-"+role+"-"+randomTag())}
	h.script, err = h.pipe("script")
	if err != nil {
		return nil, err
	}
	return h, nil
}

// pipe makes a pipe of the helper's, named for what (owner and all),
// removed by close.
func (h *helper) pipe(what string) (string, error) {
	path := owner.Name(h.base+"."+what, ".fifo")
	if err := mkfifo(path); err != nil {
		return "", fmt.Errorf("create pipe in %s: %w", filepath.Dir(path), err)
	}
	h.fifos = append(h.fifos, path)
	return path, nil
}

// inHelper is where the helper sees a file of the work folder.
func (h *helper) inHelper(path string) string {
	return helperMount + "/" + filepath.Base(path)
}

// credentials is the start of every helper's script: it writes the
// database's password into a private file on the helper's tmpfs (printf is
// a shell builtin: no process's arguments show it) and points libpq at it.
func (h *helper) credentials() string {
	file := secretDir + "/pgpass"
	return "umask 077\n" +
		"printf '%s\\n' " + shellQuote(strings.TrimSuffix(pgpassLine(h.db), "\n")) + " >" + file + " || exit 1\n" +
		"export PGPASSFILE=" + file + "\n"
}

// start creates and starts the helper's container, running sh on the
// script pipe; the caller then writes the script (handOver). With probe,
// the helper first writes a token into a pipe of its own, and start
// returns once this process has read it (nil), or with the reason it did
// not come (see awaitToken): that the helper path works is then proven,
// not guessed.
func (h *helper) start(ctx context.Context, c container.Summary, role string, probe bool) error {
	r, db := h.r, h.db
	entry := []string{"sh", h.inHelper(h.script)}
	var tok *tokenPipe
	if probe {
		var err error
		if tok, err = h.tokenPipe(); err != nil {
			return err
		}
		defer tok.close()
		entry = []string{"sh", "-c", probeScript, "sh", h.inHelper(tok.path), tok.token, h.inHelper(h.script)}
	}
	// Created without cancellation: a create abandoned mid-flight by Ctrl-C
	// could still happen in the engine, unrecorded, and outlive this call.
	res, err := r.docker.ContainerCreate(context.WithoutCancel(ctx), client.ContainerCreateOptions{
		Config: &container.Config{
			Image:      c.Image,
			Entrypoint: entry,
			Labels:     workLabels(r.dbs.Project().Name, db.Service, role),
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode("container:" + c.ID),
			Mounts:      []mount.Mount{{Type: mount.TypeBind, Source: filepath.Dir(h.base), Target: helperMount}},
			Tmpfs:       map[string]string{secretDir: "rw,noexec,nosuid,nodev,size=64k"},
		},
	})
	if err != nil {
		if probe {
			return fmt.Errorf("the engine would not create a helper container with %s mounted: %w", filepath.Dir(h.base), err)
		}
		return fmt.Errorf("create %s helper for %s: %w", h.tool, db.Name, err)
	}
	h.id = res.ID
	if ctx.Err() != nil {
		return ctx.Err()
	}
	h.wait = r.docker.ContainerWait(ctx, res.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := r.docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		if probe {
			return fmt.Errorf("the engine would not start a helper container with %s mounted: %w", filepath.Dir(h.base), err)
		}
		return fmt.Errorf("start %s helper for %s: %w", h.tool, db.Name, err)
	}
	if probe {
		return h.awaitToken(ctx, tok, probeDeadline)
	}
	return nil
}

// handOver writes the script into the helper's script pipe: credentials
// first, then body. It waits until the helper's shell opens the pipe, or
// gone says the helper exited (or ctx ends): then a reader of this
// process's own lets the pending open return, and the script goes nowhere.
func (h *helper) handOver(ctx context.Context, body string, gone <-chan struct{}) error {
	var f *os.File
	var err error
	opened := make(chan struct{})
	go func() {
		f, err = os.OpenFile(h.script, os.O_WRONLY, 0)
		close(opened)
	}()
	select {
	case <-opened:
	case <-gone:
	case <-ctx.Done():
	}
	select {
	case <-opened:
	default:
		if r, rerr := openReaderNow(h.script); rerr == nil {
			<-opened
			_ = r.Close()
		} else {
			<-opened
		}
		if f != nil {
			_ = f.Close()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errHelperGone
	}
	if err != nil {
		return fmt.Errorf("open pipe %s: %w", h.script, err)
	}
	_, err = io.WriteString(f, h.credentials()+body)
	return errors.Join(err, f.Close())
}

// errHelperGone is handOver's error for a helper that exited before it
// read its script; the caller reports the helper's own failure instead.
var errHelperGone = errors.New("the helper exited before it read its script")

// kill stops the tool and removes its container (once), also after
// Ctrl-C.
func (h *helper) kill(ctx context.Context) error {
	h.killOnce.Do(func() {
		if h.id == "" {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := h.r.docker.ContainerRemove(rctx, h.id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			h.killErr = fmt.Errorf("could not remove the %s helper container (%w); once the engine answers, run: docker rm -f %s", h.tool, err, h.id[:12])
		}
	})
	return h.killErr
}

// close kills the helper and removes its pipes: a helper never outlives
// the call that started it.
func (h *helper) close(ctx context.Context) error {
	err := h.kill(ctx)
	for _, f := range h.fifos {
		_ = os.Remove(f)
	}
	return err
}

// abandon closes a helper the caller will not use (the exec stream is the
// path) and lets go of the engine's report of its exit, which nobody else
// will read.
func (h *helper) abandon(ctx context.Context) error {
	err := h.close(ctx)
	if h.wait.Result != nil && !h.exited {
		go func() {
			select {
			case <-h.wait.Result:
			case <-h.wait.Error: //nolint:errcheck // drained so the engine's report is let go; the helper is abandoned
			}
		}()
	}
	return err
}

// failure is the tool's error for a non-zero exit, with its last output.
func (h *helper) failure(ctx context.Context, code int64) error {
	logs, _ := h.r.logs(context.WithoutCancel(ctx), h.id, 50)
	return &ToolError{Tool: h.tool, ExitCode: int(code), Stderr: logs}
}
