package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
)

// Point-in-time recovery (aidb pitr): a database's WAL stream is a sidecar
// container of the database's own image running pg_receivewal on a
// replication slot into the backup folder. It lives as long as PITR is on
// for the database: up starts it, down stops it, nuke removes it. Its
// labels are the only record that PITR is on.
const (
	// RoleWAL is the sidecar streaming a database's WAL.
	RoleWAL = "wal"
	// RolePITR is a container a point-in-time operation runs and removes
	// again: pg_basebackup, the preparation of a recovery volume, the
	// server that replays WAL into it.
	RolePITR = "pitr"
	// LabelWALSlot names the replication slot the sidecar streams from.
	LabelWALSlot = "aidb.wal.slot"
	// WALMount is where a stream's folder is mounted in the sidecar and in
	// a recovering server (restore_command copies from it).
	WALMount = "/aidb-wal"
	// walSuffix ends the sidecar's name: <database container>-wal.
	walSuffix = "-wal"
)

// WALStream is a database's WAL sidecar as the engine has it.
type WALStream struct {
	Container string `json:"container"`
	Slot      string `json:"slot"`
	Running   bool   `json:"running"`
	// Folder is the host folder the segments land in.
	Folder string `json:"folder"`
	id     string
}

// WALStream is db's sidecar, nil when PITR is off for it.
func (o *Orchestrator) WALStream(ctx context.Context, db compose.Database) (*WALStream, error) {
	res, err := o.docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(o.project.Name, db.Service, RoleWAL)})
	if err != nil {
		return nil, fmt.Errorf("list WAL streams of project %s: %w", o.project.Name, err)
	}
	if len(res.Items) == 0 {
		return nil, nil
	}
	c := res.Items[0]
	s := &WALStream{Container: containerName(c), Slot: c.Labels[LabelWALSlot], Running: c.State == container.StateRunning, id: c.ID}
	for _, m := range c.Mounts {
		if m.Destination == WALMount {
			s.Folder = m.Source
		}
	}
	return s, nil
}

// WALNetwork is the network the database's service joins first and the
// host name it answers to there (its service name): where a sidecar or
// pg_basebackup reaches it, whichever container serves it.
func (o *Orchestrator) WALNetwork(db compose.Database) (netName, host string) {
	svc, _ := o.project.Service(db.Service)
	nets := serviceNetworks(o.project, svc)
	return nets[0].name, db.Service
}

// StartWALStream starts db's sidecar: pg_receivewal from slot into the
// host folder dir, as the image's postgres user (a recovering server of
// the same image reads the segments as that user), with db's credentials
// in its environment (as the database container has them) and restart
// unless-stopped (pg_receivewal resumes from the slot). The image is the
// one db's running container runs. An existing sidecar is started as it
// is. With synchronous, pg_receivewal flushes each write at once and
// reports it flushed (for synchronous_standby_names = 'aidb-wal'). A
// container that fails to start is removed again.
func (o *Orchestrator) StartWALStream(ctx context.Context, db compose.Database, slot, dir string, synchronous bool) (retErr error) {
	s, err := o.WALStream(ctx, db)
	if err != nil {
		return err
	}
	if s != nil {
		if s.Running {
			return nil
		}
		if _, err := o.docker.ContainerStart(ctx, s.id, client.ContainerStartOptions{}); err != nil {
			return fmt.Errorf("start WAL stream %s: %w; see docker logs %s", s.Container, err, s.Container)
		}
		return nil
	}
	c, err := o.Running(ctx, db)
	if err != nil {
		return err
	}
	netName, host := o.WALNetwork(db)
	labels := Labels(o.project.Name, db.Service, RoleWAL)
	labels[LabelWALSlot] = slot
	name := ContainerName(o.project, db) + walSuffix
	args := []string{"--directory", WALMount, "--slot", slot, "--host", host, "--port", "5432", "--username", db.User, "--no-password"}
	if synchronous {
		args = append(args, "--synchronous")
	}
	res, err := o.docker.ContainerCreate(context.WithoutCancel(ctx), client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:      c.Image,
			User:       "postgres",
			Entrypoint: []string{"pg_receivewal"},
			Cmd:        args,
			Env:        []string{"PGPASSWORD=" + db.Password, "PGAPPNAME=aidb-wal"},
			Labels:     labels,
			// pg_receivewal ends on SIGINT (flushing what it has); as
			// PID 1 it would ignore the engine's default SIGTERM.
			StopSignal: "SIGINT",
		},
		HostConfig: &container.HostConfig{
			Mounts:        []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: WALMount}},
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			NetworkMode:   container.NetworkMode(netName),
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {}}},
	})
	if err != nil {
		return fmt.Errorf("create WAL stream %s: %w", name, err)
	}
	defer func() {
		if retErr != nil {
			_, _ = o.docker.ContainerRemove(context.WithoutCancel(ctx), res.ID, client.ContainerRemoveOptions{Force: true})
		}
	}()
	if _, err := o.docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start WAL stream %s: %w", name, err)
	}
	return nil
}

// StopWALStream stops db's sidecar, if it has one that runs.
func (o *Orchestrator) StopWALStream(ctx context.Context, db compose.Database) error {
	s, err := o.WALStream(ctx, db)
	if err != nil || s == nil || !s.Running {
		return err
	}
	timeout := int(StopTimeout / time.Second)
	if _, err := o.docker.ContainerStop(context.WithoutCancel(ctx), s.id, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop WAL stream %s: %w", s.Container, err)
	}
	return nil
}

// RemoveWALStream removes db's sidecar (the segments stay in the folder);
// it returns its name, "" when there was none.
func (o *Orchestrator) RemoveWALStream(ctx context.Context, db compose.Database) (string, error) {
	s, err := o.WALStream(ctx, db)
	if err != nil || s == nil {
		return "", err
	}
	if _, err := o.docker.ContainerRemove(context.WithoutCancel(ctx), s.id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("remove WAL stream %s: %w", s.Container, err)
	}
	return s.Container, nil
}

// errNoWAL is returned where a sidecar is needed and db has none.
var errNoWAL = errors.New("point-in-time recovery is off")

// WALStreamLogs is the last n lines of db's sidecar's output (why it
// stopped), or errNoWAL.
func (o *Orchestrator) WALStreamLogs(ctx context.Context, db compose.Database, n int) (string, error) {
	s, err := o.WALStream(ctx, db)
	if err != nil {
		return "", err
	}
	if s == nil {
		return "", fmt.Errorf("%s: %w", db.Name, errNoWAL)
	}
	return containerLogs(ctx, o.docker, s.id, n)
}

// stopWALStreams stops the sidecars of dbs (down), before their
// databases: a stopped sidecar stays stopped until up starts it again.
func (o *Orchestrator) stopWALStreams(ctx context.Context, dbs []compose.Database) []error {
	var errs []error
	for _, db := range dbs {
		s, err := o.WALStream(ctx, db)
		if err == nil && s != nil && s.Running {
			o.progress(fmt.Sprintf("%s: stopping WAL stream %s", db.Name, s.Container))
			err = o.StopWALStream(ctx, db)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", db.Name, err))
		}
	}
	return errs
}

// startWALStreams starts the stopped sidecars of dbs once their databases
// are ready (up). A sidecar that does not start fails no up (the database
// runs, and its slot keeps the WAL, up to max_slot_wal_keep_size): it is
// said, with what to look at.
func (o *Orchestrator) startWALStreams(ctx context.Context, dbs []compose.Database) {
	for _, db := range dbs {
		s, err := o.WALStream(ctx, db)
		if err == nil && (s == nil || s.Running) {
			continue
		}
		if err == nil {
			o.progress(fmt.Sprintf("%s: starting WAL stream %s", db.Name, s.Container))
			err = o.StartWALStream(ctx, db, s.Slot, s.Folder, false)
		}
		if err != nil {
			o.progress(fmt.Sprintf("%s: the WAL stream did not start (%v); the slot keeps the WAL meanwhile: see aidb pitr status %s and docker logs of its -wal container", db.Name, err, db.Name))
		}
	}
}

// CreateWorkVolume creates a volume for a point-in-time operation that
// removes it again (aidb pitr verify recovers into one): labelled as db's
// service's with role pitr, so a nuke of the database removes one a
// killed run left. A volume of that name that exists already is refused.
func (o *Orchestrator) CreateWorkVolume(ctx context.Context, db compose.Database, name string) error {
	if _, err := o.docker.VolumeInspect(ctx, name, client.VolumeInspectOptions{}); err == nil {
		return fmt.Errorf("volume %s exists already: remove it (docker volume rm %s) if it holds nothing you need", name, name)
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect volume %s: %w", name, err)
	}
	if _, err := o.docker.VolumeCreate(context.WithoutCancel(ctx), client.VolumeCreateOptions{Name: name, Labels: Labels(o.project.Name, db.Service, RolePITR)}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}
