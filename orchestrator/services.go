package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/graph"
	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/go-archive"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/fault"
)

// RoleService is the role of a compose service that is not a database.
const RoleService = "service"

// unsupported lists compose keys that change a service's behaviour and
// that aidb does not implement: a file using them is refused rather than
// run differently than Docker Compose would.
func unsupported(s types.ServiceConfig) []string {
	var keys []string
	add := func(cond bool, key string) {
		if cond {
			keys = append(keys, key)
		}
	}
	add(s.Deploy != nil, "deploy")
	add(len(s.Secrets) > 0, "secrets")
	add(len(s.Configs) > 0, "configs")
	add(len(s.CapAdd) > 0, "cap_add")
	add(len(s.CapDrop) > 0, "cap_drop")
	add(s.Privileged, "privileged")
	add(len(s.Devices) > 0, "devices")
	add(s.NetworkMode != "", "network_mode")
	add(len(s.Links) > 0, "links")
	add(s.Pid != "", "pid")
	add(s.Ipc != "", "ipc")
	add(len(s.ExtraHosts) > 0, "extra_hosts")
	add(len(s.DNS) > 0, "dns")
	add(len(s.Sysctls) > 0, "sysctls")
	add(len(s.Ulimits) > 0, "ulimits")
	add(len(s.Tmpfs) > 0, "tmpfs")
	add(s.Init != nil && *s.Init, "init")
	add(s.ReadOnly, "read_only")
	add(s.StopGracePeriod != nil, "stop_grace_period")
	add(s.Scale != nil && *s.Scale != 1, "scale")
	add(len(s.PostStart) > 0 || len(s.PreStop) > 0, "post_start/pre_stop")
	return keys
}

// UpAll brings every service of the compose file up in depends_on order:
// the databases as Up does, the other services from their image (pulled,
// or built through the engine from their build context), each started
// once its dependencies meet their condition (service_started,
// service_healthy by the engine's healthcheck, or
// service_completed_successfully). Services already running with the same
// configuration are left alone; a changed one is recreated.
//
// A dependency that never becomes healthy fails the run after the ready
// timeout; what was started is left running for inspection, and the
// error is a LeftRunningError.
func (o *Orchestrator) UpAll(ctx context.Context) error {
	cp := o.project.Compose
	if err := graph.CheckCycle(cp); err != nil {
		return fault.BadInput(fmt.Errorf("%s: %w", o.project.ComposeFile, err))
	}
	dbs := map[string]compose.Database{}
	for _, db := range o.project.Databases {
		dbs[db.Service] = db
	}
	for _, name := range cp.ServiceNames() {
		svc := cp.Services[name]
		if _, isDB := dbs[name]; isDB {
			continue
		}
		if keys := unsupported(svc); len(keys) > 0 {
			return fault.BadInput(fmt.Errorf("%s: service %s uses %s, which aidb does not support; remove it, or run this file with docker compose", o.project.ComposeFile, name, strings.Join(keys, ", ")))
		}
		if svc.Image == "" && svc.Build == nil {
			return fault.BadInput(fmt.Errorf("%s: service %s has neither image nor build", o.project.ComposeFile, name))
		}
	}
	if err := o.ensureNetwork(ctx, &undo{}); err != nil {
		return err
	}
	if err := o.ensureProjectNetworks(ctx); err != nil {
		return err
	}
	err := graph.InDependencyOrder(ctx, cp, func(ctx context.Context, name string, svc types.ServiceConfig) error {
		for dep, cfg := range svc.DependsOn {
			if err := o.waitCondition(ctx, name, dep, cfg.Condition); err != nil {
				return err
			}
		}
		if db, ok := dbs[name]; ok {
			return o.Up(ctx, []compose.Database{db})
		}
		return o.upService(ctx, svc)
	})
	if err != nil && ctx.Err() == nil && fault.KindOf(err) != fault.Invalid {
		return &LeftRunningError{Err: err}
	}
	return err
}

// LeftRunningError is a failed UpAll: the services the run started are
// left running for inspection (Down stops them, Nuke removes everything).
type LeftRunningError struct{ Err error }

func (e *LeftRunningError) Error() string {
	return fmt.Sprintf("%v\nthe services this run started are left running for inspection", e.Err)
}

func (e *LeftRunningError) Unwrap() error { return e.Err }

// serviceContainers maps service name to the project's service containers.
func (o *Orchestrator) serviceContainers(ctx context.Context) (map[string]container.Summary, error) {
	res, err := o.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(o.project.Name, "", "")})
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", o.project.Name, err)
	}
	m := map[string]container.Summary{}
	for _, c := range res.Items {
		if strings.HasSuffix(containerName(c), previousSuffix) {
			continue // set aside by a database's replacement
		}
		if r := c.Labels[LabelRole]; r == RoleService || r == RoleDatabase {
			m[c.Labels[LabelService]] = c
		}
	}
	return m, nil
}

func serviceContainerName(p *compose.Project, svc types.ServiceConfig) string {
	if svc.ContainerName != "" {
		return svc.ContainerName
	}
	return p.Name + "-" + svc.Name
}

// upService creates (or recreates, or starts) one non-database service.
func (o *Orchestrator) upService(ctx context.Context, svc types.ServiceConfig) error {
	existing, err := o.serviceContainers(ctx)
	if err != nil {
		return err
	}
	name := serviceContainerName(o.project, svc)
	hash := configHash(o.project, svc)
	if c, ok := existing[svc.Name]; ok {
		if c.Labels[LabelConfigHash] == hash {
			if c.State == container.StateRunning {
				return nil
			}
			o.progress(fmt.Sprintf("%s: starting container %s", svc.Name, name))
			if _, err := o.docker.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
				return fmt.Errorf("start %s: %w", name, err)
			}
			return nil
		}
		o.progress(fmt.Sprintf("%s: configuration changed, recreating container %s", svc.Name, name))
		if _, err := o.docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove outdated container %s: %w", name, err)
		}
	}
	image, err := o.serviceImage(ctx, svc)
	if err != nil {
		return err
	}
	if err := o.ensureServiceVolumes(ctx, svc); err != nil {
		return err
	}
	spec, err := containerSpec(o.project, svc, name, RoleService, image, hash)
	if err != nil {
		return fault.BadInput(err)
	}
	res, err := o.docker.ContainerCreate(context.WithoutCancel(ctx), spec)
	if err != nil {
		return fmt.Errorf("create container %s: %w", name, err)
	}
	for _, n := range serviceNetworks(o.project, svc)[1:] {
		if _, err := o.docker.NetworkConnect(ctx, n.name, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: &network.EndpointSettings{Aliases: n.aliases}}); err != nil {
			return fmt.Errorf("connect %s to network %s: %w", name, n.name, err)
		}
	}
	o.progress(fmt.Sprintf("%s: starting container %s", svc.Name, name))
	if _, err := o.docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		if isPortError(err) {
			return fmt.Errorf("start %s: a host port it publishes is taken: %w", name, err)
		}
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

// ensureServiceVolumes creates the named volumes a service mounts.
func (o *Orchestrator) ensureServiceVolumes(ctx context.Context, svc types.ServiceConfig) error {
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			continue
		}
		name := volumeName(o.project, v.Source)
		if _, err := o.docker.VolumeInspect(ctx, name, client.VolumeInspectOptions{}); err == nil {
			continue
		}
		if _, err := o.docker.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: Labels(o.project.Name, svc.Name, RoleData)}); err != nil {
			return fmt.Errorf("create volume %s: %w", name, err)
		}
	}
	return nil
}

// serviceImage returns the image to run: built from the service's build
// context when it has one, else present or pulled.
func (o *Orchestrator) serviceImage(ctx context.Context, svc types.ServiceConfig) (string, error) {
	ref := svc.Image
	if ref == "" {
		ref = o.project.Name + "-" + svc.Name
	}
	if svc.Build != nil {
		return ref, o.build(ctx, svc, ref)
	}
	if ok, err := o.imagePresent(ctx, ref); err != nil || ok {
		return ref, err
	}
	o.progress(fmt.Sprintf("%s: pulling %s", svc.Name, ref))
	if err := o.pull(ctx, ref); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("image %s of service %s is not here and cannot be pulled (%v); build it, or give the service a build: context", ref, svc.Name, err)
	}
	return ref, nil
}

// build builds a service's image through the engine's build API.
func (o *Orchestrator) build(ctx context.Context, svc types.ServiceConfig, ref string) error {
	dir := svc.Build.Context
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(o.project.WorkingDir, dir)
	}
	tar, err := archive.TarWithOptions(dir, &archive.TarOptions{})
	if err != nil {
		return fmt.Errorf("build %s: read its context %s: %w", svc.Name, dir, err)
	}
	defer tar.Close()
	o.progress(fmt.Sprintf("%s: building %s from %s", svc.Name, ref, dir))
	res, err := o.docker.ImageBuild(ctx, tar, client.ImageBuildOptions{Tags: []string{ref}, Dockerfile: svc.Build.Dockerfile, Remove: true, Labels: Labels(o.project.Name, svc.Name, RoleService)})
	if err != nil {
		return fmt.Errorf("build %s: %w", svc.Name, err)
	}
	defer res.Body.Close()
	if err := drainJSONStream(res.Body); err != nil {
		return fmt.Errorf("build %s (image %s): %w", svc.Name, ref, err)
	}
	return nil
}

// waitCondition waits until dependency dep of service name meets the
// depends_on condition, for at most the project's ready timeout.
func (o *Orchestrator) waitCondition(ctx context.Context, name, dep, condition string) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(parent, o.project.ReadyTimeout)
	defer cancel()
	for {
		existing, err := o.serviceContainers(ctx)
		if err != nil {
			if ctx.Err() != nil { // the deadline, or Ctrl-C, came during the call
				return o.waitEnded(parent, name, dep, "", condition)
			}
			return err
		}
		c, ok := existing[dep]
		if !ok {
			return fmt.Errorf("%s depends on %s, which has no container", name, dep)
		}
		in, err := o.docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return o.waitEnded(parent, name, dep, c.ID, condition)
			}
			return err
		}
		st := in.Container.State
		switch condition {
		case types.ServiceConditionCompletedSuccessfully:
			if st != nil && !st.Running && st.Status == container.StateExited {
				if st.ExitCode == 0 {
					return nil
				}
				return o.notMet(ctx, name, dep, c.ID, fmt.Sprintf("exited with code %d", st.ExitCode))
			}
		case types.ServiceConditionHealthy:
			if in.Container.Config != nil && (in.Container.Config.Healthcheck == nil || len(in.Container.Config.Healthcheck.Test) == 0 || in.Container.Config.Healthcheck.Test[0] == "NONE") {
				if !o.isDatabaseService(dep) {
					return fault.BadInput(fmt.Errorf("%s depends on %s being healthy, but %s has no healthcheck", name, dep, dep))
				}
			}
			if st != nil && !st.Running {
				return o.notMet(ctx, name, dep, c.ID, "stopped")
			}
			if st != nil && st.Health != nil {
				switch st.Health.Status {
				case container.Healthy:
					return nil
				case container.Unhealthy:
					return o.notMet(ctx, name, dep, c.ID, "is unhealthy")
				}
			} else if st != nil && st.Running {
				return nil // a database without an engine healthcheck: Up waited for SELECT 1
			}
		default: // service_started
			if st != nil && st.Running {
				return nil
			}
			if st != nil && st.Status == container.StateExited {
				return nil // started, and already done
			}
		}
		select {
		case <-ctx.Done():
			return o.waitEnded(parent, name, dep, c.ID, condition)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitEnded is how a depends_on wait ends when its context does: Ctrl-C
// (the parent's cancellation, whatever its cause) as itself, the
// deadline as the condition unmet, with the dependency's last log lines.
func (o *Orchestrator) waitEnded(parent context.Context, name, dep, id, condition string) error {
	if err := parent.Err(); err != nil {
		return err
	}
	return o.notMet(context.WithoutCancel(parent), name, dep, id, fmt.Sprintf("did not become %s within %s", strings.TrimPrefix(condition, "service_"), o.project.ReadyTimeout))
}

func (o *Orchestrator) notMet(ctx context.Context, name, dep, id, what string) error {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	logs, _ := containerLogs(lctx, o.docker, id, readyLogLines)
	return fmt.Errorf("%s waits for %s, which %s; its last log lines:\n%s", name, dep, what, indent(strings.TrimRight(logs, "\n")))
}

// DownAll stops every container of the project, keeping volumes.
func (o *Orchestrator) DownAll(ctx context.Context) error {
	existing, err := o.serviceContainers(ctx)
	if err != nil {
		return err
	}
	timeout := int(StopTimeout / time.Second)
	var errs []error
	for svc, c := range existing {
		if c.State != container.StateRunning {
			continue
		}
		o.progress(fmt.Sprintf("%s: stopping container %s", svc, containerName(c)))
		if _, err := o.docker.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("stop %s: %w", svc, err))
		}
	}
	return errors.Join(errs...)
}

// ServiceStatus is a non-database service as it stands.
type ServiceStatus struct {
	Service   string `json:"service"`
	State     string `json:"state"`
	Health    string `json:"health,omitempty"`
	Image     string `json:"image"`
	Container string `json:"container"`
}

// ServicesStatus reports every non-database service of the compose file.
func (o *Orchestrator) ServicesStatus(ctx context.Context) ([]ServiceStatus, error) {
	existing, err := o.serviceContainers(ctx)
	if err != nil {
		return nil, err
	}
	var out []ServiceStatus
	for _, name := range o.project.Compose.ServiceNames() {
		if o.isDatabaseService(name) {
			continue
		}
		svc := o.project.Compose.Services[name]
		st := ServiceStatus{Service: name, State: "missing", Image: svc.Image, Container: serviceContainerName(o.project, svc)}
		if c, ok := existing[name]; ok {
			st.State, st.Image, st.Container = string(c.State), c.Image, containerName(c)
			if c.Health != nil {
				st.Health = string(c.Health.Status)
			}
		}
		out = append(out, st)
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

// ensureProjectNetworks creates the compose file's networks (other than
// the default one, which ensureNetwork makes), labelled; external ones
// must exist.
func (o *Orchestrator) ensureProjectNetworks(ctx context.Context) error {
	for key, n := range o.project.Compose.Networks {
		if key == "default" {
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
