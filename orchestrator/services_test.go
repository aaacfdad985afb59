package orchestrator

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
)

// fakeComposer stands in for Docker Compose's engine: it records what it
// is given, checks what the engine holds when it is called, and makes a
// running container (with Compose's and the given labels) per service.
type fakeComposer struct {
	f *fakeEngine
	// onUp, if set, runs at the start of Up; an error fails it.
	onUp     func(p *types.Project) error
	ups      []*types.Project
	stops    []*types.Project
	restarts [][]string
}

func (c *fakeComposer) Up(_ context.Context, p *types.Project, _ ComposeOptions) error {
	c.ups = append(c.ups, p)
	if c.onUp != nil {
		if err := c.onUp(p); err != nil {
			return err
		}
	}
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	for name, svc := range p.Services {
		cname := p.Name + "-" + name + "-1"
		found := false
		for _, x := range c.f.containers {
			found = found || x.name == cname
		}
		if found {
			continue
		}
		labels := map[string]string{ComposeProjectLabel: p.Name, ComposeServiceLabel: name}
		for k, v := range svc.Labels {
			labels[k] = v
		}
		c.f.seq++
		id := cname + "-id"
		c.f.containers[id] = &fakeContainer{id: id, name: cname, cfg: &container.Config{Image: svc.Image, Labels: labels}, host: &container.HostConfig{}, state: container.StateRunning}
	}
	return nil
}

func (c *fakeComposer) Stop(_ context.Context, p *types.Project, _ ComposeOptions) error {
	c.stops = append(c.stops, p)
	return nil
}

func (c *fakeComposer) Restart(_ context.Context, _ *types.Project, services []string, _ ComposeOptions) error {
	c.restarts = append(c.restarts, services)
	return nil
}

const appFile = `name: unit
services:
  rulesdb:
    image: postgres:15
    environment: {POSTGRES_USER: rules, POSTGRES_PASSWORD: pw, POSTGRES_DB: rulesdb, EXTRA: "${EXTRA:-a}"}
    ports: ["127.0.0.1:55432:5432"]
    volumes: ["rules:/var/lib/postgresql/data"]
    healthcheck: {test: ["CMD", "pg_isready"], interval: 1s}
  memorydb:
    image: postgres:15
    environment: {POSTGRES_USER: memory, POSTGRES_PASSWORD: pw, POSTGRES_DB: memorydb}
    ports: ["127.0.0.1:55433:5432"]
    volumes: ["memory:/var/lib/postgresql/data"]
  cache:
    image: cache:1
    volumes: ["cachedata:/data"]
  api:
    image: api:1
    profiles: [app]
    labels: {team: core}
    depends_on:
      rulesdb: {condition: service_healthy, restart: true}
      memorydb: {condition: service_started}
      cache: {condition: service_started}
volumes:
  rules:
  memory:
  cachedata:
`

// appOrch is an orchestrator of appFile (extra added to it) on a fake
// engine with a fake composer, env given to the compose loader.
func appOrch(t *testing.T, extra string, env ...string) (*fakeEngine, *fakeComposer, *Orchestrator) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(appFile, "volumes:\n  rules:", extra+"volumes:\n  rules:", 1)), 0o600))
	p, err := compose.Load(t.Context(), compose.Options{ComposeFile: file, WorkingDir: dir, Env: env})
	require.NoError(t, err)
	p.ReadyTimeout = 2 * time.Second
	f := withPostgres()
	c := &fakeComposer{f: f}
	o, err := New(f, p, WithComposer(c))
	require.NoError(t, err)
	o.ping, o.pollInterval = f.ping, time.Millisecond
	// The fake's databases pass their engine healthcheck once started.
	f.onStart = func(x *fakeContainer) {
		if x.cfg.Healthcheck != nil {
			x.health = &container.Health{Status: container.Healthy}
		}
	}
	return f, c, o
}

// Compose is given the services that are not databases, labelled as
// aidb's, with depends_on on databases dropped and the databases'
// network and volumes external under aidb's names; the loaded project is
// left as it was.
func TestComposeProjectLeavesTheDatabasesToAidb(t *testing.T) {
	t.Parallel()
	_, _, o := appOrch(t, "", "COMPOSE_PROFILES=app")
	cp, err := o.composeProject(false)
	require.NoError(t, err)

	assert.ElementsMatch(t, []string{"api", "cache"}, cp.ServiceNames())
	api := cp.Services["api"]
	assert.Equal(t, types.DependsOnConfig{"cache": {Condition: types.ServiceConditionStarted, Required: true}}, api.DependsOn)
	assert.Equal(t, types.Labels{"team": "core", LabelProject: "unit", LabelService: "api", LabelRole: RoleService}, api.Labels)

	def := cp.Networks["default"]
	assert.True(t, bool(def.External))
	assert.Equal(t, "unit_default", def.Name)
	for _, key := range []string{"rules", "memory"} {
		assert.True(t, bool(cp.Volumes[key].External), key)
		assert.Equal(t, "unit_"+key, cp.Volumes[key].Name)
	}
	cache := cp.Volumes["cachedata"]
	assert.False(t, bool(cache.External), "a service's own volume is Compose's to make")
	assert.Equal(t, "cache", cache.Labels[LabelService])
	assert.Equal(t, RoleService, cache.Labels[LabelRole])

	orig := o.project.Compose
	assert.Contains(t, orig.Services, "rulesdb", "the loaded project keeps its databases")
	assert.Contains(t, orig.Services["api"].DependsOn, "rulesdb")
	assert.False(t, bool(orig.Networks["default"].External))
	assert.NotContains(t, orig.Services["api"].Labels, LabelRole)
}

func TestComposeProjectFollowsProfiles(t *testing.T) {
	t.Parallel()
	_, _, o := appOrch(t, "")
	cp, err := o.composeProject(false)
	require.NoError(t, err)
	assert.Equal(t, []string{"cache"}, cp.ServiceNames(), "api's profile is not enabled")
	all, err := o.composeProject(true)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"api", "cache"}, all.ServiceNames(), "down --all stops every profile's services")
}

func TestComposeProjectRefusesWaitingForADatabaseToComplete(t *testing.T) {
	t.Parallel()
	_, c, o := appOrch(t, `  job:
    image: job:1
    depends_on: {memorydb: {condition: service_completed_successfully}}
`)
	err := o.UpAll(t.Context())
	require.Error(t, err)
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assert.Contains(t, err.Error(), "service job depends on database memorydb completing successfully")
	assert.Empty(t, c.ups)
}

// UpAll hands the services to Compose only once the databases answer and
// rulesdb, which api needs healthy, passes its healthcheck.
func TestUpAllStartsServicesAfterTheDatabases(t *testing.T) {
	t.Parallel()
	f, c, o := appOrch(t, "", "COMPOSE_PROFILES=app")
	c.onUp = func(_ *types.Project) error {
		for _, name := range []string{"unit-rulesdb", "unit-memorydb"} {
			db := f.byName(name)
			require.NotNil(t, db, name)
			assert.Equal(t, container.StateRunning, db.state, name)
		}
		assert.Equal(t, container.Healthy, f.byName("unit-rulesdb").health.Status)
		return nil
	}
	require.NoError(t, o.UpAll(t.Context()))
	require.Len(t, c.ups, 1)
	assert.Empty(t, c.restarts)

	st, err := o.ServicesStatus(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []ServiceStatus{
		{Service: "api", State: "running", Image: "api:1", Container: "unit-api-1"},
		{Service: "cache", State: "running", Image: "cache:1", Container: "unit-cache-1"},
	}, st)

	// A second run keeps the databases' containers.
	ids := map[string]string{}
	for _, n := range []string{"unit-rulesdb", "unit-memorydb"} {
		ids[n] = f.byName(n).id
	}
	require.NoError(t, o.UpAll(t.Context()))
	for n, id := range ids {
		assert.Equal(t, id, f.byName(n).id, n)
	}
	assert.Empty(t, c.restarts, "no database was replaced")
}

// A database replaced for a changed configuration restarts the services
// that depend on it with restart: true (api), not the others (cache).
func TestUpAllRestartsDependantsOfAReplacedDatabase(t *testing.T) {
	t.Parallel()
	f, c, o := appOrch(t, "", "COMPOSE_PROFILES=app")
	require.NoError(t, o.UpAll(t.Context()))
	old := f.byName("unit-rulesdb").id

	svc := o.project.Compose.Services["rulesdb"]
	b := "b"
	svc.Environment["EXTRA"] = &b
	o.project.Compose.Services["rulesdb"] = svc
	require.NoError(t, o.UpAll(t.Context()))
	require.NotEqual(t, old, f.byName("unit-rulesdb").id, "rulesdb replaced")
	assert.Equal(t, [][]string{{"api"}}, c.restarts)
}

func TestUpAllWaitsForAHealthyDatabase(t *testing.T) {
	t.Parallel()
	f, c, o := appOrch(t, "", "COMPOSE_PROFILES=app")
	f.onStart = func(x *fakeContainer) {
		if x.cfg.Healthcheck != nil {
			x.health = &container.Health{Status: container.Unhealthy}
			x.logs = "rulesdb: something is off\n"
		}
	}
	err := o.UpAll(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "services depend on database rulesdb being healthy, and its healthcheck is unhealthy; its last log lines:\n  rulesdb: something is off")
	var left *LeftRunningError
	assert.ErrorAs(t, err, &left)
	assert.Empty(t, c.ups, "nothing handed to Compose")
}

// A service that fails is named with Compose's error and its container's
// last log lines; one that exited 0 (a job) is not a failure.
func TestUpAllNamesTheServiceThatFailed(t *testing.T) {
	t.Parallel()
	f, c, o := appOrch(t, "", "COMPOSE_PROFILES=app")
	c.onUp = func(_ *types.Project) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.containers["api-id"] = &fakeContainer{id: "api-id", name: "unit-api-1", state: container.StateExited, exitCode: 3, logs: "api: cannot reach rulesdb\n",
			cfg: &container.Config{Image: "api:1", Labels: map[string]string{ComposeProjectLabel: "unit", ComposeServiceLabel: "api"}}, host: &container.HostConfig{}}
		f.containers["job-id"] = &fakeContainer{id: "job-id", name: "unit-job-1", state: container.StateExited, exitCode: 0,
			cfg: &container.Config{Image: "job:1", Labels: map[string]string{ComposeProjectLabel: "unit", ComposeServiceLabel: "job"}}, host: &container.HostConfig{}}
		return errors.New("container unit-api-1 exited (3)")
	}
	err := o.UpAll(t.Context())
	require.Error(t, err)
	var left *LeftRunningError
	require.ErrorAs(t, err, &left)
	assert.Contains(t, err.Error(), "start the services of project unit: container unit-api-1 exited (3)")
	assert.Contains(t, err.Error(), "service api (container unit-api-1) exited with code 3; its last log lines:\n  api: cannot reach rulesdb")
	assert.NotContains(t, err.Error(), "service job")
}

// Without an error from Compose, a container that already failed is
// still reported: nothing is silently dropped.
func TestUpAllReportsAServiceThatExitedAtOnce(t *testing.T) {
	t.Parallel()
	f, c, o := appOrch(t, "")
	c.onUp = func(_ *types.Project) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.containers["cache-id"] = &fakeContainer{id: "cache-id", name: "unit-cache-1", state: container.StateExited, exitCode: 1, logs: "no config\n",
			cfg: &container.Config{Image: "cache:1", Labels: map[string]string{ComposeProjectLabel: "unit", ComposeServiceLabel: "cache"}}, host: &container.HostConfig{}}
		return nil
	}
	err := o.UpAll(t.Context())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "service cache (container unit-cache-1) exited with code 1; its last log lines:\n  no config")
}

// down --all stops the services through Compose, every profile's, then
// the databases.
func TestDownAllStopsServicesThenDatabases(t *testing.T) {
	t.Parallel()
	f, c, o := appOrch(t, "", "COMPOSE_PROFILES=app")
	require.NoError(t, o.UpAll(t.Context()))

	_, c2, o2 := appOrch(t, "") // api's profile not enabled now
	o2.docker, c2.f = f, f
	require.NoError(t, o2.DownAll(t.Context()))
	require.Len(t, c2.stops, 1)
	assert.ElementsMatch(t, []string{"api", "cache"}, c2.stops[0].ServiceNames())
	for _, n := range []string{"unit-rulesdb", "unit-memorydb"} {
		assert.Equal(t, container.StateExited, f.byName(n).state, n)
	}
	assert.Empty(t, c.stops)
}

// nuke of the whole project removes Compose's containers and networks of
// it too, found by Compose's project label, and keeps the services'
// volumes unless asked.
func TestNukeRemovesComposeContainersOfTheProject(t *testing.T) {
	t.Parallel()
	f, _, o := appOrch(t, "", "COMPOSE_PROFILES=app")
	require.NoError(t, o.UpAll(t.Context()))
	f.containers["foreign-id"] = &fakeContainer{id: "foreign-id", name: "unit-worker-1", state: container.StateRunning,
		cfg: &container.Config{Labels: map[string]string{ComposeProjectLabel: "unit", ComposeServiceLabel: "worker"}}, host: &container.HostConfig{}}
	f.volumes["unit_cachedata"] = Labels("unit", "cache", RoleService)

	rm, err := o.Nuke(t.Context(), o.project.Databases, true, false)
	require.NoError(t, err)
	assert.Empty(t, f.names())
	assert.True(t, slices.Contains(rm.Containers, "unit-worker-1"))
	assert.Contains(t, f.volumes, "unit_cachedata", "a service's volume is kept without --all-volumes")
}
