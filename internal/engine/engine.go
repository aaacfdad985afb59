// Package engine connects to the Docker engine for one project and hands
// out what the operations run on: the databases' lifecycle (package
// orchestrator) and PostgreSQL's client tools run against them (package
// pgrun), as one value with one Close. It keeps the Docker client to
// itself, so the CLI needs neither the client nor its types.
package engine

import (
	"context"

	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/services"
	"github.com/aidb/aidb/orchestrator"
)

// Engine is a project's databases on a connected engine: their lifecycle
// and the client tools, as backups, restores, verification and clearing
// what killed runs left take them.
type Engine struct {
	*orchestrator.Orchestrator
	*pgtools.Runner
	docker *client.Client
}

// Connect connects to the engine DOCKER_HOST names (orchestrator.Connect:
// it must answer within orchestrator.PingTimeout) and returns the project's
// lifecycle (its services that are not databases on Docker Compose's
// engine, package services) and client tools on it, opts configuring the
// lifecycle. The caller closes it.
func Connect(ctx context.Context, p *compose.Project, opts ...orchestrator.Option) (*Engine, error) {
	d, err := orchestrator.Connect(ctx)
	if err != nil {
		return nil, err
	}
	// The services that are not databases run on Docker Compose's engine,
	// over the same connection.
	o, err := orchestrator.New(d, p, append(opts, orchestrator.WithComposer(services.New(d)))...)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	r, err := pgtools.New(d, o)
	if err != nil {
		_ = d.Close()
		return nil, err
	}
	return &Engine{Orchestrator: o, Runner: r, docker: d}, nil
}

// Close closes the connection to the engine.
func (e *Engine) Close() error { return e.docker.Close() }
