package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/exitcode"
)

// PortTakenError says a database's host port is in use.
type PortTakenError struct {
	Database string
	Port     int
	// Holder is the container publishing the port, when it is one.
	Holder string
}

func (e *PortTakenError) Error() string {
	who := "another program on this machine"
	if e.Holder != "" {
		who = "container " + e.Holder
	}
	return fmt.Sprintf("start %s: host port %d is already taken by %s; stop it, or choose a free port with %s_PORT=<port>",
		e.Database, e.Port, who, strings.ToUpper(e.Database))
}

// undo records what one Up created, to remove it if the Up fails.
type undo struct {
	mu         sync.Mutex
	containers []string
	volumes    []string
	network    string
}

func (u *undo) addContainer(id string) {
	u.mu.Lock()
	u.containers = append(u.containers, id)
	u.mu.Unlock()
}
func (u *undo) addVolume(name string) {
	u.mu.Lock()
	u.volumes = append(u.volumes, name)
	u.mu.Unlock()
}

// run removes what was recorded; NotFound counts as removed.
func (u *undo) run(ctx context.Context, d *client.Client) error {
	var errs []error
	for _, id := range u.containers {
		if _, err := d.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", id, err))
		}
	}
	for _, v := range u.volumes {
		if _, err := d.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v, err))
		}
	}
	if u.network != "" {
		if _, err := d.NetworkRemove(ctx, u.network, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", u.network, err))
		}
	}
	return errors.Join(errs...)
}

// Up brings the databases up and ready: image, network, volumes, container,
// readiness (SELECT 1 within the project's ready timeout). Databases that are
// running and ready are left alone, so a second Up returns quickly; a stopped
// container is started again with its volume; a container whose service
// configuration changed is recreated, keeping its volume.
//
// If Up fails or ctx is cancelled, what this call created (containers,
// volumes, the network) is removed again, and nothing else.
func (o *Orchestrator) Up(ctx context.Context, dbs []compose.Database) (retErr error) {
	u := &undo{}
	defer func() {
		if retErr == nil {
			return
		}
		if err := u.run(context.WithoutCancel(ctx), o.docker); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("undo this run's work: %w", err))
		}
	}()

	existing, err := o.databaseContainers(ctx)
	if err != nil {
		return err
	}
	if err := o.ensureNetwork(ctx, u); err != nil {
		return err
	}
	if err := o.ensureProjectNetworks(ctx); err != nil {
		return err
	}

	// Images first, one at a time: two databases on postgres:15 share one
	// pull or build.
	images := map[string]string{}
	for _, db := range dbs {
		svc, _ := o.project.Service(db.Service)
		if c, ok := existing[db.Service]; ok && c.Labels[LabelConfigHash] == configHash(o.project, svc) {
			continue
		}
		if _, done := images[db.Image]; done {
			continue
		}
		ref, err := o.EnsureImage(ctx, db.Image)
		if err != nil {
			return err
		}
		images[db.Image] = ref
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, db := range dbs {
		g.Go(func() error {
			c, ok := existing[db.Service]
			return o.upOne(gctx, db, c, ok, images[db.Image], u)
		})
	}
	return g.Wait()
}

func (o *Orchestrator) upOne(ctx context.Context, db compose.Database, existing container.Summary, exists bool, image string, u *undo) error {
	svc, _ := o.project.Service(db.Service)
	hash := configHash(o.project, svc)
	name := ContainerName(o.project, db)

	id := ""
	if exists {
		if existing.Labels[LabelConfigHash] == hash {
			id = existing.ID
		} else {
			o.progress(fmt.Sprintf("%s: configuration changed, recreating container %s (its volume is kept)", db.Name, name))
			if _, err := o.docker.ContainerRemove(ctx, existing.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("remove outdated container %s: %w", name, err)
			}
		}
	}
	running := id != "" && existing.State == container.StateRunning

	if !running {
		if err := o.checkPort(ctx, db, id); err != nil {
			return err
		}
	}
	if id == "" {
		if err := o.ensureVolumes(ctx, db, u); err != nil {
			return err
		}
		spec, err := containerSpec(o.project, svc, name, RoleDatabase, image, hash)
		if err != nil {
			return exitcode.BadInput(err)
		}
		// Created without cancellation: a create abandoned mid-flight could
		// still happen in the engine, unrecorded, and escape the undo.
		res, err := o.docker.ContainerCreate(context.WithoutCancel(ctx), spec)
		if err == nil {
			u.addContainer(res.ID)
		}
		if err == nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if cerrdefs.IsConflict(err) {
				return fmt.Errorf("create container %s: a container of that name exists but aidb did not create it for project %s; remove or rename it (docker rm %s), or set AIDB_PROJECT to another project: %w", name, o.project.Name, name, err)
			}
			return fmt.Errorf("create container %s: %w", name, err)
		}
		id = res.ID
		for _, n := range serviceNetworks(o.project, svc)[1:] {
			if _, err := o.docker.NetworkConnect(ctx, n.name, client.NetworkConnectOptions{Container: id, EndpointConfig: &network.EndpointSettings{Aliases: n.aliases}}); err != nil {
				return fmt.Errorf("connect %s to network %s: %w", name, n.name, err)
			}
		}
	}
	if !running {
		o.progress(fmt.Sprintf("%s: starting container %s", db.Name, name))
		if _, err := o.docker.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			if isPortError(err) {
				return &PortTakenError{Database: db.Name, Port: db.HostPort, Holder: o.portHolder(ctx, db.HostPort, id)}
			}
			return fmt.Errorf("start container %s: %w", name, err)
		}
		o.progress(fmt.Sprintf("%s: waiting for SELECT 1 (up to %s)", db.Name, o.project.ReadyTimeout))
	}
	if err := waitReady(ctx, name, &engineTarget{o: o, id: id, db: db}, o.project.ReadyTimeout, o.pollInterval); err != nil {
		return err
	}
	o.progress(fmt.Sprintf("%s: ready on %s:%d", db.Name, engineHostIP(o.docker.DaemonHost(), db.HostIP), db.HostPort))
	return nil
}

// databaseContainers maps service name to the project's database containers.
func (o *Orchestrator) databaseContainers(ctx context.Context) (map[string]container.Summary, error) {
	res, err := o.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(o.project.Name, "", RoleDatabase)})
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", o.project.Name, err)
	}
	m := map[string]container.Summary{}
	for _, c := range res.Items {
		m[c.Labels[LabelService]] = c
	}
	return m, nil
}

// ensureNetwork creates the project network unless it exists.
func (o *Orchestrator) ensureNetwork(ctx context.Context, u *undo) error {
	name := NetworkName(o.project)
	res, err := o.docker.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return fmt.Errorf("list networks: %w", err)
	}
	for _, n := range res.Items {
		if n.Name == name { // the name filter matches substrings
			return nil
		}
	}
	if _, err := o.docker.NetworkCreate(context.WithoutCancel(ctx), name, client.NetworkCreateOptions{Driver: "bridge", Labels: Labels(o.project.Name, "", RoleNetwork)}); err != nil {
		if cerrdefs.IsConflict(err) {
			return nil // created meanwhile by a parallel up of the same project
		}
		return fmt.Errorf("create network %s: %w", name, err)
	}
	u.network = name
	return nil
}

// ensureVolumes creates the service's named volumes that do not exist yet.
// An existing volume is used as it is, labelled or not: it may hold data.
func (o *Orchestrator) ensureVolumes(ctx context.Context, db compose.Database, u *undo) error {
	svc, _ := o.project.Service(db.Service)
	for _, v := range svc.Volumes {
		if v.Type != "volume" || v.Source == "" {
			continue
		}
		name := volumeName(o.project, v.Source)
		if _, err := o.docker.VolumeInspect(ctx, name, client.VolumeInspectOptions{}); err == nil {
			continue
		} else if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("inspect volume %s: %w", name, err)
		}
		if top, ok := o.project.Compose.Volumes[v.Source]; ok && bool(top.External) {
			return exitcode.BadInput(fmt.Errorf("volume %s is declared external but does not exist; create it with docker volume create %s", name, name))
		}
		if _, err := o.docker.VolumeCreate(context.WithoutCancel(ctx), client.VolumeCreateOptions{Name: name, Labels: Labels(o.project.Name, db.Service, RoleData)}); err != nil {
			return fmt.Errorf("create volume %s: %w", name, err)
		}
		u.addVolume(name)
	}
	return nil
}

// checkPort fails early when the database's host port is published by
// another container or, for a local engine, bound by another program.
// self is the database's own container ID (empty when none exists).
func (o *Orchestrator) checkPort(ctx context.Context, db compose.Database, self string) error {
	if db.HostPort == 0 {
		return nil
	}
	if holder := o.portHolder(ctx, db.HostPort, self); holder != "" {
		return &PortTakenError{Database: db.Name, Port: db.HostPort, Holder: holder}
	}
	if !isLocalEngine(o.docker.DaemonHost()) {
		return nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(db.HostIP, strconv.Itoa(db.HostPort)))
	if err != nil {
		return &PortTakenError{Database: db.Name, Port: db.HostPort}
	}
	return l.Close()
}

// portHolder names the running container, other than self, that publishes
// port on the host; empty when none does.
func (o *Orchestrator) portHolder(ctx context.Context, port int, self string) string {
	res, err := o.docker.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		return ""
	}
	for _, c := range res.Items {
		if c.ID == self {
			continue
		}
		for _, p := range c.Ports {
			if int(p.PublicPort) == port && len(c.Names) > 0 {
				return strings.TrimPrefix(c.Names[0], "/")
			}
		}
	}
	return ""
}

func isPortError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "port is already allocated") || strings.Contains(s, "address already in use")
}
