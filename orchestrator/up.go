package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
)

// PortTakenError says a database's host port is in use.
type PortTakenError struct {
	Database string
	Port     int
	// Holder is the container publishing the port, when it is one.
	Holder string
	// Existing says the port is the one an existing container was created
	// with, started as it is (StartExisting): a new port in the
	// environment does not change it; only an up that replaces the
	// container does.
	Existing bool
}

func (e *PortTakenError) Error() string {
	who := "another program on this machine"
	if e.Holder != "" {
		who = "container " + e.Holder
	}
	if e.Existing {
		return fmt.Sprintf("start %s: host port %d, which its container was created with, is already taken by %s; stop that, or move %s to a free port first with %s_PORT=<port> aidb up %s",
			e.Database, e.Port, who, e.Database, strings.ToUpper(e.Database), e.Database)
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
func (u *undo) run(ctx context.Context, d Docker) error {
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
// configuration changed is replaced, keeping its volume, without taking a
// working database down (see replace).
//
// What can be checked is checked before any container is touched: the
// service translates to a container, host ports are free (or held by the
// very container being replaced), images are present or obtained. A
// container an interrupted replacement left as <name>-aidb-previous is put
// back when the database has no other, else removed.
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

	// Bad input is refused before anything changes, litter included.
	for _, db := range dbs {
		svc, _ := o.project.Service(db.Service)
		if _, err := containerSpec(o.project, svc, ContainerName(o.project, db), RoleDatabase, db.Image, ""); err != nil {
			return fault.BadInput(err)
		}
	}
	if err := o.clearPrevious(ctx, dbs); err != nil {
		return err
	}
	existing, err := o.databaseContainers(ctx)
	if err != nil {
		return err
	}
	plans := make([]upPlan, len(dbs))
	for i, db := range dbs {
		plans[i] = o.plan(db, existing)
	}
	for _, pl := range plans {
		if pl.action == actionKeep {
			continue
		}
		if err := o.checkDataVolumes(pl); err != nil {
			return pl.kept(err)
		}
		if err := o.checkPort(ctx, pl.db, pl.old); err != nil {
			return pl.kept(err)
		}
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
	for _, pl := range plans {
		if pl.action != actionCreate && pl.action != actionReplace {
			continue
		}
		if _, done := images[pl.db.Image]; done {
			continue
		}
		ref, err := o.EnsureImage(ctx, pl.db.Image)
		if err != nil {
			return pl.kept(err)
		}
		images[pl.db.Image] = ref
	}
	// An image of another major than the volume's data would not start on
	// it: refused before any container is touched.
	for _, pl := range plans {
		if err := o.checkMajor(ctx, pl, images[pl.db.Image]); err != nil {
			return pl.kept(err)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, pl := range plans {
		g.Go(func() error {
			return o.upOne(gctx, pl, images[pl.db.Image], u)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	o.startWALStreams(ctx, dbs)
	return nil
}

// What Up does with one database's container.
const (
	actionKeep    = iota // running with this configuration: wait for SELECT 1
	actionStart          // stopped with this configuration: start it
	actionCreate         // none yet: create it
	actionReplace        // configuration changed: replace it
)

// upPlan is one database of an Up: what exists, and what to do.
type upPlan struct {
	db     compose.Database
	svc    types.ServiceConfig
	hash   string
	name   string
	old    *container.Summary // the existing container, if any
	action int
	// volumes maps a volume the compose file names to the one mounted in
	// its place (an upgraded database's: applyUpgrade).
	volumes map[string]string
	// labels are added to the new container's (an upgrade's).
	labels map[string]string
	// keepAs, if set, is the name a replaced container keeps, stopped,
	// instead of being removed (an upgrade's previous container).
	keepAs string
}

func (o *Orchestrator) plan(db compose.Database, existing map[string]container.Summary) upPlan {
	svc, _ := o.project.Service(db.Service)
	pl := upPlan{db: db, svc: svc, hash: configHash(o.project, svc), name: ContainerName(o.project, db), action: actionCreate}
	c, ok := existing[db.Service]
	if !ok {
		return pl
	}
	pl.old = &c
	pl.applyUpgrade(c.Labels)
	switch {
	case c.Labels[LabelConfigHash] != pl.hash:
		pl.action = actionReplace
	case c.State == container.StateRunning:
		pl.action = actionKeep
	default:
		pl.action = actionStart
	}
	return pl
}

// kept wraps a failure before the existing container was touched: it says
// that the database is as it was.
func (pl upPlan) kept(err error) error {
	if pl.old == nil || fault.KindOf(err) == fault.Invalid {
		return err
	}
	running := pl.old.State == container.StateRunning
	return &KeptError{Database: pl.db.Name, Container: pl.name, Running: running, Port: publishedPort(*pl.old), Err: err}
}

func (o *Orchestrator) upOne(ctx context.Context, pl upPlan, image string, u *undo) error {
	db := pl.db
	switch pl.action {
	case actionReplace:
		return o.replace(ctx, pl, image, u)
	case actionKeep:
		if err := o.waitReady(ctx, pl, pl.old.ID); err != nil {
			return err
		}
	case actionStart:
		if err := o.startAndWait(ctx, pl, pl.old.ID); err != nil {
			return err
		}
	case actionCreate:
		if err := o.ensureVolumes(ctx, db, u, nil); err != nil {
			return err
		}
		id, err := o.createContainer(ctx, pl, image)
		if id != "" {
			u.addContainer(id)
		}
		if err != nil {
			return err
		}
		if err := o.startAndWait(ctx, pl, id); err != nil {
			return err
		}
	}
	o.progress(fmt.Sprintf("%s: ready on %s:%d", db.Name, engineHostIP(o.docker.DaemonHost(), db.HostIP), db.HostPort))
	if drift := o.CollationDrift(ctx, db); drift != "" {
		o.progress(fmt.Sprintf("%s: warning: %s", db.Name, drift))
	}
	return nil
}

// createContainer creates the database's container from its service
// configuration, joined to its networks. It returns the container's ID
// whenever one was created, also with an error.
func (o *Orchestrator) createContainer(ctx context.Context, pl upPlan, image string) (string, error) {
	spec, err := containerSpec(o.project, pl.svc, pl.name, RoleDatabase, image, pl.hash)
	if err != nil {
		return "", fault.BadInput(err)
	}
	for i, m := range spec.HostConfig.Mounts {
		if m.Type == mount.TypeVolume {
			spec.HostConfig.Mounts[i].Source = pl.volumeFor(m.Source)
		}
	}
	maps.Copy(spec.Config.Labels, pl.labels)
	// Created without cancellation: a create abandoned mid-flight could
	// still happen in the engine, unrecorded, and escape the undo.
	res, err := o.docker.ContainerCreate(context.WithoutCancel(ctx), spec)
	if err != nil {
		if cerrdefs.IsConflict(err) {
			return "", fmt.Errorf("create container %s: a container of that name exists but aidb did not create it for project %s; remove or rename it (docker rm %s), or set AIDB_PROJECT to another project: %w", pl.name, o.project.Name, pl.name, err)
		}
		return "", fmt.Errorf("create container %s: %w", pl.name, err)
	}
	if err := ctx.Err(); err != nil {
		return res.ID, err
	}
	for _, n := range serviceNetworks(o.project, pl.svc)[1:] {
		if _, err := o.docker.NetworkConnect(ctx, n.name, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: &network.EndpointSettings{Aliases: n.aliases}}); err != nil {
			return res.ID, fmt.Errorf("connect %s to network %s: %w", pl.name, n.name, err)
		}
	}
	return res.ID, nil
}

// startAndWait starts container id and waits for the database to answer
// SELECT 1 (at most the project's ready timeout).
func (o *Orchestrator) startAndWait(ctx context.Context, pl upPlan, id string) error {
	o.progress(fmt.Sprintf("%s: starting container %s", pl.db.Name, pl.name))
	if _, err := o.docker.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		if isPortError(err) {
			return &PortTakenError{Database: pl.db.Name, Port: pl.db.HostPort, Holder: o.portHolder(ctx, pl.db.HostPort, id)}
		}
		return fmt.Errorf("start container %s: %w", pl.name, err)
	}
	o.progress(fmt.Sprintf("%s: waiting for SELECT 1 (up to %s)", pl.db.Name, o.project.ReadyTimeout))
	return o.waitReady(ctx, pl, id)
}

// waitReady waits for the database in container id to answer SELECT 1 with
// its configured credentials (at most the project's ready timeout); a
// refused login says which settings to look at.
func (o *Orchestrator) waitReady(ctx context.Context, pl upPlan, id string) error {
	err := waitReady(ctx, pl.name, &engineTarget{o: o, id: id, db: pl.db}, o.project.ReadyTimeout, o.pollInterval)
	var ce *ClosedError
	if errors.As(err, &ce) {
		ce.Database, ce.DBName, ce.User = pl.db.Name, pl.db.DBName, pl.db.User
	}
	var le *LoginError
	if errors.As(err, &le) {
		le.Database, le.User, le.DBName, le.Vars = pl.db.Name, pl.db.User, pl.db.DBName, pl.db.EnvVars
		le.AdminUser = pl.db.User
		le.Volume = o.dataVolume(pl.svc)
	}
	return err
}

// dataVolume is the engine name of the service's first named volume, or "".
func (o *Orchestrator) dataVolume(svc types.ServiceConfig) string {
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Source != "" {
			return volumeName(o.project, v.Source)
		}
	}
	return ""
}

// previousSuffix ends the name a database container has while its
// successor starts: it is kept, stopped and still labelled, until the
// successor is ready.
const previousSuffix = "-aidb-previous"

// databaseContainerSets maps service name to the project's database
// containers: current, and previous ones (renamed <name>-aidb-previous by a
// replacement that has not finished).
func (o *Orchestrator) databaseContainerSets(ctx context.Context) (current, previous map[string]container.Summary, err error) {
	res, err := o.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(o.project.Name, "", RoleDatabase)})
	if err != nil {
		return nil, nil, fmt.Errorf("list containers of project %s: %w", o.project.Name, err)
	}
	current, previous = map[string]container.Summary{}, map[string]container.Summary{}
	for _, c := range res.Items {
		if n := containerName(c); strings.HasSuffix(n, preUpgradeSuffix) || strings.HasSuffix(n, upgradedSuffix) {
			continue // an upgrade's previous container, or the upgraded one while a rollback runs
		}
		if strings.HasSuffix(containerName(c), previousSuffix) {
			previous[c.Labels[LabelService]] = c
		} else {
			current[c.Labels[LabelService]] = c
		}
	}
	return current, previous, nil
}

// databaseContainers maps service name to the project's database
// containers. Where only the container a replacement set aside is left
// (<name>-aidb-previous, after aidb was killed), it stands for the
// database, so status shows it and nuke backs its data up first.
func (o *Orchestrator) databaseContainers(ctx context.Context) (map[string]container.Summary, error) {
	current, previous, err := o.databaseContainerSets(ctx)
	if err != nil {
		return nil, err
	}
	for svc, c := range previous {
		if _, ok := current[svc]; !ok {
			current[svc] = c
		}
	}
	return current, nil
}

// clearPrevious deals with what a killed replacement left: a database's
// <name>-aidb-previous container is renamed back when the database has no
// other container, else removed (its volume, shared with the current
// container, is kept).
func (o *Orchestrator) clearPrevious(ctx context.Context, dbs []compose.Database) error {
	current, previous, err := o.databaseContainerSets(ctx)
	if err != nil {
		return err
	}
	for _, db := range dbs {
		p, ok := previous[db.Service]
		if !ok {
			continue
		}
		name := ContainerName(o.project, db)
		if _, ok := current[db.Service]; !ok {
			o.progress(fmt.Sprintf("%s: putting back container %s, which an interrupted aidb up left as %s", db.Name, name, containerName(p)))
			if _, err := o.docker.ContainerRename(context.WithoutCancel(ctx), p.ID, client.ContainerRenameOptions{NewName: name}); err != nil {
				return fmt.Errorf("rename container %s back to %s: %w", containerName(p), name, err)
			}
			continue
		}
		o.progress(fmt.Sprintf("%s: removing %s, the container an interrupted aidb up had replaced (the volume and its data are kept)", db.Name, containerName(p)))
		if _, err := o.docker.ContainerRemove(context.WithoutCancel(ctx), p.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove container %s: %w", containerName(p), err)
		}
	}
	return nil
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

// ensureVolumes creates the service's named volumes that do not exist yet,
// but for those another stands in for (an upgraded database's, in
// instead). An existing volume is used as it is, labelled or not: it may
// hold data.
func (o *Orchestrator) ensureVolumes(ctx context.Context, db compose.Database, u *undo, instead map[string]string) error {
	svc, _ := o.project.Service(db.Service)
	for _, v := range svc.Volumes {
		if v.Type != "volume" || v.Source == "" {
			continue
		}
		name := volumeName(o.project, v.Source)
		if _, ok := instead[name]; ok {
			continue
		}
		if _, err := o.docker.VolumeInspect(ctx, name, client.VolumeInspectOptions{}); err == nil {
			continue
		} else if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("inspect volume %s: %w", name, err)
		}
		if top, ok := o.project.Compose.Volumes[v.Source]; ok && bool(top.External) {
			return fault.BadInput(fmt.Errorf("volume %s is declared external but does not exist; create it with docker volume create %s", name, name))
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
// old is the database's own container (nil when none exists): a port it
// publishes counts as free, since it is stopped before its successor starts.
func (o *Orchestrator) checkPort(ctx context.Context, db compose.Database, old *container.Summary) error {
	if db.HostPort == 0 {
		return nil
	}
	self := ""
	if old != nil {
		self = old.ID
	}
	if holder := o.portHolder(ctx, db.HostPort, self); holder != "" {
		return &PortTakenError{Database: db.Name, Port: db.HostPort, Holder: holder}
	}
	if !isLocalEngine(o.docker.DaemonHost()) {
		return nil
	}
	if old != nil && old.State == container.StateRunning && publishedPort(*old) == db.HostPort {
		return nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(db.HostIP, strconv.Itoa(db.HostPort)))
	if err != nil {
		return &PortTakenError{Database: db.Name, Port: db.HostPort}
	}
	return l.Close()
}

// publishedPort is the host port a container publishes PostgreSQL's port
// on, 0 when none (a stopped container lists none).
func publishedPort(c container.Summary) int {
	for _, p := range c.Ports {
		if int(p.PrivatePort) == compose.PostgresPort && p.PublicPort != 0 {
			return int(p.PublicPort)
		}
	}
	return 0
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

// checkDataVolumes refuses a replacement that would leave a named volume
// the old container mounts (its data) out of the new one: a compose file
// that renamed the volume, or mounts another at its path, would bring the
// database up empty, the data sitting unused in the old volume (and taken
// for litter later). aidb never moves data between volumes by itself.
func (o *Orchestrator) checkDataVolumes(pl upPlan) error {
	if pl.action != actionReplace || pl.old == nil {
		return nil
	}
	want := map[string]string{} // mount path -> volume name the configuration gives it
	for _, v := range pl.svc.Volumes {
		switch v.Type {
		case types.VolumeTypeVolume:
			if v.Source != "" {
				want[v.Target] = pl.volumeFor(volumeName(o.project, v.Source))
			} else {
				want[v.Target] = "an anonymous volume"
			}
		default:
			want[v.Target] = "a " + v.Type + " mount of " + v.Source
		}
	}
	for _, m := range pl.old.Mounts {
		if m.Type != mount.TypeVolume || m.Name == "" || m.Name == want[m.Destination] {
			continue
		}
		now, ok := want[m.Destination]
		if !ok {
			now = "nothing"
		}
		return fault.BadInput(fmt.Errorf("%s: the compose file now puts %s at %s, where container %s keeps its data in volume %s: up would start %s without that data; "+
			"aidb does not move data between volumes: put the volume back in the compose file, or back %s up, nuke it, bring it up on the new volume and restore the backup; nothing was changed",
			pl.db.Name, now, m.Destination, pl.name, m.Name, pl.db.Name, pl.db.Name))
	}
	return nil
}
