package pgtools

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/orchestrator"
)

// OneShot is a command run once in a container of a database's image and
// removed again (pg_basebackup, preparing a recovery volume).
type OneShot struct {
	// Image is the image to run (the database's own).
	Image string
	// User runs the command ("": the image's, root); Entrypoint and Cmd
	// are the command.
	User       string
	Entrypoint []string
	Cmd        []string
	// Env holds credentials (never argv).
	Env    []string
	Mounts []mount.Mount
	// Network joins the container to a network ("": the engine's default).
	Network string
	// Timeout bounds the run; the container is killed and removed past it.
	Timeout time.Duration
}

// RunOnce runs s for db's service (labelled aidb.role=pitr and owned by
// this process, so a killed run's is cleared as litter), waits for it to
// exit within s.Timeout, and removes it, also after Ctrl-C. A non-zero
// exit is an error holding the last lines of its output.
func (r *Runner) RunOnce(ctx context.Context, db compose.Database, s OneShot) (string, error) {
	host := container.HostConfig{Mounts: s.Mounts}
	var nets *network.NetworkingConfig
	if s.Network != "" {
		host.NetworkMode = container.NetworkMode(s.Network)
		nets = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{s.Network: {}}}
	}
	res, err := r.docker.ContainerCreate(context.WithoutCancel(ctx), client.ContainerCreateOptions{
		Config: &container.Config{Image: s.Image, User: s.User, Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: s.Env,
			Labels: workLabels(r.dbs.Project().Name, db.Service, orchestrator.RolePITR)},
		HostConfig: &host, NetworkingConfig: nets,
	})
	if err != nil {
		return "", fmt.Errorf("create container for %s: %w", s.Cmd[0], err)
	}
	defer func() {
		_, _ = r.docker.ContainerRemove(context.WithoutCancel(ctx), res.ID, client.ContainerRemoveOptions{Force: true})
	}()
	wctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	wait := r.docker.ContainerWait(wctx, res.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := r.docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return "", fmt.Errorf("start container for %s: %w", s.Cmd[0], err)
	}
	var code int64
	select {
	case w := <-wait.Result:
		code = w.StatusCode
	case err := <-wait.Error:
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		logs, _ := r.logs(context.WithoutCancel(ctx), res.ID, 20)
		return logs, fmt.Errorf("%s did not finish within %s: %w\n%s", s.Cmd[0], s.Timeout, err, indentLines(logs))
	}
	logs, _ := r.logs(context.WithoutCancel(ctx), res.ID, 40)
	if code != 0 {
		return logs, fmt.Errorf("%s exited with code %d:\n%s", s.Cmd[0], code, indentLines(logs))
	}
	return logs, nil
}

// ExecAs runs cmd as user in db's running container and returns its
// output; a non-zero exit is an error with its stderr.
func (r *Runner) ExecAs(ctx context.Context, db compose.Database, user string, cmd []string) (string, error) {
	c, err := r.dbs.Running(ctx, db)
	if err != nil {
		return "", err
	}
	ex, err := r.docker.ExecCreate(ctx, c.ID, client.ExecCreateOptions{User: user, AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return "", fmt.Errorf("start %s in %s: %w", cmd[0], containerName(c), err)
	}
	att, err := r.docker.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("attach to %s: %w", cmd[0], err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&limitedWriter{w: &stdout, n: 64 << 10}, &limitedWriter{w: &stderr, n: 64 << 10}, att.Reader); err != nil {
		return "", fmt.Errorf("read %s's output: %w", cmd[0], err)
	}
	res, err := r.docker.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", cmd[0], err)
	}
	if res.ExitCode != 0 {
		return stdout.String(), fmt.Errorf("%s in %s exited with code %d: %s", cmd[0], containerName(c), res.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// StartRecovery starts a PostgreSQL container of image on volume (mounted
// at target, the database's data path), which holds a restored base
// backup and recovery.signal, with the stream folder walDir mounted
// read-only at orchestrator.WALMount and settings (-c name=value: the
// recovery target and restore_command) on its command line, so they last
// only as long as this container. It is labelled aidb.role=pitr, published
// on a free port of 127.0.0.1, and waits until the server answers SELECT 1
// (a hot standby answers once it is consistent; a recovery that fails
// stops the server and fails the wait with its last log lines). Close
// removes the container, never the volume.
func (r *Runner) StartRecovery(ctx context.Context, image string, db compose.Database, volume, target, walDir string, settings []string) (*Throwaway, error) {
	ref, err := r.dbs.EnsureImage(ctx, image)
	if err != nil {
		return nil, err
	}
	return r.startPostgres(ctx, ref, db, orchestrator.RolePITR, append([]string{"postgres"}, settings...), nil,
		container.HostConfig{Mounts: []mount.Mount{
			{Type: mount.TypeVolume, Source: volume, Target: target},
			{Type: mount.TypeBind, Source: walDir, Target: orchestrator.WALMount, ReadOnly: true},
		}})
}

// Logs is the last n lines of the container's output.
func (t *Throwaway) Logs(ctx context.Context, n int) (string, error) { return t.r.logs(ctx, t.id, n) }

// Running says whether the container still runs.
func (t *Throwaway) Running(ctx context.Context) (bool, error) {
	in, err := t.r.docker.ContainerInspect(ctx, t.id, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return in.Container.State != nil && in.Container.State.Running, nil
}

func indentLines(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
