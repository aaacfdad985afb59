package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
)

// StopTimeout is how long Down lets PostgreSQL shut down before the engine
// kills it.
const StopTimeout = 30 * time.Second

// Down stops the databases' containers and keeps them and their volumes, so
// the next Up starts them again with their data. Missing or stopped
// containers are fine.
func (o *Orchestrator) Down(ctx context.Context, dbs []compose.Database) error {
	existing, err := o.databaseContainers(ctx)
	if err != nil {
		return err
	}
	timeout := int(StopTimeout / time.Second)
	errs := o.stopWALStreams(ctx, dbs)
	for _, db := range dbs {
		c, ok := existing[db.Service]
		if !ok || c.State != container.StateRunning {
			continue
		}
		o.progress(fmt.Sprintf("%s: stopping container %s", db.Name, ContainerName(o.project, db)))
		if _, err := o.docker.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("stop %s: %w", db.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Removed lists what Nuke removed, by engine name, and the labelled
// volumes it kept.
type Removed struct {
	Containers []string `json:"containers"`
	Volumes    []string `json:"volumes"`
	Networks   []string `json:"networks"`
	// WALStreams are the removed WAL sidecars (aidb pitr), also in
	// Containers; their segments and base backups stay in the folder.
	WALStreams []string `json:"wal_streams"`
	// Kept are the project's volumes that hold no database of this nuke:
	// aidb took no backup of them, so they stay unless asked.
	Kept []KeptVolume `json:"kept_volumes"`
}

// KeptVolume is a labelled volume Nuke left alone, and why.
type KeptVolume struct {
	Name    string `json:"name"`
	Service string `json:"service"`
	Reason  string `json:"reason"`
}

// Nuke removes the databases' containers and the volumes that hold their
// data, found by label. With whole set (every database of the project), it
// removes every container labelled with the project, and the network.
//
// A volume is removed only when it holds a database of dbs: one the
// database's compose service names, or one its container mounts (the data
// a safety backup read). Every other labelled volume is kept and listed in
// Removed.Kept: a service's that is not a database, a database's that this
// configuration no longer names, one a changed compose file no longer
// mounts. aidb backed none of those up; allVolumes removes them too.
// Data in the removed volumes is gone: callers take a safety backup first.
// NotFound counts as removed.
//
// Once it starts, Nuke runs to its end even when ctx is cancelled (Ctrl-C):
// each removal takes an instant, the safety backup is already taken, and a
// half-removed project, reported as "undone", would be worse than a whole
// removal reported as done.
func (o *Orchestrator) Nuke(ctx context.Context, dbs []compose.Database, whole, allVolumes bool) (Removed, error) {
	ctx = context.WithoutCancel(ctx)
	n := &nuke{o: o, whole: whole, allVolumes: allVolumes,
		rm:          Removed{Containers: []string{}, Volumes: []string{}, Networks: []string{}, WALStreams: []string{}, Kept: []KeptVolume{}},
		nuked:       map[string]bool{},
		dataVolumes: map[string]bool{},
		f:           projectFilter(o.project.Name, "", ""),
		// Compose's containers, networks and volumes of the project are
		// found by its project label too (whatever made them: aidb labels
		// its own).
		cf: make(client.Filters).Add("label", ComposeProjectLabel+"="+o.project.Name),
	}
	for _, db := range dbs {
		n.nuked[db.Service] = true
		if svc, ok := o.project.Service(db.Service); ok {
			for _, v := range svc.Volumes {
				if v.Type == types.VolumeTypeVolume && v.Source != "" {
					n.dataVolumes[volumeName(o.project, v.Source)] = true
				}
			}
		}
	}
	if err := n.containers(ctx); err != nil {
		return n.rm, err
	}
	if err := n.volumes(ctx); err != nil {
		return n.rm, err
	}
	if whole {
		if err := n.networks(ctx); err != nil {
			return n.rm, err
		}
	}
	return n.rm, errors.Join(n.errs...)
}

// nuke is one Nuke: what it removes, what it removed and the errors it
// met removing things (a failure to list stops it).
type nuke struct {
	o                 *Orchestrator
	whole, allVolumes bool
	nuked             map[string]bool // the services nuked
	dataVolumes       map[string]bool // their data volumes, removed with them
	f, cf             client.Filters  // aidb's project label; Compose's
	rm                Removed
	errs              []error
}

// containers removes the nuked services' containers (every container of
// the project when whole).
func (n *nuke) containers(ctx context.Context) error {
	o := n.o
	cs, err := o.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: n.f})
	if err != nil {
		return fmt.Errorf("list containers of project %s: %w", o.project.Name, err)
	}
	if n.whole {
		ccs, err := o.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: n.cf})
		if err != nil {
			return fmt.Errorf("list containers of project %s: %w", o.project.Name, err)
		}
		cs.Items = unionBy(cs.Items, ccs.Items, func(c container.Summary) string { return c.ID })
	}
	for _, c := range cs.Items {
		svc := c.Labels[LabelService]
		if !n.whole && !n.nuked[svc] {
			continue
		}
		database := n.nuked[svc] && c.Labels[LabelRole] == RoleDatabase
		if database {
			for _, m := range c.Mounts {
				if m.Type == mount.TypeVolume && m.Name != "" {
					n.dataVolumes[m.Name] = true
				}
			}
		}
		// A database container's anonymous volumes go with it; another
		// service's stay (Docker keeps them, dangling), as its data might.
		if _, err := o.docker.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: database}); err != nil && !cerrdefs.IsNotFound(err) {
			n.errs = append(n.errs, fmt.Errorf("remove container %s: %w", containerName(c), err))
			continue
		}
		n.rm.Containers = append(n.rm.Containers, containerName(c))
		if c.Labels[LabelRole] == RoleWAL {
			n.rm.WALStreams = append(n.rm.WALStreams, containerName(c))
		}
	}
	return nil
}

// volumes removes the nuked services' data volumes (every volume of theirs
// with allVolumes; of the whole project when whole) and reports the rest
// as kept.
func (n *nuke) volumes(ctx context.Context) error {
	o := n.o
	vs, err := o.docker.VolumeList(ctx, client.VolumeListOptions{Filters: n.f})
	if err != nil {
		return fmt.Errorf("list volumes of project %s: %w", o.project.Name, err)
	}
	if n.whole {
		cvs, err := o.docker.VolumeList(ctx, client.VolumeListOptions{Filters: n.cf})
		if err != nil {
			return fmt.Errorf("list volumes of project %s: %w", o.project.Name, err)
		}
		vs.Items = unionBy(vs.Items, cvs.Items, func(v volume.Volume) string { return v.Name })
	}
	for _, v := range vs.Items {
		svc := v.Labels[LabelService]
		if !n.whole && !n.nuked[svc] {
			continue
		}
		if !n.dataVolumes[v.Name] && !n.allVolumes {
			n.rm.Kept = append(n.rm.Kept, KeptVolume{Name: v.Name, Service: svc, Reason: o.keptReason(svc, n.nuked)})
			continue
		}
		if _, err := o.docker.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			n.errs = append(n.errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			continue
		}
		n.rm.Volumes = append(n.rm.Volumes, v.Name)
	}
	return nil
}

// networks removes the project's networks (a whole nuke's).
func (n *nuke) networks(ctx context.Context) error {
	o := n.o
	ns, err := o.docker.NetworkList(ctx, client.NetworkListOptions{Filters: n.f})
	if err != nil {
		return fmt.Errorf("list networks of project %s: %w", o.project.Name, err)
	}
	cns, err := o.docker.NetworkList(ctx, client.NetworkListOptions{Filters: n.cf})
	if err != nil {
		return fmt.Errorf("list networks of project %s: %w", o.project.Name, err)
	}
	ns.Items = unionBy(ns.Items, cns.Items, func(n network.Summary) string { return n.ID })
	for _, nw := range ns.Items {
		if _, err := o.docker.NetworkRemove(ctx, nw.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			n.errs = append(n.errs, fmt.Errorf("remove network %s: %w", nw.Name, err))
			continue
		}
		n.rm.Networks = append(n.rm.Networks, nw.Name)
	}
	return nil
}

// keptReason says why Nuke keeps a volume of service svc.
func (o *Orchestrator) keptReason(svc string, nuked map[string]bool) string {
	switch {
	case nuked[svc]:
		return "a volume of " + svc + " that its configuration no longer mounts (not backed up)"
	case o.isDatabase(svc):
		return "a volume of database " + svc + ", not nuked"
	default:
		if _, ok := o.project.Service(svc); ok {
			return "a volume of service " + svc + ", which is not a database (aidb does not back it up)"
		}
		return "a volume of " + svc + ", which this configuration does not name (not backed up)"
	}
}

func (o *Orchestrator) isDatabase(svc string) bool {
	for _, db := range o.project.Databases {
		if db.Service == svc {
			return true
		}
	}
	return false
}

// unionBy is a followed by the items of b whose key a lacks.
func unionBy[T any](a, b []T, key func(T) string) []T {
	seen := map[string]bool{}
	for _, x := range a {
		seen[key(x)] = true
	}
	for _, x := range b {
		if !seen[key(x)] {
			a = append(a, x)
		}
	}
	return a
}

func containerName(c container.Summary) string {
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	return c.ID[:12]
}

// Status is one database as it stands now.
type Status struct {
	Name      string `json:"name"`
	Service   string `json:"service"`
	State     string `json:"state"` // running, exited, created, ..., or "missing"
	Ready     bool   `json:"ready"`
	Image     string `json:"image"`
	Container string `json:"container"`
	Volume    string `json:"volume"`
	Port      int    `json:"port"`
	// URL is a working postgres:// URL on this host, password included
	// (local development databases); never log it.
	URL string `json:"url"`
	// Upgrade says what an aidb upgrade of the database changed (nil:
	// none).
	Upgrade *UpgradeStatus `json:"upgrade,omitempty"`
}

// UpgradeStatus is an upgraded database as status shows it.
type UpgradeStatus struct {
	// Image is the reference it runs since its upgrade; ComposeImage the
	// one the compose file names, and ComposeBehind says that is still
	// the one it was upgraded from (the compose file wants changing).
	Image         string `json:"image"`
	ComposeImage  string `json:"compose_image"`
	ComposeBehind bool   `json:"compose_behind"`
	// Volume holds its data; Previous and PreviousVolume are what it was
	// upgraded from, kept until upgrade --finish ("" once removed).
	Volume         string `json:"volume"`
	Previous       string `json:"previous,omitempty"`
	PreviousVolume string `json:"previous_volume,omitempty"`
}

// StatusReadyTimeout bounds the SELECT 1 a status check runs per database.
const StatusReadyTimeout = 3 * time.Second

// Status reports each database's container state and whether it answers
// SELECT 1 (within StatusReadyTimeout).
func (o *Orchestrator) Status(ctx context.Context, dbs []compose.Database) ([]Status, error) {
	existing, err := o.databaseContainers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(dbs))
	for _, db := range dbs {
		st := Status{
			Name:      db.Name,
			Service:   db.Service,
			State:     "missing",
			Image:     db.Image,
			Container: ContainerName(o.project, db),
			Port:      db.HostPort,
			URL:       o.ConnString(db),
		}
		if svc, ok := o.project.Service(db.Service); ok {
			for _, v := range svc.Volumes {
				if v.Type == "volume" && v.Source != "" {
					st.Volume = volumeName(o.project, v.Source)
					break
				}
			}
		}
		if c, ok := existing[db.Service]; ok {
			st.State = string(c.State)
			st.Image = c.Image
			st.Container = containerName(c)
			if u := upgradeOf(c.Labels); u != nil {
				st.Volume = u.Volume
				st.Upgrade = &UpgradeStatus{Image: u.Image, ComposeImage: db.Image, ComposeBehind: db.Image == u.FromImage && db.Image != u.Image, Volume: u.Volume}
				if prev, err := o.kept(ctx, db, preUpgradeSuffix); err == nil && prev != nil {
					st.Upgrade.Previous, st.Upgrade.PreviousVolume = containerName(*prev), u.Replaces
				}
			}
			if c.State == container.StateRunning {
				pctx, cancel := context.WithTimeout(ctx, StatusReadyTimeout)
				st.Ready = o.ping(pctx, st.URL) == nil
				cancel()
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// NotUpError says a database does not answer: its container's state
// ("missing" when there is none) and the address tried. Up brings it up.
type NotUpError struct {
	Database string
	State    string
	Addr     string
	Err      error
}

func (e *NotUpError) Error() string {
	return fmt.Sprintf("%s is not up (container %s, nothing answers on %s): %v", e.Database, e.State, e.Addr, e.Err)
}

func (e *NotUpError) Unwrap() error { return e.Err }

// Kind is fault.NotRunning.
func (e *NotUpError) Kind() fault.Kind { return fault.NotRunning }

// RequireReady checks that the database answers SELECT 1 within
// StatusReadyTimeout; otherwise it returns a NotUpError.
func (o *Orchestrator) RequireReady(ctx context.Context, db compose.Database) error {
	pctx, cancel := context.WithTimeout(ctx, StatusReadyTimeout)
	defer cancel()
	err := o.Ping(pctx, db)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	state := "missing"
	existing, lerr := o.databaseContainers(ctx)
	if lerr == nil {
		if c, ok := existing[db.Service]; ok {
			state = string(c.State)
		}
	}
	// The server answers but refuses the compose file's login (its
	// password changed since the volume was initialised, say): that is
	// not "not up", and ai-db-up would not help.
	if ce := closedFailure(ContainerName(o.project, db), err); ce != nil {
		ce.Database, ce.DBName, ce.User = db.Name, db.DBName, db.User
		return ce
	}
	if le := loginFailure(ContainerName(o.project, db), err); le != nil {
		le.Database, le.User, le.DBName, le.Vars, le.AdminUser = db.Name, db.User, db.DBName, db.EnvVars, db.User
		if svc, ok := o.project.Service(db.Service); ok {
			le.Volume = o.dataVolume(svc)
		}
		if c, ok := existing[db.Service]; ok {
			if in, err := o.docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{}); err == nil {
				le.Keys = changedLogin(in.Container, db)
				le.AdminUser = asRun(db, in.Container).User
			}
		}
		return le
	}
	return &NotUpError{
		Database: db.Name,
		State:    state,
		Addr:     fmt.Sprintf("%s:%d", engineHostIP(o.docker.DaemonHost(), db.HostIP), db.HostPort),
		Err:      err,
	}
}

// Running is the database's container, which must be running; otherwise it
// returns a NotUpError.
func (o *Orchestrator) Running(ctx context.Context, db compose.Database) (container.Summary, error) {
	existing, err := o.databaseContainers(ctx)
	if err != nil {
		return container.Summary{}, err
	}
	c, ok := existing[db.Service]
	if !ok || c.State != container.StateRunning {
		state := "missing"
		if ok {
			state = string(c.State)
		}
		return container.Summary{}, &NotUpError{Database: db.Name, State: state, Addr: fmt.Sprintf("%s:%d", engineHostIP(o.docker.DaemonHost(), db.HostIP), db.HostPort), Err: fmt.Errorf("its container %s is not running", ContainerName(o.project, db))}
	}
	return c, nil
}

// Image is the image the database's running container runs: the one a
// backup of it names, and the one its verification restores into.
func (o *Orchestrator) Image(ctx context.Context, db compose.Database) (string, error) {
	c, err := o.Running(ctx, db)
	if err != nil {
		return "", err
	}
	return c.Image, nil
}

// Ping connects as db (ConnString) and runs SELECT 1, once.
func (o *Orchestrator) Ping(ctx context.Context, db compose.Database) error {
	return o.ping(ctx, o.ConnString(db))
}

// WaitReady waits for container id, serving db, to answer SELECT 1 with
// db's credentials, checking the container's state on every poll: at most
// the project's ready timeout (see waitReady). It names the container by
// its short ID.
func (o *Orchestrator) WaitReady(ctx context.Context, id string, db compose.Database) error {
	return waitReady(ctx, id[:min(12, len(id))], &engineTarget{o: o, id: id, db: db}, o.project.ReadyTimeout, o.pollInterval)
}
