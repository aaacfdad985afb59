package pgtools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/orchestrator"
)

// Throwaway is a short-lived PostgreSQL container for verifying a backup:
// data directory on tmpfs, durability off (it is thrown away), published on
// 127.0.0.1 only, labelled aidb.role=verify, removed by Close.
type Throwaway struct {
	r     *Runner
	id    string
	image string
	// DB describes the throwaway as a database: credentials and port.
	DB compose.Database
	// start and startRoles are what a verification throwaway started
	// with (recordStart), which Clean puts it back to.
	start      string
	startRoles []string
}

// throwawaySettings trade durability for speed: nothing in a throwaway
// container needs to survive a crash.
var throwawaySettings = []string{
	"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
	"-c", "wal_level=minimal", "-c", "max_wal_senders=0", "-c", "maintenance_work_mem=256MB",
	"-c", "checkpoint_timeout=30min", "-c", "max_wal_size=4GB",
}

// throwawayEnv gives initdb the time zone instead of letting it probe
// every zone of the zone database (about a second of CPU per throwaway on
// 2 cores). What a throwaway checks does not depend on it: the hashes and
// the comparisons set TimeZone to UTC in their sessions. A staging volume,
// which becomes the database's, keeps initdb's own choice.
var throwawayEnv = []string{"TZ=Etc/UTC"}

// shmSize is a throwaway's and a staging container's /dev/shm: room for a
// parallel index build's shared memory (pgvector's HNSW keeps its graph
// there, maintenance_work_mem's 256MB) beside the server's own. A tmpfs
// takes memory only for what is written into it.
const shmSize = 1 << 30

// ThrowawayUser is a throwaway's superuser when the caller names none.
const ThrowawayUser = "aidb"

// StartThrowaway starts a throwaway container of image (pulled or built
// when missing, as for up) for service's backups and waits until it answers
// SELECT 1 (within the project's ready timeout). Its superuser (its
// POSTGRES_USER) is user, or ThrowawayUser when user is empty: the source
// server's, so that what names that role (an aclitem value, a grant to the
// owner) restores. On any error, also Ctrl-C, the container is removed
// again. Its errors name the step that failed; the caller says what the
// throwaway was for ("start a throwaway container of IMAGE: ..."), so they
// do not repeat it.
func (r *Runner) StartThrowaway(ctx context.Context, image, service, user string) (*Throwaway, error) {
	ref, err := r.dbs.EnsureImage(ctx, image)
	if err != nil {
		return nil, err
	}
	if user == "" {
		user = ThrowawayUser
	}
	db := compose.Database{Name: "throwaway-" + service, Service: service, Image: ref, User: user, Password: randomTag() + randomTag(), DBName: "verify", HostIP: "127.0.0.1"}
	t, err := r.startPostgres(ctx, ref, db, orchestrator.RoleVerify, append([]string{"postgres"}, throwawaySettings...), throwawayEnv,
		container.HostConfig{Tmpfs: map[string]string{"/var/lib/postgresql/data": "rw,mode=0700"}})
	if err != nil {
		return nil, err
	}
	if err := t.recordStart(ctx); err != nil {
		return nil, errors.Join(err, t.Close(ctx))
	}
	return t, nil
}

// startPostgres creates and starts a PostgreSQL container of ref (its
// superuser, password and database db's), labelled as db.Service's role,
// running cmd, with host's storage; it publishes on a free port of
// 127.0.0.1 and has shmSize of /dev/shm. It waits until the server
// answers SELECT 1 (the project's ready timeout) and returns it with db on
// that port. On any error, also Ctrl-C, the container is removed again.
func (r *Runner) startPostgres(ctx context.Context, ref string, db compose.Database, role string, cmd []string, env []string, host container.HostConfig) (_ *Throwaway, retErr error) {
	db.HostIP, db.HostPort = "127.0.0.1", 0
	port := network.MustParsePort("5432/tcp")
	host.PortBindings = network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1")}}}
	host.ShmSize = shmSize
	// Created without cancellation, so Ctrl-C cannot leave an unrecorded one.
	res, err := r.docker.ContainerCreate(context.WithoutCancel(ctx), client.ContainerCreateOptions{
		Config: &container.Config{
			Image:        ref,
			Cmd:          cmd,
			Env:          append([]string{"POSTGRES_USER=" + db.User, "POSTGRES_PASSWORD=" + db.Password, "POSTGRES_DB=" + db.DBName}, env...),
			Labels:       workLabels(r.dbs.Project().Name, db.Service, role),
			ExposedPorts: network.PortSet{port: {}},
			StopSignal:   "SIGINT",
		},
		HostConfig: &host,
	})
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	t := &Throwaway{r: r, id: res.ID, image: ref, DB: db}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, t.Close(ctx))
		}
	}()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if _, err := r.docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return nil, fmt.Errorf("start container %.12s: %w", res.ID, err)
	}
	in, err := r.docker.ContainerInspect(ctx, res.ID, client.ContainerInspectOptions{})
	if err != nil {
		return nil, err
	}
	if in.Container.NetworkSettings == nil || len(in.Container.NetworkSettings.Ports[port]) == 0 {
		return nil, fmt.Errorf("container %.12s has no published port", res.ID)
	}
	if t.DB.HostPort, err = strconv.Atoi(in.Container.NetworkSettings.Ports[port][0].HostPort); err != nil {
		return nil, fmt.Errorf("read the published port of container %.12s: %w", res.ID, err)
	}
	if err := r.dbs.WaitReady(ctx, res.ID, t.DB); err != nil {
		return nil, err
	}
	return t, nil
}

// Close removes the container and its tmpfs, also after Ctrl-C.
func (t *Throwaway) Close(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := t.r.docker.ContainerRemove(rctx, t.id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("could not remove the throwaway container (%w); once the engine answers, run: docker rm -f %s", err, t.id[:12])
	}
	return nil
}

// The throwaway serves as the engine a restore runs against: whatever
// database the restore names, it is this container.

// RequireReady checks that the throwaway answers.
func (t *Throwaway) RequireReady(ctx context.Context, _ compose.Database) error {
	return t.r.dbs.Ping(ctx, t.DB)
}

// ConnString is the throwaway's URL.
func (t *Throwaway) ConnString(compose.Database) string { return t.r.dbs.ConnString(t.DB) }

// Psql runs psql against the throwaway.
func (t *Throwaway) Psql(ctx context.Context, _ compose.Database, dbname string, tr Transport, workDir string, script io.Reader) error {
	err := t.r.psqlIn(ctx, container.Summary{ID: t.id, Image: t.image, Names: []string{"/" + t.id[:12]}}, t.DB, dbname, tr, workDir, script)
	return t.r.explainStopped(ctx, t.id, "throwaway container "+t.id[:12], t.DB, err)
}

// StartStaging starts a container of image on volume (mounted at target,
// the database's data path) for an upgrade to restore db's backup into:
// PostgreSQL initialises the empty volume with db's superuser, password
// and database, as the database's own container would, with durability
// on (the volume becomes the database's). It publishes on a free port of
// 127.0.0.1 (the database's own port is still its old container's), is
// labelled aidb.role=upgrade, and waits until it answers SELECT 1 (the
// project's ready timeout). The returned Throwaway's DB is db on that
// port; Stop shuts PostgreSQL down cleanly and Close removes the
// container, never the volume. On any error the container is removed.
func (r *Runner) StartStaging(ctx context.Context, image string, db compose.Database, volume, target string) (*Throwaway, error) {
	ref, err := r.dbs.EnsureImage(ctx, image)
	if err != nil {
		return nil, err
	}
	return r.startPostgres(ctx, ref, db, orchestrator.RoleUpgrade, []string{"postgres", "-c", "maintenance_work_mem=256MB"}, nil,
		container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: target}}})
}

// ID is the container's ID.
func (t *Throwaway) ID() string { return t.id }

// Stop shuts PostgreSQL down cleanly (a fast shutdown: everything written
// is on disk), within the engine's stop timeout.
func (t *Throwaway) Stop(ctx context.Context) error {
	timeout := int(orchestrator.StopTimeout / time.Second)
	if _, err := t.r.docker.ContainerStop(context.WithoutCancel(ctx), t.id, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %.12s: %w", t.id, err)
	}
	return nil
}

// WatchLoad is Runner.WatchLoad for the throwaway's container.
func (t *Throwaway) WatchLoad(ctx context.Context, _ compose.Database) (func(error) error, error) {
	return func(err error) error {
		return asLoad(t.r.explainStopped(ctx, t.id, "throwaway container "+t.id[:12], t.DB, err))
	}, nil
}
