// Package pgrun runs PostgreSQL's client tools (pg_dump, psql) against a
// project's databases, always from the database's own image so client and
// server match: through a docker exec stream in the database container
// (TransportStream), or in a helper container of its image that shares the
// database container's network namespace and passes data through named
// pipes in a bind-mounted folder, its credentials handed over by a script
// pipe (TransportHelper); and it starts the throwaway PostgreSQL containers
// backups are verified in.
//
// Everything it starts is labelled (orchestrator.Labels, roles dump, load
// and verify, and the owner: see package owner) and lives only as long as
// the call that started it. The databases themselves (their containers,
// images and readiness) belong to the lifecycle, package orchestrator,
// which this package reaches through the small Databases interface.
package pgtools

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/runs/owner"
	"github.com/aidb/aidb/orchestrator"
)

// Docker is the engine calls running the tools makes; the moby client
// (*client.Client) satisfies it.
type Docker interface {
	DaemonHost() string
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerCreate(ctx context.Context, options client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, options client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerWait(ctx context.Context, id string, options client.ContainerWaitOptions) client.ContainerWaitResult
	ContainerInspect(ctx context.Context, id string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerLogs(ctx context.Context, id string, options client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	ContainerRemove(ctx context.Context, id string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerStop(ctx context.Context, id string, options client.ContainerStopOptions) (client.ContainerStopResult, error)
	ExecCreate(ctx context.Context, id string, options client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecAttach(ctx context.Context, execID string, options client.ExecAttachOptions) (client.ExecAttachResult, error)
	ExecInspect(ctx context.Context, execID string, options client.ExecInspectOptions) (client.ExecInspectResult, error)
}

// Databases is what running the tools needs of the databases' lifecycle;
// *orchestrator.Orchestrator satisfies it.
type Databases interface {
	// Project names the project (labels) and its settings.
	Project() *compose.Project
	// Running is the database's container, which must be running (else an
	// error saying how to bring it up).
	Running(ctx context.Context, db compose.Database) (container.Summary, error)
	// ConnString is db's postgres:// URL from this host.
	ConnString(db compose.Database) string
	// Ping runs SELECT 1 as db, once.
	Ping(ctx context.Context, db compose.Database) error
	// EnsureImage returns the image to run for ref (present, pulled, or a
	// local build standing in for it).
	EnsureImage(ctx context.Context, ref string) (string, error)
	// WaitReady waits, at most the project's ready timeout, for container
	// id to answer SELECT 1 as db.
	WaitReady(ctx context.Context, id string, db compose.Database) error
}

// Runner runs the client tools against one project's databases. It is
// one run's: the data path it finds (see paths) is kept for its life.
type Runner struct {
	docker Docker
	dbs    Databases
	paths  *paths
}

// New returns a Runner for the databases dbs on the engine behind docker.
func New(docker Docker, dbs Databases) (*Runner, error) {
	if docker == nil || dbs == nil {
		return nil, errors.New("pgrun: docker client and databases are required")
	}
	return &Runner{docker: docker, dbs: dbs, paths: &paths{pipes: namedPipes}}, nil
}

// OnStreamFallback sends fn, once per run, the reason the helper path does
// not work here when auto takes the exec stream instead (default: not
// said). Set it before the Runner runs anything.
func (r *Runner) OnStreamFallback(fn func(reason string)) { r.paths.notice = fn }

// workLabels are the labels of a helper or throwaway container this process
// starts: orchestrator.Labels and its owner.
func workLabels(project, service, role string) map[string]string {
	l := orchestrator.Labels(project, service, role)
	l[orchestrator.LabelOwner] = owner.Self().String()
	return l
}

// isWorkRole says whether containers of role live only as long as the
// command that started them (helpers and throwaways).
func isWorkRole(role string) bool {
	return role == orchestrator.RoleDump || role == orchestrator.RoleLoad || role == orchestrator.RoleVerify || role == orchestrator.RoleUpgrade || role == orchestrator.RolePITR
}

func containerName(c container.Summary) string {
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	return c.ID[:12]
}

// logs returns the last n lines of a container's stdout and stderr.
func (r *Runner) logs(ctx context.Context, id string, n int) (string, error) {
	rc, err := r.docker.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
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
