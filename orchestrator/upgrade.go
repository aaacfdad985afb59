package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
)

// The labels an upgraded database's container and its new volume carry
// (aidb upgrade). They are how aidb remembers an upgrade: Docker labels
// cannot change, but a container and a volume live exactly as long as the
// upgrade they describe, and up, status, nuke and the next upgrade read
// them from the engine wherever aidb runs, with no state file to lose or
// to keep beside the compose file.
const (
	// LabelUpgradeImage is the image reference the database runs since
	// the upgrade (postgres:17).
	LabelUpgradeImage = "aidb.upgrade.image"
	// LabelUpgradeFrom is the image the compose file named when the
	// database was upgraded: while it still names that one, up runs
	// LabelUpgradeImage instead.
	LabelUpgradeFrom = "aidb.upgrade.from-image"
	// LabelUpgradeVolume is the volume the upgraded data lives in, which
	// stands for LabelUpgradeComposeVolume (the volume the compose file
	// names) from then on.
	LabelUpgradeVolume        = "aidb.upgrade.volume"
	LabelUpgradeComposeVolume = "aidb.upgrade.compose-volume"
	// LabelUpgradeReplaces is the volume the data was upgraded from: the
	// previous container's, removed by upgrade --finish.
	LabelUpgradeReplaces = "aidb.upgrade.replaces"
)

// RoleUpgrade is the container an upgrade restores the backup into, on the
// new volume, before the database is switched to it.
const RoleUpgrade = "upgrade"

// preUpgradeSuffix ends the name of the container an upgrade replaced,
// kept stopped (with its volume) until upgrade --finish or --rollback;
// upgradedSuffix the upgraded one's while a rollback puts the previous
// one back.
const (
	preUpgradeSuffix = "-aidb-pre-upgrade"
	upgradedSuffix   = "-aidb-upgraded"
)

// Upgrade is what the labels of an upgraded database's container say.
type Upgrade struct {
	Image, FromImage, Volume, ComposeVolume, Replaces string
}

// upgradeOf reads an upgrade from a container's labels; nil when it was
// not upgraded.
func upgradeOf(labels map[string]string) *Upgrade {
	if labels[LabelUpgradeImage] == "" || labels[LabelUpgradeVolume] == "" {
		return nil
	}
	return &Upgrade{Image: labels[LabelUpgradeImage], FromImage: labels[LabelUpgradeFrom], Volume: labels[LabelUpgradeVolume],
		ComposeVolume: labels[LabelUpgradeComposeVolume], Replaces: labels[LabelUpgradeReplaces]}
}

// Labels are u as labels.
func (u Upgrade) Labels() map[string]string {
	return map[string]string{LabelUpgradeImage: u.Image, LabelUpgradeFrom: u.FromImage, LabelUpgradeVolume: u.Volume,
		LabelUpgradeComposeVolume: u.ComposeVolume, LabelUpgradeReplaces: u.Replaces}
}

// applyUpgrade makes a plan for a database whose container was upgraded
// keep the upgrade: its volume stands for the compose file's, its labels
// are carried on to a replacement, and while the compose file still names
// the image the database was upgraded from, the upgrade's image runs.
func (pl *upPlan) applyUpgrade(labels map[string]string) {
	u := upgradeOf(labels)
	if u == nil {
		return
	}
	pl.volumes = map[string]string{u.ComposeVolume: u.Volume}
	pl.labels = u.Labels()
	if pl.db.Image == u.FromImage {
		pl.db.Image = u.Image
	}
}

// volumeFor is the volume a plan mounts for the engine volume name.
func (pl upPlan) volumeFor(name string) string {
	if v, ok := pl.volumes[name]; ok {
		return v
	}
	return name
}

// UpgradeState is a database as an upgrade finds it.
type UpgradeState struct {
	// Container is the database's container ("" when it has none).
	Container string
	Running   bool
	// DataMajor is the PostgreSQL major of its data (PG_VERSION).
	DataMajor string
	// Volume is the volume its data lives in; ComposeVolume the one the
	// compose file names for it (the same until an upgrade).
	Volume, ComposeVolume string
	// Upgrade is what its labels say of an upgrade (nil: none).
	Upgrade *Upgrade
	// Previous is the container an upgrade replaced, kept until --finish
	// or --rollback ("" when none is kept).
	Previous string
}

// UpgradeState reads db's container, its data's major and its upgrade.
func (o *Orchestrator) UpgradeState(ctx context.Context, db compose.Database) (UpgradeState, error) {
	svc, _ := o.project.Service(db.Service)
	st := UpgradeState{ComposeVolume: o.dataVolume(svc)}
	current, _, err := o.databaseContainerSets(ctx)
	if err != nil {
		return st, err
	}
	if prev, err := o.kept(ctx, db, preUpgradeSuffix); err != nil {
		return st, err
	} else if prev != nil {
		st.Previous = containerName(*prev)
	}
	c, ok := current[db.Service]
	if !ok {
		return st, nil
	}
	st.Container, st.Running, st.Upgrade = containerName(c), c.State == container.StateRunning, upgradeOf(c.Labels)
	in, err := o.docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		return st, fmt.Errorf("inspect container %s: %w", st.Container, err)
	}
	st.Volume = dataVolumeOf(in.Container, db.DataMount, st.ComposeVolume)
	pgdata := defaultPGDATA
	if in.Container.Config != nil {
		if v := envValue(in.Container.Config.Env, "PGDATA"); v != "" {
			pgdata = v
		}
	}
	if st.DataMajor, err = o.readVersion(ctx, c.ID, pgdata); err != nil {
		return st, fmt.Errorf("%s: read the PostgreSQL version of its data: %w", db.Name, err)
	}
	return st, nil
}

// dataVolumeOf is the named volume container c mounts at target (any
// path when target is ""), or def when it mounts none there: from what the
// engine reports mounted, else from what c was created with.
func dataVolumeOf(c container.InspectResponse, target, def string) string {
	for _, m := range c.Mounts {
		if m.Type == mount.TypeVolume && m.Name != "" && (m.Destination == target || target == "") {
			return m.Name
		}
	}
	if c.HostConfig != nil {
		for _, m := range c.HostConfig.Mounts {
			if m.Type == mount.TypeVolume && m.Source != "" && (m.Target == target || target == "") {
				return m.Source
			}
		}
	}
	return def
}

// kept is db's container named <name><suffix>, nil when there is none.
func (o *Orchestrator) kept(ctx context.Context, db compose.Database, suffix string) (*container.Summary, error) {
	res, err := o.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(o.project.Name, db.Service, RoleDatabase)})
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", o.project.Name, err)
	}
	want := ContainerName(o.project, db) + suffix
	for _, c := range res.Items {
		if containerName(c) == want {
			return &c, nil
		}
	}
	return nil, nil
}

// CreateUpgradeVolume creates the volume an upgrade restores into,
// labelled as db's data and with the upgrade's labels. A volume of that
// name that exists already is refused (it may hold data).
func (o *Orchestrator) CreateUpgradeVolume(ctx context.Context, db compose.Database, u Upgrade) error {
	if _, err := o.docker.VolumeInspect(ctx, u.Volume, client.VolumeInspectOptions{}); err == nil {
		return fault.BadInput(fmt.Errorf("%s: volume %s exists already; aidb upgrade restores into a new volume of that name: remove it (docker volume rm %s) if it holds nothing you need; nothing was changed", db.Name, u.Volume, u.Volume))
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect volume %s: %w", u.Volume, err)
	}
	labels := Labels(o.project.Name, db.Service, RoleData)
	maps.Copy(labels, u.Labels())
	if _, err := o.docker.VolumeCreate(context.WithoutCancel(ctx), client.VolumeCreateOptions{Name: u.Volume, Labels: labels}); err != nil {
		return fmt.Errorf("create volume %s: %w", u.Volume, err)
	}
	return nil
}

// RemoveVolume removes a volume; one that is gone counts as removed.
func (o *Orchestrator) RemoveVolume(ctx context.Context, name string) error {
	if _, err := o.docker.VolumeRemove(context.WithoutCancel(ctx), name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// SwitchMajor switches db to u.Image (pulled, or its local build) on
// u.Volume, which holds its upgraded data, as up replaces a container
// (replace): the current container is stopped and set aside, a new one is
// created from the compose service with u.Volume in place of
// u.ComposeVolume and the upgrade's labels, started and waited for; if it
// fails, it is removed and the old one put back and started (a KeptError).
// Once the new one is ready, the old container is kept, stopped, as
// <name>-aidb-pre-upgrade, with its volume, for --finish or --rollback.
func (o *Orchestrator) SwitchMajor(ctx context.Context, db compose.Database, u Upgrade) error {
	image, err := o.EnsureImage(ctx, u.Image)
	if err != nil {
		return err
	}
	current, _, err := o.databaseContainerSets(ctx)
	if err != nil {
		return err
	}
	if _, ok := current[db.Service]; !ok {
		return fmt.Errorf("%s has no container to switch from", db.Name)
	}
	pl := o.plan(db, current)
	pl.action = actionReplace
	pl.volumes = map[string]string{u.ComposeVolume: u.Volume}
	pl.labels = u.Labels()
	pl.keepAs = pl.name + preUpgradeSuffix
	return o.replace(ctx, pl, image, &undo{})
}

// SwitchBack undoes an upgrade: the upgraded container is stopped and set
// aside, the previous one gets its name back and is started and waited
// for; then the upgraded container and its volume are removed (the caller
// backs its data up first). If the previous one does not come up, the
// upgraded one is put back as it was. It returns what it removed.
func (o *Orchestrator) SwitchBack(ctx context.Context, db compose.Database) (removed []string, retErr error) {
	current, _, err := o.databaseContainerSets(ctx)
	if err != nil {
		return nil, err
	}
	cur, ok := current[db.Service]
	u := upgradeOf(cur.Labels)
	if !ok || u == nil {
		return nil, fault.BadInput(fmt.Errorf("%s was not upgraded by aidb: there is nothing to roll back", db.Name))
	}
	prev, err := o.kept(ctx, db, preUpgradeSuffix)
	if err != nil {
		return nil, err
	}
	if prev == nil {
		return nil, fault.BadInput(fmt.Errorf("%s: the container it was upgraded from is gone (aidb upgrade %s --finish removed it): there is nothing to roll back to; restore a backup instead", db.Name, db.Name))
	}
	bg := context.WithoutCancel(ctx)
	name := ContainerName(o.project, db)
	wasRunning := cur.State == container.StateRunning
	timeout := int(StopTimeout / time.Second)
	step := 0 // 1: current stopped and renamed; 2: previous renamed
	defer func() {
		if retErr == nil {
			return
		}
		var errs []error
		if step >= 2 {
			_, _ = o.docker.ContainerStop(bg, prev.ID, client.ContainerStopOptions{Timeout: &timeout})
			if _, err := o.docker.ContainerRename(bg, prev.ID, client.ContainerRenameOptions{NewName: name + preUpgradeSuffix}); err != nil {
				errs = append(errs, err)
			}
		}
		if step >= 1 {
			if _, err := o.docker.ContainerRename(bg, cur.ID, client.ContainerRenameOptions{NewName: name}); err != nil {
				errs = append(errs, err)
			}
			if wasRunning {
				if _, err := o.docker.ContainerStart(bg, cur.ID, client.ContainerStartOptions{}); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if len(errs) > 0 {
			retErr = errors.Join(retErr, fmt.Errorf("and putting the upgraded container back failed: %w; run aidb up %s", errors.Join(errs...), db.Name))
			return
		}
		retErr = fmt.Errorf("%w; %s runs on as it did, upgraded", retErr, db.Name)
	}()
	o.progress(fmt.Sprintf("%s: stopping the upgraded container and starting %s again", db.Name, containerName(*prev)))
	if wasRunning {
		if _, err := o.docker.ContainerStop(bg, cur.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			return nil, fmt.Errorf("stop container %s: %w", name, err)
		}
	}
	if _, err := o.docker.ContainerRename(bg, cur.ID, client.ContainerRenameOptions{NewName: name + upgradedSuffix}); err != nil {
		return nil, fmt.Errorf("rename container %s: %w", name, err)
	}
	step = 1
	if _, err := o.docker.ContainerRename(bg, prev.ID, client.ContainerRenameOptions{NewName: name}); err != nil {
		return nil, fmt.Errorf("rename container %s to %s: %w", containerName(*prev), name, err)
	}
	step = 2
	pl := o.plan(db, map[string]container.Summary{db.Service: *prev})
	if err := o.startAndWait(ctx, pl, prev.ID); err != nil {
		return nil, err
	}
	if _, err := o.docker.ContainerRemove(bg, cur.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%s is back on %s, but the upgraded container could not be removed: %w; remove it with docker rm -f %s", db.Name, containerName(*prev), err, name+upgradedSuffix)
	}
	removed = append(removed, name+upgradedSuffix)
	if err := o.RemoveVolume(ctx, u.Volume); err != nil {
		return removed, fmt.Errorf("%s is back on %s, but: %w", db.Name, containerName(*prev), err)
	}
	return append(removed, u.Volume), nil
}

// RemovePrevious finishes an upgrade: it removes the container the
// database was upgraded from and that container's volume (Replaces), and
// nothing else. It returns what it removed.
func (o *Orchestrator) RemovePrevious(ctx context.Context, db compose.Database) ([]string, error) {
	current, _, err := o.databaseContainerSets(ctx)
	if err != nil {
		return nil, err
	}
	u := upgradeOf(current[db.Service].Labels)
	prev, err := o.kept(ctx, db, preUpgradeSuffix)
	if err != nil {
		return nil, err
	}
	if u == nil || prev == nil {
		return nil, fault.BadInput(fmt.Errorf("%s has no upgrade waiting to be finished (no container it was upgraded from is kept); nothing was changed", db.Name))
	}
	bg := context.WithoutCancel(ctx)
	if _, err := o.docker.ContainerRemove(bg, prev.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("remove container %s: %w", containerName(*prev), err)
	}
	removed := []string{containerName(*prev)}
	if u.Replaces != "" && u.Replaces != u.Volume {
		if err := o.RemoveVolume(ctx, u.Replaces); err != nil {
			return removed, err
		}
		removed = append(removed, u.Replaces)
	}
	return removed, nil
}
