// Package services runs a compose project's services that are not
// databases on Docker Compose's own engine: the Compose v5 Go SDK
// (github.com/docker/compose/v5), so every key, profile, depends_on
// condition, build, network and volume behaves as docker compose up -d
// would. It implements orchestrator.Composer; the orchestrator decides
// what it is given (a project without the databases) and when.
//
// The SDK is reached over the same engine connection as the rest of
// aidb (the moby client Connect made), and set up on first use only:
// commands that never touch the services (backup, restore, ...) pay
// nothing for it. Setting it up points logrus's standard logger, which
// the SDK warns through, at the progress lines instead of stderr.
package services

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/flags"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/docker/compose/v5/pkg/compose"
	"github.com/moby/moby/client"
	"github.com/sirupsen/logrus"

	"github.com/aidb/aidb/orchestrator"
)

// Compose is the Compose SDK on one engine connection.
type Compose struct {
	docker client.APIClient

	once sync.Once
	svc  api.Compose
	err  error
	// events routes the SDK's progress events of the running call.
	events *events
}

// The Compose SDK is what runs aidb's services.
var _ orchestrator.Composer = (*Compose)(nil)

// New returns the Compose SDK on docker, which stays the caller's to
// close.
func New(docker client.APIClient) *Compose {
	return &Compose{docker: docker, events: &events{}}
}

// service sets the SDK up once: a Docker CLI value on aidb's client
// (the SDK's streams discarded: progress comes through events), and the
// Compose service on it.
func (c *Compose) service() (api.Compose, error) {
	c.once.Do(func() {
		cli, err := command.NewDockerCli(command.WithAPIClient(c.docker), command.WithOutputStream(io.Discard), command.WithErrorStream(io.Discard))
		if err != nil {
			c.err = fmt.Errorf("set up Docker Compose: %w", err)
			return
		}
		if err := cli.Initialize(flags.NewClientOptions()); err != nil {
			c.err = fmt.Errorf("set up Docker Compose: %w", err)
			return
		}
		// The SDK logs its warnings (orphan containers, the classic
		// builder standing in for buildx) through logrus's standard
		// logger: they become progress lines of the running call.
		logrus.SetOutput(io.Discard)
		logrus.AddHook(c.events)
		c.svc, c.err = compose.NewComposeService(cli,
			compose.WithEventProcessor(c.events),
			compose.WithPrompt(c.events.prompt),
			compose.WithStreams(io.Discard, io.Discard, strings.NewReader("")))
		if c.err != nil {
			c.err = fmt.Errorf("set up Docker Compose: %w", c.err)
		}
	})
	return c.svc, c.err
}

// Up is docker compose up -d of p (orchestrator.Composer): what
// diverged from the file is recreated, each service starts once its
// depends_on conditions hold (each wait bounded by opts.Timeout). It
// does not wait for the services themselves to be healthy, as up -d
// does not.
func (c *Compose) Up(ctx context.Context, p *types.Project, opts orchestrator.ComposeOptions) error {
	svc, err := c.service()
	if err != nil {
		return err
	}
	p = withComposeLabels(p)
	defer c.events.route(opts.Progress)()
	return svc.Up(ctx, p, api.UpOptions{
		// Build is what builds a service's image when it is missing (as up
		// does without --build); without it, Compose would not build.
		Create: api.CreateOptions{Recreate: api.RecreateDiverged, RecreateDependencies: api.RecreateDiverged, Build: &api.BuildOptions{Progress: "plain"}},
		Start:  api.StartOptions{Project: p, WaitTimeout: opts.Timeout},
	})
}

// Stop is docker compose stop of p's services.
func (c *Compose) Stop(ctx context.Context, p *types.Project, opts orchestrator.ComposeOptions) error {
	svc, err := c.service()
	if err != nil {
		return err
	}
	p = withComposeLabels(p)
	defer c.events.route(opts.Progress)()
	return svc.Stop(ctx, p.Name, api.StopOptions{Project: p})
}

// Restart is docker compose restart --no-deps of the named services.
func (c *Compose) Restart(ctx context.Context, p *types.Project, services []string, opts orchestrator.ComposeOptions) error {
	svc, err := c.service()
	if err != nil {
		return err
	}
	p = withComposeLabels(p)
	defer c.events.route(opts.Progress)()
	return svc.Restart(ctx, p.Name, api.RestartOptions{Project: p, Services: services, NoDeps: true})
}

// withComposeLabels is p with the labels Compose's own loader
// (LoadProject) gives each service, which its engine finds containers
// by: project, service, version, working folder, files, not one-off.
// The compose file itself is loaded once, by aidb's compose package.
func withComposeLabels(p *types.Project) *types.Project {
	p = p.WithServicesDisabled() // a deep copy, nothing disabled
	for name, s := range p.Services {
		s.CustomLabels = map[string]string{
			api.ProjectLabel:     p.Name,
			api.ServiceLabel:     name,
			api.VersionLabel:     api.ComposeVersion,
			api.WorkingDirLabel:  p.WorkingDir,
			api.ConfigFilesLabel: strings.Join(p.ComposeFiles, ","),
			api.OneoffLabel:      "False",
		}
		p.Services[name] = s
	}
	return p
}

// events turns the SDK's progress events into progress lines: one per
// change of a resource's state, not per percent of a pull.
type events struct {
	mu       sync.Mutex
	progress func(string)
	last     map[string]string
}

// route sends the events to progress until the returned func is called.
func (e *events) route(progress func(string)) func() {
	e.mu.Lock()
	e.progress, e.last = progress, map[string]string{}
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		e.progress = nil
		e.mu.Unlock()
	}
}

func (e *events) Start(context.Context, string) {}
func (e *events) Done(string, bool)             {}

func (e *events) On(rs ...api.Resource) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.progress == nil {
		return
	}
	for _, r := range rs {
		if r.ParentID != "" || r.Text == "" {
			continue // layers of a pull
		}
		line := r.Text
		if r.Details != "" && r.Status != api.Working {
			line += " (" + r.Details + ")"
		}
		if e.last[r.ID] == line {
			continue
		}
		e.last[r.ID] = line
		e.progress(r.ID + ": " + line)
	}
}

// Levels are the logrus levels the SDK's warnings come at.
func (e *events) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

// Fire sends a warning of the SDK to the running call's progress.
func (e *events) Fire(entry *logrus.Entry) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.progress != nil {
		e.progress("Compose: " + entry.Message)
	}
	return nil
}

// prompt answers the SDK's questions: no. The one Up may ask is whether
// to recreate a volume whose configuration changed, losing its data;
// aidb never loses data it was not told to lose, so the volume stays and
// the progress lines say so.
func (e *events) prompt(message string, _ bool) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.progress != nil {
		e.progress(fmt.Sprintf("Compose asks: %s aidb answers no: nothing is removed; remove it yourself (docker volume rm) to have it made anew", strings.TrimSpace(message)))
	}
	return false, nil
}
