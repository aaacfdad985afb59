package orchestrator

import (
	"bytes"
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
)

// engineTarget is a database container on the engine, as readiness sees it.
type engineTarget struct {
	o  *Orchestrator
	id string
	db compose.Database
}

func (t *engineTarget) State(ctx context.Context) (ContainerState, error) {
	res, err := t.o.docker.ContainerInspect(ctx, t.id, client.ContainerInspectOptions{})
	if err != nil {
		return ContainerState{}, err
	}
	st := res.Container.State
	if st == nil {
		return ContainerState{}, fmt.Errorf("container %s has no state", t.id)
	}
	return ContainerState{Running: st.Running, Status: string(st.Status), ExitCode: st.ExitCode, OOMKill: st.OOMKilled}, nil
}

func (t *engineTarget) Logs(ctx context.Context, n int) (string, error) {
	return containerLogs(ctx, t.o.docker, t.id, n)
}

func (t *engineTarget) Ping(ctx context.Context) error {
	return t.o.Ping(ctx, t.db)
}

// selectOne connects and runs SELECT 1.
func selectOne(ctx context.Context, connString string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// containerLogs returns the last n lines of a container's stdout and stderr.
func containerLogs(ctx context.Context, d Docker, id string, n int) (string, error) {
	rc, err := d.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return "", err
	}
	defer func() { _ = rc.Close() }()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return out.String(), err
	}
	return out.String(), nil
}
