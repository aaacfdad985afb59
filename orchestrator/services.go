package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/graph"
	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/internal/fault"
)

// RoleService is the role of a compose service that is not a database:
// its containers, and the volumes and networks only such services use.
const RoleService = "service"

// Docker Compose's labels, as its engine sets them on what it creates.
const (
	ComposeProjectLabel = "com.docker.compose.project"
	ComposeServiceLabel = "com.docker.compose.service"
	composeOneoffLabel  = "com.docker.compose.oneoff"
)

// Composer runs the compose services that are not databases: Docker
// Compose's own engine (package services) in aidb, a fake in unit tests.
// The project it is given holds those services only; the databases'
// networks and volumes are declared external in it.
type Composer interface {
	// Up is docker compose up -d: create, recreate what diverged, start,
	// each service once its depends_on conditions hold.
	Up(ctx context.Context, p *types.Project, opts ComposeOptions) error
	// Stop is docker compose stop of the project's services.
	Stop(ctx context.Context, p *types.Project, opts ComposeOptions) error
	// Restart is docker compose restart --no-deps of the named services.
	Restart(ctx context.Context, p *types.Project, services []string, opts ComposeOptions) error
}

// ComposeOptions go with every Composer call.
type ComposeOptions struct {
	// Timeout bounds each depends_on wait (the project's ready timeout).
	Timeout time.Duration
	// Progress receives one line per step (never nil).
	Progress func(string)
}

// WithComposer runs the services that are not databases through c (see
// UpAll, DownAll).
func WithComposer(c Composer) Option {
	return func(o *Orchestrator) error {
		if c == nil {
			return errors.New("orchestrator: nil composer")
		}
		o.composer = c
		return nil
	}
}

// errNoComposer is a programming error: engine.Connect gives every
// orchestrator a composer.
var errNoComposer = errors.New("orchestrator: no compose engine to run the services that are not databases")

// UpAll brings the whole compose project up, as docker compose up -d
// would, with the databases under aidb's own lifecycle:
//
//  1. the databases, as Up does (ready by SELECT 1; a working database
//     is never taken down), and, for each one a service depends on with
//     condition service_healthy, its engine healthcheck passing (at most
//     the ready timeout);
//  2. the other services, through Docker Compose's engine (Composer),
//     given a project without the databases: their depends_on entries
//     naming databases are dropped (step 1 has met them), and the
//     databases' networks and volumes are declared external there, so
//     Compose uses the ones aidb made and can neither recreate nor stop
//     a database;
//  3. services that depend on a database with restart: true are
//     restarted when step 1 replaced that database's container, as
//     Compose does when it recreates a dependency.
//
// Services whose profiles are not enabled stay down. Every service
// container carries aidb's labels (role service) besides Compose's.
//
// A service that does not start fails the run, named with Compose's
// error and its container's last log lines; what was started is left
// running for inspection, and the error is a LeftRunningError.
func (o *Orchestrator) UpAll(ctx context.Context) error {
	if o.composer == nil {
		return errNoComposer
	}
	cp, err := o.composeProject(false)
	if err != nil {
		return err
	}
	before, err := o.databaseContainers(ctx)
	if err != nil {
		return err
	}
	if err := o.Up(ctx, o.project.Databases); err != nil {
		return err
	}
	if len(cp.Services) == 0 {
		return nil
	}
	for _, db := range o.healthyNeeded(cp) {
		if err := o.waitHealthy(ctx, db); err != nil {
			return &LeftRunningError{Err: err}
		}
	}
	if err := o.removeHandMadeServices(ctx); err != nil {
		return err
	}
	running, err := o.composeContainers(ctx)
	if err != nil {
		return err
	}
	opts := ComposeOptions{Timeout: o.project.ReadyTimeout, Progress: o.progress}
	if err := o.composer.Up(ctx, cp, opts); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &LeftRunningError{Err: o.explain(context.WithoutCancel(ctx), fmt.Errorf("start the services of project %s: %w", o.project.Name, err))}
	}
	after, err := o.databaseContainers(ctx)
	if err != nil {
		return err
	}
	if names := o.restartDependants(cp, before, after, running); len(names) > 0 {
		o.progress(fmt.Sprintf("restarting %s: a database they depend on with restart: true was replaced", strings.Join(names, ", ")))
		if err := o.composer.Restart(ctx, cp, names, opts); err != nil {
			return &LeftRunningError{Err: o.explain(context.WithoutCancel(ctx), fmt.Errorf("restart %s: %w", strings.Join(names, ", "), err))}
		}
	}
	if err := o.explain(ctx, nil); err != nil {
		return &LeftRunningError{Err: err}
	}
	return nil
}

// composeProject is the project handed to Compose: the compose file's
// services that are not databases (all of them whatever their profiles
// with allProfiles), labelled as aidb's, with depends_on entries naming
// databases dropped and the databases' networks and volumes external
// under the names aidb gives them. The loaded project is left as it is.
//
// A dependency cycle, or a service that depends on a database completing
// (a database is kept running, it never completes), is bad input.
func (o *Orchestrator) composeProject(allProfiles bool) (*types.Project, error) {
	cp := o.project.Compose
	if allProfiles {
		var err error
		if cp, err = cp.WithProfiles([]string{"*"}); err != nil {
			return nil, fault.BadInput(fmt.Errorf("%s: %w", o.project.ComposeFile, err))
		}
	}
	if err := graph.CheckCycle(cp); err != nil {
		return nil, fault.BadInput(fmt.Errorf("%s: %w", o.project.ComposeFile, err))
	}
	var dbs []string
	// The default network is aidb's: Up makes it whatever networks the
	// databases join.
	dbNetworks, dbVolumes := map[string]bool{"default": true}, map[string]bool{}
	for _, db := range o.project.Databases {
		dbs = append(dbs, db.Service)
		svc, _ := o.project.Service(db.Service)
		for k := range svc.Networks {
			dbNetworks[k] = true
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source != "" {
				dbVolumes[v.Source] = true
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cp.Services)) {
		if slices.Contains(dbs, name) {
			continue
		}
		for _, dep := range slices.Sorted(maps.Keys(cp.Services[name].DependsOn)) {
			if slices.Contains(dbs, dep) && cp.Services[name].DependsOn[dep].Condition == types.ServiceConditionCompletedSuccessfully {
				return nil, fault.BadInput(fmt.Errorf("%s: service %s depends on database %s completing successfully, but aidb keeps its databases running; use condition service_healthy or service_started", o.project.ComposeFile, name, dep))
			}
		}
	}
	cp = cp.WithServicesDisabled(dbs...) // a deep copy: o.project stays as loaded

	// The databases' networks and volumes are aidb's: Compose uses them as
	// they are. The others are Compose's, labelled as aidb's too, so
	// nuke and status find them.
	if cp.Networks == nil {
		cp.Networks = types.Networks{}
	}
	for key := range dbNetworks {
		n := cp.Networks[key]
		if key == "default" {
			n.Name = NetworkName(o.project)
		} else {
			n.Name = projectNetworkName(o.project, key)
		}
		n.External = true
		cp.Networks[key] = n
	}
	for key, n := range cp.Networks {
		if dbNetworks[key] || bool(n.External) {
			continue
		}
		n.Labels = withLabels(n.Labels, Labels(o.project.Name, "", RoleNetwork))
		cp.Networks[key] = n
	}
	users := map[string]string{} // volume key -> first service mounting it
	for _, name := range slices.Sorted(maps.Keys(cp.Services)) {
		for _, v := range cp.Services[name].Volumes {
			if _, seen := users[v.Source]; !seen && v.Type == types.VolumeTypeVolume {
				users[v.Source] = name
			}
		}
	}
	for key, v := range cp.Volumes {
		switch {
		case dbVolumes[key]:
			v.Name, v.External = volumeName(o.project, key), true
		case !bool(v.External):
			v.Labels = withLabels(v.Labels, Labels(o.project.Name, users[key], RoleService))
		}
		cp.Volumes[key] = v
	}
	for name, svc := range cp.Services {
		svc.Labels = withLabels(svc.Labels, Labels(o.project.Name, name, RoleService))
		cp.Services[name] = svc
	}
	return cp, nil
}

func withLabels(l types.Labels, add map[string]string) types.Labels {
	out := types.Labels{}
	maps.Copy(out, l)
	maps.Copy(out, add)
	return out
}

// healthyNeeded lists the databases a service of cp depends on with
// condition service_healthy, in the project's order.
func (o *Orchestrator) healthyNeeded(cp *types.Project) []string {
	var out []string
	for _, db := range o.project.Databases {
		for name := range cp.Services {
			dep, ok := o.project.Compose.Services[name].DependsOn[db.Service]
			if ok && dep.Condition == types.ServiceConditionHealthy && !slices.Contains(out, db.Service) {
				out = append(out, db.Service)
			}
		}
	}
	return out
}

// waitHealthy waits until the database service's container passes its
// engine healthcheck, for at most the project's ready timeout. A
// database without one is healthy once it answers SELECT 1, which Up
// has waited for.
func (o *Orchestrator) waitHealthy(ctx context.Context, service string) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(parent, o.project.ReadyTimeout)
	defer cancel()
	for {
		existing, err := o.databaseContainers(ctx)
		if err != nil {
			return o.waitError(parent, err, service, "")
		}
		c, ok := existing[service]
		if !ok {
			return fmt.Errorf("database %s has no container", service)
		}
		in, err := o.docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			return o.waitError(parent, err, service, c.ID)
		}
		cfg, st := in.Container.Config, in.Container.State
		if cfg == nil || cfg.Healthcheck == nil || len(cfg.Healthcheck.Test) == 0 || cfg.Healthcheck.Test[0] == "NONE" {
			return nil
		}
		switch {
		case st == nil:
		case !st.Running:
			return o.notHealthy(ctx, service, c.ID, "stopped")
		case st.Health != nil && st.Health.Status == container.Healthy:
			return nil
		case st.Health != nil && st.Health.Status == container.Unhealthy:
			return o.notHealthy(ctx, service, c.ID, "is unhealthy")
		}
		select {
		case <-ctx.Done():
			return o.waitError(parent, ctx.Err(), service, c.ID)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitError is how waitHealthy ends on an error: Ctrl-C as itself, the
// deadline as the database not healthy in time.
func (o *Orchestrator) waitError(parent context.Context, err error, service, id string) error {
	if perr := parent.Err(); perr != nil {
		return perr
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return o.notHealthy(context.WithoutCancel(parent), service, id, fmt.Sprintf("did not become healthy within %s", o.project.ReadyTimeout))
	}
	return err
}

func (o *Orchestrator) notHealthy(ctx context.Context, service, id, what string) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	logs := ""
	if id != "" {
		logs, _ = containerLogs(lctx, o.docker, id, readyLogLines)
	}
	return fmt.Errorf("services depend on database %s being healthy, and its healthcheck %s; its last log lines:\n%s", service, what, indent(strings.TrimRight(logs, "\n")))
}

// restartDependants lists the services of cp that depend with restart:
// true on a database whose container Up replaced (before -> after), and
// whose container ran before and was not recreated since (Compose
// started afresh the ones it recreated).
func (o *Orchestrator) restartDependants(cp *types.Project, before, after map[string]container.Summary, running map[string][]container.Summary) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(cp.Services)) {
		for dep, cfg := range o.project.Compose.Services[name].DependsOn {
			b, had := before[dep]
			a := after[dep]
			if !cfg.Restart || !had || !o.isDatabaseService(dep) || b.ID == a.ID {
				continue
			}
			for _, c := range running[name] {
				if c.State == container.StateRunning && !slices.Contains(out, name) {
					out = append(out, name)
				}
			}
		}
	}
	return out
}

// composeContainers maps service name to the containers Compose made for
// the project (one-off containers of docker compose run left out).
func (o *Orchestrator) composeContainers(ctx context.Context) (map[string][]container.Summary, error) {
	res, err := o.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", ComposeProjectLabel+"="+o.project.Name)})
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", o.project.Name, err)
	}
	m := map[string][]container.Summary{}
	for _, c := range res.Items {
		if strings.EqualFold(c.Labels[composeOneoffLabel], "true") {
			continue
		}
		svc := c.Labels[ComposeServiceLabel]
		m[svc] = append(m[svc], c)
	}
	for _, cs := range m {
		slices.SortFunc(cs, func(a, b container.Summary) int { return strings.Compare(containerName(a), containerName(b)) })
	}
	return m, nil
}

// explain adds to err (which may be nil) each service container that is
// not up: exited with a failure, restarting, dead or unhealthy, with its
// last log lines; nil when err is nil and every container is up. A
// container that exited 0 is done (a one-off job), not failed.
func (o *Orchestrator) explain(ctx context.Context, err error) error {
	existing, lerr := o.composeContainers(ctx)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	var why []string
	for _, svc := range slices.Sorted(maps.Keys(existing)) {
		for _, c := range existing[svc] {
			// The list's state, the inspection's details: the engine's
			// list carries no health before API 1.52.
			in, ierr := o.docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
			st := &container.State{Status: c.State}
			if ierr == nil && in.Container.State != nil {
				st = in.Container.State
			}
			health := container.NoHealthcheck
			if st.Health != nil {
				health = st.Health.Status
			}
			what := ""
			switch {
			case st.Status == container.StateExited && st.ExitCode == 0 && st.Error == "":
				continue // done: a one-off job
			case st.Status == container.StateExited || st.Status == container.StateDead:
				what = fmt.Sprintf("exited with code %d", st.ExitCode)
				if st.Error != "" {
					what += ": " + st.Error
				}
			case st.Status == container.StateRestarting:
				what = "keeps restarting"
			case st.Status == container.StateCreated && err != nil:
				what = "was created but not started"
				if st.Error != "" {
					what += ": " + st.Error
				}
			case health == container.Unhealthy:
				what = "is unhealthy"
			case health == container.Starting && err != nil:
				what = "is not healthy yet (its healthcheck has not passed)"
			default:
				continue
			}
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			logs, _ := containerLogs(lctx, o.docker, c.ID, readyLogLines)
			cancel()
			line := fmt.Sprintf("service %s (container %s) %s", svc, containerName(c), what)
			if logs = strings.TrimRight(logs, "\n"); logs != "" {
				line += "; its last log lines:\n" + indent(logs)
			}
			why = append(why, line)
		}
	}
	if len(why) == 0 {
		return err
	}
	if err == nil {
		return errors.New(strings.Join(why, "\n"))
	}
	return fmt.Errorf("%w\n%s", err, strings.Join(why, "\n"))
}

// removeHandMadeServices removes the service containers an earlier aidb
// made by hand (labelled role service, without Compose's labels), so
// Compose's take their place and ports; their volumes stay.
func (o *Orchestrator) removeHandMadeServices(ctx context.Context) error {
	res, err := o.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(o.project.Name, "", RoleService)})
	if err != nil {
		return fmt.Errorf("list containers of project %s: %w", o.project.Name, err)
	}
	for _, c := range res.Items {
		if _, ok := c.Labels[ComposeProjectLabel]; ok {
			continue
		}
		o.progress(fmt.Sprintf("%s: removing container %s, made by an earlier aidb; Compose makes its successor (volumes are kept)", c.Labels[LabelService], containerName(c)))
		if _, err := o.docker.ContainerRemove(context.WithoutCancel(ctx), c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %s: %w", containerName(c), err)
		}
	}
	return nil
}

// LeftRunningError is a failed UpAll: the services the run started are
// left running for inspection (Down stops them, Nuke removes everything).
type LeftRunningError struct{ Err error }

func (e *LeftRunningError) Error() string {
	return fmt.Sprintf("%v\nthe services this run started are left running for inspection", e.Err)
}

func (e *LeftRunningError) Unwrap() error { return e.Err }

// DownAll stops every service of the project through Compose, whatever
// its profiles, then the databases as Down does; containers and volumes
// are kept.
func (o *Orchestrator) DownAll(ctx context.Context) error {
	if o.composer == nil {
		return errNoComposer
	}
	cp, err := o.composeProject(true)
	if err != nil {
		return err
	}
	var errs []error
	if len(cp.Services) > 0 {
		if err := o.composer.Stop(ctx, cp, ComposeOptions{Timeout: o.project.ReadyTimeout, Progress: o.progress}); err != nil {
			errs = append(errs, fmt.Errorf("stop the services of project %s: %w", o.project.Name, err))
		}
	}
	return errors.Join(append(errs, o.Down(ctx, o.project.Databases))...)
}

// ServiceStatus is a container of a non-database service as it stands.
type ServiceStatus struct {
	Service   string `json:"service"`
	State     string `json:"state"`
	Health    string `json:"health,omitempty"`
	Image     string `json:"image"`
	Container string `json:"container"`
}

// ServicesStatus reports the non-database services: one row per
// container Compose made for the project, and a "missing" row for each
// enabled service without one.
func (o *Orchestrator) ServicesStatus(ctx context.Context) ([]ServiceStatus, error) {
	existing, err := o.composeContainers(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for name := range existing {
		names[name] = true
	}
	for name := range o.project.Compose.Services {
		names[name] = true
	}
	var out []ServiceStatus
	for _, name := range slices.Sorted(maps.Keys(names)) {
		if o.isDatabaseService(name) {
			continue
		}
		cs := existing[name]
		if len(cs) == 0 {
			svc := o.project.Compose.Services[name]
			out = append(out, ServiceStatus{Service: name, State: "missing", Image: svc.Image})
			continue
		}
		for _, c := range cs {
			st := ServiceStatus{Service: name, State: string(c.State), Image: c.Image, Container: containerName(c)}
			if c.Health != nil {
				st.Health = string(c.Health.Status)
			}
			out = append(out, st)
		}
	}
	return out, nil
}

func (o *Orchestrator) isDatabaseService(service string) bool {
	for _, db := range o.project.Databases {
		if db.Service == service {
			return true
		}
	}
	return false
}

// ensureProjectNetworks creates the compose file's networks that the
// databases join (other than the default one, which ensureNetwork
// makes), labelled; external ones must exist. The networks only other
// services join are Compose's to make.
func (o *Orchestrator) ensureProjectNetworks(ctx context.Context) error {
	joined := map[string]bool{}
	for _, db := range o.project.Databases {
		svc, _ := o.project.Service(db.Service)
		for k := range svc.Networks {
			joined[k] = true
		}
	}
	for key, n := range o.project.Compose.Networks {
		if key == "default" || !joined[key] {
			continue
		}
		name := projectNetworkName(o.project, key)
		res, err := o.docker.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
		if err != nil {
			return fmt.Errorf("list networks: %w", err)
		}
		found := false
		for _, x := range res.Items {
			found = found || x.Name == name
		}
		if found {
			continue
		}
		if bool(n.External) {
			return fault.BadInput(fmt.Errorf("network %s is declared external but does not exist; create it with docker network create %s", name, name))
		}
		driver := n.Driver
		if driver == "" {
			driver = "bridge"
		}
		if _, err := o.docker.NetworkCreate(context.WithoutCancel(ctx), name, client.NetworkCreateOptions{Driver: driver, Internal: n.Internal, Labels: Labels(o.project.Name, "", RoleNetwork)}); err != nil && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("create network %s: %w", name, err)
		}
	}
	return nil
}
