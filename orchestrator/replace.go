package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
)

// KeptError is a failed up of a database whose container is as it was
// before the run: untouched, or put back after its successor failed.
type KeptError struct {
	Database  string
	Container string
	// Running says the container runs and answers as before; else it is
	// stopped, as it was.
	Running bool
	// Port is the host port it is published on (0: unknown).
	Port int
	Err  error
}

func (e *KeptError) Error() string {
	if !e.Running {
		return fmt.Sprintf("%v\n%s's container %s is as it was before this run (stopped)", e.Err, e.Database, e.Container)
	}
	on := ""
	if e.Port != 0 {
		on = fmt.Sprintf(", port %d", e.Port)
	}
	return fmt.Sprintf("%v\n%s is running as before (container %s%s)", e.Err, e.Database, e.Container, on)
}

func (e *KeptError) Unwrap() error { return e.Err }

// PutBackError is a failed replacement after which the previous container
// could not be put back either.
type PutBackError struct {
	Database string
	// Container is the name the previous container has now.
	Container string
	// Renamed says it still has its <name>-aidb-previous name: the next Up
	// puts it back.
	Renamed bool
	Err     error
	PutBack error
}

func (e *PutBackError) Error() string {
	next := fmt.Sprintf("it is back as %s but does not answer: see docker logs %s", e.Container, e.Container)
	if e.Renamed {
		next = fmt.Sprintf("it is kept, stopped, as %s, with the volume and its data untouched", e.Container)
	}
	return fmt.Sprintf("%v\nputting back %s's previous container failed too: %v\n%s", e.Err, e.Database, e.PutBack, next)
}

func (e *PutBackError) Unwrap() []error { return []error{e.Err, e.PutBack} }

// replace swaps a database's container for one of its new configuration
// without taking a working database down. Up has checked what it could
// (ports, image); here the old container is stopped (at most StopTimeout)
// and renamed <name>-aidb-previous, still labelled so nuke finds it; the
// new one is created, started and waited for (the ready timeout); only then
// is the old one removed. If the new one fails (it crashes, never answers,
// refuses the login, or ctx is cancelled), it is removed and the old one
// renamed back and, if it ran, started and waited for; the error says so.
// The volume is shared and never touched. Steps that change the engine
// run under context.WithoutCancel, so Ctrl-C cannot leave one half done.
func (o *Orchestrator) replace(ctx context.Context, pl upPlan, image string, u *undo) (retErr error) {
	old := *pl.old
	in, err := o.docker.ContainerInspect(ctx, old.ID, client.ContainerInspectOptions{})
	if err != nil {
		return pl.kept(fmt.Errorf("inspect container %s: %w", pl.name, err))
	}
	oldDB := asRun(pl.db, in.Container)
	wasRunning := in.Container.State != nil && in.Container.State.Running
	if err := o.ensureVolumes(ctx, pl.db, u, pl.volumes); err != nil {
		return pl.kept(err)
	}

	bg := context.WithoutCancel(ctx)
	previous := pl.name + previousSuffix
	renamed, newID := false, ""
	defer func() {
		if retErr != nil {
			retErr = o.putBack(bg, pl, old.ID, oldDB, wasRunning, renamed, newID, retErr)
		}
	}()

	if pl.keepAs != "" {
		o.progress(fmt.Sprintf("%s: switching to the upgraded data; the old container waits, stopped, as %s until the new one is ready, and is then kept as %s with its volume", pl.db.Name, previous, pl.keepAs))
	} else {
		o.progress(fmt.Sprintf("%s: configuration changed; replacing container %s (the volume is kept; the old container waits, stopped, as %s until the new one is ready)", pl.db.Name, pl.name, previous))
	}
	if wasRunning {
		timeout := int(StopTimeout / time.Second)
		if _, err := o.docker.ContainerStop(bg, old.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
			return fmt.Errorf("stop container %s: %w", pl.name, err)
		}
	}
	if _, err := o.docker.ContainerRename(bg, old.ID, client.ContainerRenameOptions{NewName: previous}); err != nil {
		return fmt.Errorf("rename container %s to %s: %w", pl.name, previous, err)
	}
	renamed = true
	if err := ctx.Err(); err != nil {
		return err
	}
	if newID, err = o.createContainer(ctx, pl, image); err != nil {
		return err
	}
	if err := o.startAndWait(ctx, pl, newID); err != nil {
		var le *LoginError
		if errors.As(err, &le) {
			le.Keys = changedLogin(in.Container, pl.db)
			le.AdminUser = oldDB.User
		}
		return err
	}

	if pl.keepAs != "" {
		if _, err := o.docker.ContainerRename(bg, old.ID, client.ContainerRenameOptions{NewName: pl.keepAs}); err != nil {
			o.progress(fmt.Sprintf("%s: could not rename the previous container %s to %s (%v); rename it by hand: docker rename %s %s", pl.db.Name, previous, pl.keepAs, err, previous, pl.keepAs))
		}
	} else if _, err := o.docker.ContainerRemove(bg, old.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		o.progress(fmt.Sprintf("%s: could not remove the previous container %s (%v); the next aidb up removes it", pl.db.Name, previous, err))
	}
	o.progress(fmt.Sprintf("%s: ready on %s:%d", pl.db.Name, engineHostIP(o.docker.DaemonHost(), pl.db.HostIP), pl.db.HostPort))
	return nil
}

// putBack undoes a failed replacement: it removes the new container, gives
// the old one its name back and, if it ran, starts it and waits for it
// (the ready timeout). It returns cause as a KeptError, or a PutBackError
// when the old container could not be put back.
func (o *Orchestrator) putBack(ctx context.Context, pl upPlan, oldID string, oldDB compose.Database, wasRunning, renamed bool, newID string, cause error) error {
	fail := func(err error, stillRenamed bool) error {
		name := pl.name
		if stillRenamed {
			name += previousSuffix
		}
		return &PutBackError{Database: pl.db.Name, Container: name, Renamed: stillRenamed, Err: cause, PutBack: err}
	}
	if newID != "" {
		if _, err := o.docker.ContainerRemove(ctx, newID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fail(fmt.Errorf("remove the new container %s: %w", newID[:12], err), renamed)
		}
		var nr *NotReadyError
		if errors.As(cause, &nr) {
			nr.Removed = true // its name is the old container's again
		}
	}
	if renamed {
		if _, err := o.docker.ContainerRename(ctx, oldID, client.ContainerRenameOptions{NewName: pl.name}); err != nil {
			return fail(fmt.Errorf("rename it back to %s: %w", pl.name, err), true)
		}
	}
	if wasRunning {
		o.progress(fmt.Sprintf("%s: the new container did not become ready; putting the previous one back", pl.db.Name))
		if _, err := o.docker.ContainerStart(ctx, oldID, client.ContainerStartOptions{}); err != nil {
			return fail(fmt.Errorf("start container %s: %w", pl.name, err), false)
		}
		// Ready with the credentials it was set up with. A refused login
		// still means the server answers, as it did before this run.
		err := waitReady(ctx, pl.name, &engineTarget{o: o, id: oldID, db: oldDB}, o.project.ReadyTimeout, o.pollInterval)
		var le *LoginError
		if err != nil && !errors.As(err, &le) {
			return fail(err, false)
		}
	}
	return &KeptError{Database: pl.db.Name, Container: pl.name, Running: wasRunning, Port: oldDB.HostPort, Err: cause}
}

// asRun is db as the container in was created: its user, password,
// database and host port, which may predate the compose file's.
func asRun(db compose.Database, in container.InspectResponse) compose.Database {
	env := containerEnv(in)
	if v, ok := env["POSTGRES_USER"]; ok {
		db.User = v
	} else {
		db.User = "postgres"
	}
	db.Password = env["POSTGRES_PASSWORD"]
	db.DBName = env["POSTGRES_DB"]
	if db.DBName == "" {
		db.DBName = db.User
	}
	if in.HostConfig != nil {
		for _, b := range in.HostConfig.PortBindings[network.MustParsePort(fmt.Sprintf("%d/tcp", compose.PostgresPort))] {
			if p, err := strconv.Atoi(b.HostPort); err == nil && p != 0 {
				db.HostPort = p
				db.HostIP = ""
				if b.HostIP.IsValid() {
					db.HostIP = b.HostIP.String()
				}
				break
			}
		}
	}
	return db
}

func containerEnv(in container.InspectResponse) map[string]string {
	env := map[string]string{}
	if in.Config == nil {
		return env
	}
	for _, kv := range in.Config.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// changedLogin lists the login settings (POSTGRES_USER, POSTGRES_PASSWORD,
// POSTGRES_DB) whose values differ between the container in and db. Only
// names, never values.
func changedLogin(in container.InspectResponse, db compose.Database) []string {
	was := asRun(db, in)
	var keys []string
	if was.User != db.User {
		keys = append(keys, "POSTGRES_USER")
	}
	if was.Password != db.Password {
		keys = append(keys, "POSTGRES_PASSWORD")
	}
	if was.DBName != db.DBName {
		keys = append(keys, "POSTGRES_DB")
	}
	return keys
}

// StartExisting makes each database's existing container answer SELECT 1
// as it is, and returns the databases as their containers run them: the
// user, password, database name and host port each was created with,
// which may predate the compose file's. It never replaces a container,
// even when the compose file changed since: a safety backup must read the
// data that is there, not stop at a configuration that was never applied.
// A stopped container is started (and left running); a database without a
// container is left out. Each wait is bounded by the project's ready
// timeout.
func (o *Orchestrator) StartExisting(ctx context.Context, dbs []compose.Database) ([]compose.Database, error) {
	if err := o.clearPrevious(ctx, dbs); err != nil {
		return nil, err
	}
	existing, err := o.databaseContainers(ctx)
	if err != nil {
		return nil, err
	}
	var out []compose.Database
	for _, db := range dbs {
		c, ok := existing[db.Service]
		if !ok {
			continue
		}
		in, err := o.docker.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			return nil, fmt.Errorf("inspect container %s: %w", containerName(c), err)
		}
		run := asRun(db, in.Container)
		pl := o.plan(run, existing)
		pl.db = run
		if c.State == container.StateRunning {
			err = o.waitReady(ctx, pl, c.ID)
		} else {
			err = o.startAndWait(ctx, pl, c.ID)
		}
		var pt *PortTakenError
		if errors.As(err, &pt) {
			pt.Existing = true
		}
		if err != nil {
			return nil, err
		}
		out = append(out, run)
	}
	return out, nil
}
