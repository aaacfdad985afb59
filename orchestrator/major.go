package orchestrator

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/internal/fault"
)

// RoleCheck is a container that is created, never started, to read a
// file of a volume (its PG_VERSION) and removed at once.
const RoleCheck = "check"

// defaultPGDATA is where the official image and aidb's builds keep the data.
const defaultPGDATA = "/var/lib/postgresql/data"

// MajorMismatchError refuses an up whose image runs another PostgreSQL
// major than the one whose data the database's volume holds: the server
// would refuse to start on it ("database files are incompatible with
// server"). Nothing was changed.
type MajorMismatchError struct {
	Database string
	// Image is the image the compose file names, which runs Major.
	Image, Major string
	// Volume holds data of DataMajor.
	Volume, DataMajor string
	// OldImage is the image the database's container runs ("" when it
	// has none).
	OldImage string
}

func (e *MajorMismatchError) Error() string {
	was, first := "", fmt.Sprintf(" (put the image of PostgreSQL %s back in the compose file and run aidb up %s first: the upgrade starts from the database as it runs)", e.DataMajor, e.Database)
	if e.OldImage != "" {
		was, first = fmt.Sprintf(" (its container runs %s, and keeps running as before)", e.OldImage), ""
	}
	return fmt.Sprintf("%s: the compose file names image %s, PostgreSQL %s, but volume %s holds the data of PostgreSQL %s%s: PostgreSQL %s cannot start on it; nothing was changed. "+
		"To move %s to PostgreSQL %s with its data, upgrade it to %s%s: the upgrade backs the data up, restores it on %s in a new volume, verifies it against the backup and switches, keeping the old container and volume until aidb upgrade %s --finish; "+
		"or keep the image of PostgreSQL %s for %s in the compose file",
		e.Database, e.Image, e.Major, e.Volume, e.DataMajor, was, e.Major,
		e.Database, e.Major, e.Image, first, e.Image, e.Database,
		e.DataMajor, e.Database)
}

// Kind is Invalid: the compose file and the volume disagree; nothing was
// changed.
func (e *MajorMismatchError) Kind() fault.Kind { return fault.Invalid }

// checkMajor refuses (MajorMismatchError) a plan whose image runs another
// major than the data in the database's volume, read from PG_VERSION in
// the data directory without starting PostgreSQL: through the existing
// container's filesystem (running or not), or, when there is none but the
// volume exists, a container of image created for that and never started.
// A volume without PG_VERSION (new, empty) and an image whose major is not
// known pass.
func (o *Orchestrator) checkMajor(ctx context.Context, pl upPlan, image string) error {
	if pl.action != actionCreate && pl.action != actionReplace {
		return nil
	}
	major := o.imageRunsMajor(ctx, image, pl.db.Image)
	volume := o.dataVolume(pl.svc)
	if major == "" || volume == "" {
		return nil
	}
	var data, oldImage string
	var err error
	if pl.old != nil {
		oldImage = pl.old.Image
		data, err = o.oldDataMajor(ctx, pl)
	} else {
		data, err = o.volumeDataMajor(ctx, pl, image, volume)
	}
	if err != nil {
		return fmt.Errorf("%s: read the PostgreSQL version of the data in volume %s: %w", pl.db.Name, volume, err)
	}
	if data == "" || data == major {
		return nil
	}
	return &MajorMismatchError{Database: pl.db.Name, Image: pl.db.Image, Major: major, Volume: volume, DataMajor: data, OldImage: oldImage}
}

// imageRunsMajor is the PostgreSQL major image runs: its
// aidb.postgres.major label (aidb's builds), its PG_MAJOR (the official
// images), else the one the configured reference's tag names; "" when
// none says.
func (o *Orchestrator) imageRunsMajor(ctx context.Context, image, configured string) string {
	if in, err := o.docker.ImageInspect(ctx, image); err == nil && in.Config != nil {
		if m := in.Config.Labels["aidb.postgres.major"]; m != "" {
			return m
		}
		if m := envValue(in.Config.Env, "PG_MAJOR"); m != "" {
			return m
		}
	}
	m, _ := ImageMajor(configured)
	return m
}

// oldDataMajor reads PG_VERSION through the database's existing container.
func (o *Orchestrator) oldDataMajor(ctx context.Context, pl upPlan) (string, error) {
	in, err := o.docker.ContainerInspect(ctx, pl.old.ID, client.ContainerInspectOptions{})
	if err != nil {
		return "", err
	}
	pgdata := defaultPGDATA
	if in.Container.Config != nil {
		if v := envValue(in.Container.Config.Env, "PGDATA"); v != "" {
			pgdata = v
		}
	}
	return o.readVersion(ctx, pl.old.ID, pgdata)
}

// volumeDataMajor reads PG_VERSION of an existing volume that no container
// of the database mounts: a container of image with the volume mounted
// read-only where the service mounts it is created, read from without
// being started, and removed.
func (o *Orchestrator) volumeDataMajor(ctx context.Context, pl upPlan, image, volume string) (_ string, retErr error) {
	if _, err := o.docker.VolumeInspect(ctx, volume, client.VolumeInspectOptions{}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", nil
		}
		return "", err
	}
	target := ""
	for _, v := range pl.svc.Volumes {
		if v.Type == types.VolumeTypeVolume && volumeName(o.project, v.Source) == volume {
			target = v.Target
		}
	}
	pgdata := defaultPGDATA
	if v := pl.svc.Environment["PGDATA"]; v != nil && *v != "" {
		pgdata = *v
	}
	res, err := o.docker.ContainerCreate(context.WithoutCancel(ctx), client.ContainerCreateOptions{
		Config:     &container.Config{Image: image, Entrypoint: []string{"true"}, Cmd: nil, Labels: Labels(o.project.Name, pl.db.Service, RoleCheck)},
		HostConfig: &container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: target, ReadOnly: true}}},
	})
	if err != nil {
		return "", err
	}
	defer func() {
		if _, err := o.docker.ContainerRemove(context.WithoutCancel(ctx), res.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			retErr = errors.Join(retErr, fmt.Errorf("remove container %s: %w", res.ID, err))
		}
	}()
	return o.readVersion(ctx, res.ID, pgdata)
}

// readVersion reads pgdata/PG_VERSION of container id: "" when there is none.
func (o *Orchestrator) readVersion(ctx context.Context, id, pgdata string) (string, error) {
	res, err := o.docker.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: path.Join(pgdata, "PG_VERSION")})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", nil
		}
		return "", err
	}
	defer func() { _ = res.Content.Close() }()
	tr := tar.NewReader(res.Content)
	if _, err := tr.Next(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(tr, 64))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
