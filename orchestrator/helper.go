package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
)

// helperMount is where a helper container sees the work folder.
const helperMount = "/aidb-work"

// helper is a client tool (pg_dump, psql) running in a container of the
// database's own image, in the database container's network namespace (so
// it reaches the server at 127.0.0.1:5432), with its --file a named pipe
// in the bind-mounted work folder. The password reaches it in a private
// pgpass file there.
type helper struct {
	o    *Orchestrator
	id   string
	tool string
	// fifo is the pipe's path on this host; fifos are all the helper's
	// pipes (one more per tool of a helper running several).
	fifo   string
	fifos  []string
	pgpass string
	// wait reports the tool's exit.
	wait     client.ContainerWaitResult
	killOnce sync.Once
	killErr  error
}

// startHelper starts tool with args (connection options are added) in a
// helper for database db, whose container is c, with role's label.
func (o *Orchestrator) startHelper(ctx context.Context, db compose.Database, c container.Summary, tool, role string, args, env []string, workDir string) (_ *helper, retErr error) {
	h, err := o.newHelper(db, tool, role, workDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, h.close(ctx))
		}
	}()
	cmd := append(append([]string{}, args...), "--host=127.0.0.1", "--port=5432", "--file="+h.inHelper(h.fifo))
	if err := h.start(ctx, db, c, role, []string{tool}, cmd, env); err != nil {
		return nil, err
	}
	return h, nil
}

// newHelper makes the pipe and the credentials file of a helper that is
// not started yet; close removes them.
func (o *Orchestrator) newHelper(db compose.Database, tool, role, workDir string) (*helper, error) {
	absDir, err := filepath.Abs(workDir)
	if err != nil {
		return nil, err
	}
	base := filepath.Join(absDir, ".aidb-"+role+"-"+randomTag())
	h := &helper{o: o, tool: tool, pgpass: base + ".pgpass", fifo: base + ".fifo"}
	if err := h.mkfifo(h.fifo); err != nil {
		return nil, err
	}
	if err := os.WriteFile(h.pgpass, []byte(pgpassLine(db)), 0o600); err != nil {
		_ = h.close(context.Background())
		return nil, fmt.Errorf("write credentials file in %s: %w", absDir, err)
	}
	return h, nil
}

// mkfifo makes a pipe of the helper's, removed by close.
func (h *helper) mkfifo(path string) error {
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return fmt.Errorf("create pipe in %s: %w", filepath.Dir(path), err)
	}
	h.fifos = append(h.fifos, path)
	return nil
}

// inHelper is where the helper sees a file of the work folder.
func (h *helper) inHelper(path string) string {
	return helperMount + "/" + filepath.Base(path)
}

// start creates and starts the helper's container running entrypoint
// with cmd.
func (h *helper) start(ctx context.Context, db compose.Database, c container.Summary, role string, entrypoint, cmd, env []string) error {
	o := h.o
	// Created without cancellation: a create abandoned mid-flight by Ctrl-C
	// could still happen in the engine, unrecorded, and outlive this call.
	res, err := o.docker.ContainerCreate(context.WithoutCancel(ctx), client.ContainerCreateOptions{
		Config: &container.Config{
			Image:      c.Image,
			Entrypoint: entrypoint,
			Cmd:        cmd,
			Env:        append([]string{"PGPASSFILE=" + h.inHelper(h.pgpass)}, env...),
			Labels:     Labels(o.project.Name, db.Service, role),
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode("container:" + c.ID),
			Mounts:      []mount.Mount{{Type: mount.TypeBind, Source: filepath.Dir(h.pgpass), Target: helperMount}},
		},
	})
	if err != nil {
		return fmt.Errorf("create %s helper for %s: %w", h.tool, db.Name, err)
	}
	h.id = res.ID
	if ctx.Err() != nil {
		return ctx.Err()
	}
	h.wait = o.docker.ContainerWait(ctx, res.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := o.docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s helper for %s: %w", h.tool, db.Name, err)
	}
	return nil
}

// kill stops the tool and removes its container (once), also after
// Ctrl-C.
func (h *helper) kill(ctx context.Context) error {
	h.killOnce.Do(func() {
		if h.id == "" {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, err := h.o.docker.ContainerRemove(rctx, h.id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			h.killErr = fmt.Errorf("could not remove the %s helper container (%w); once the engine answers, run: docker rm -f %s", h.tool, err, h.id[:12])
		}
	})
	return h.killErr
}

// close kills the helper and removes the pipe and the credentials file: a
// helper never outlives the call that started it.
func (h *helper) close(ctx context.Context) error {
	err := h.kill(ctx)
	for _, f := range h.fifos {
		_ = os.Remove(f)
	}
	_ = os.Remove(h.pgpass)
	return err
}

// failure is the tool's error for a non-zero exit, with its last output.
func (h *helper) failure(ctx context.Context, code int64) error {
	logs, _ := containerLogs(context.WithoutCancel(ctx), h.o.docker, h.id, 50)
	return &ToolError{Tool: h.tool, ExitCode: int(code), Stderr: logs}
}
