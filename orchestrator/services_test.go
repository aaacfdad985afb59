package orchestrator

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/fault"
)

// withService puts a container of the unit project's service api into f,
// as the depends_on wait finds it, and returns it.
func withService(f *fakeEngine, healthcheck bool, state container.ContainerState, exitCode int, health container.HealthStatus) *fakeContainer {
	cfg := &container.Config{Image: "api:1", Labels: Labels("unit", "api", RoleService)}
	if healthcheck {
		cfg.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "true"}}
	}
	c := &fakeContainer{id: "api000000000000", name: "unit-api", cfg: cfg, host: &container.HostConfig{}, state: state, exitCode: exitCode, logs: "api: listening\napi: shutting down\n"}
	if health != "" {
		c.health = &container.Health{Status: health}
	}
	f.containers[c.id] = c
	return c
}

func TestWaitConditionMet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		condition string
		state     container.ContainerState
		exitCode  int
		health    container.HealthStatus
	}{
		{"started: running", types.ServiceConditionStarted, container.StateRunning, 0, ""},
		{"started: already done", types.ServiceConditionStarted, container.StateExited, 0, ""},
		{"healthy", types.ServiceConditionHealthy, container.StateRunning, 0, container.Healthy},
		{"completed successfully", types.ServiceConditionCompletedSuccessfully, container.StateExited, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeEngine()
			withService(f, true, tc.state, tc.exitCode, tc.health)
			o := newUnitOrch(t, f)
			require.NoError(t, o.waitCondition(t.Context(), "web", "api", tc.condition))
		})
	}
}

func TestWaitConditionWaitsUntilHealthy(t *testing.T) {
	t.Parallel()
	f := newFakeEngine()
	withService(f, true, container.StateRunning, 0, container.Starting)
	inspects := 0
	f.onInspect = func(c *fakeContainer) {
		if inspects++; inspects == 3 {
			c.health.Status = container.Healthy
		}
	}
	o := newUnitOrch(t, f)
	require.NoError(t, o.waitCondition(t.Context(), "web", "api", types.ServiceConditionHealthy))
	assert.Equal(t, 3, inspects, "polls until the engine reports it healthy, then stops")
}

func TestWaitConditionNotMet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		condition   string
		healthcheck bool
		state       container.ContainerState
		exitCode    int
		health      container.HealthStatus
		timeout     time.Duration
		want        string
		usage       bool
	}{
		{name: "unhealthy", condition: types.ServiceConditionHealthy, healthcheck: true, state: container.StateRunning, health: container.Unhealthy,
			want: "web waits for api, which is unhealthy; its last log lines:\n  api: listening\n  api: shutting down"},
		{name: "stopped instead of healthy", condition: types.ServiceConditionHealthy, healthcheck: true, state: container.StateExited, exitCode: 1,
			want: "web waits for api, which stopped"},
		{name: "never healthy", condition: types.ServiceConditionHealthy, healthcheck: true, state: container.StateRunning, health: container.Starting, timeout: 300 * time.Millisecond,
			want: "web waits for api, which did not become healthy within 300ms"},
		{name: "completed with a failure", condition: types.ServiceConditionCompletedSuccessfully, state: container.StateExited, exitCode: 3,
			want: "web waits for api, which exited with code 3"},
		{name: "no healthcheck to wait for", condition: types.ServiceConditionHealthy, state: container.StateRunning,
			want: "web depends on api being healthy, but api has no healthcheck", usage: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeEngine()
			withService(f, tc.healthcheck, tc.state, tc.exitCode, tc.health)
			o := newUnitOrch(t, f)
			if tc.timeout != 0 {
				o.project.ReadyTimeout = tc.timeout
			}
			err := o.waitCondition(t.Context(), "web", "api", tc.condition)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, tc.usage, fault.KindOf(err) == fault.Invalid, "exit 2 only for bad input")
		})
	}
}

func TestWaitConditionWithoutAContainer(t *testing.T) {
	t.Parallel()
	o := newUnitOrch(t, newFakeEngine())
	err := o.waitCondition(t.Context(), "web", "api", types.ServiceConditionStarted)
	assert.EqualError(t, err, "web depends on api, which has no container")
}

// A database dependency needs no engine healthcheck: Up has waited for
// SELECT 1 already.
func TestWaitConditionHealthyDatabaseWithoutHealthcheck(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o := newUnitOrch(t, f)
	require.NoError(t, o.Up(t.Context(), o.project.Databases))
	f.byName("unit-rulesdb").cfg.Healthcheck = nil
	require.NoError(t, o.waitCondition(t.Context(), "api", "rulesdb", types.ServiceConditionHealthy))
}

// UpAll starts a service only once its dependencies meet their condition:
// here the api after rulesdb answers and the migration job has completed;
// a failed job keeps the api from starting.
func TestUpAllStartsServicesInDependsOnOrder(t *testing.T) {
	t.Parallel()
	t.Run("job succeeds", func(t *testing.T) { t.Parallel(); upAllInOrder(t, 0) })
	t.Run("job fails", func(t *testing.T) { t.Parallel(); upAllInOrder(t, 1) })
}

func upAllInOrder(t *testing.T, jobExit int) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`name: unit
services:
  rulesdb:
    image: postgres:15
    environment: {POSTGRES_USER: rules, POSTGRES_PASSWORD: pw, POSTGRES_DB: rulesdb}
    ports: ["127.0.0.1:55432:5432"]
  memorydb:
    image: postgres:15
    environment: {POSTGRES_USER: memory, POSTGRES_PASSWORD: pw, POSTGRES_DB: memorydb}
    ports: ["127.0.0.1:55433:5432"]
  migrate:
    image: job:1
    depends_on: {rulesdb: {condition: service_healthy}}
  api:
    image: api:1
    depends_on:
      rulesdb: {condition: service_healthy}
      migrate: {condition: service_completed_successfully}
`), 0o600))
	p, err := compose.Load(t.Context(), compose.Options{ComposeFile: file, WorkingDir: dir})
	require.NoError(t, err)
	p.ReadyTimeout = 5 * time.Second

	f := withPostgres()
	f.images["job:1"], f.images["api:1"] = true, true
	var started []string
	f.onStart = func(c *fakeContainer) {
		started = append(started, c.name)
		if c.name == "unit-migrate" {
			c.state, c.exitCode = container.StateExited, jobExit // done at once
		}
	}
	o, err := New(f, p)
	require.NoError(t, err)
	o.ping, o.pollInterval = f.ping, time.Millisecond
	err = o.UpAll(t.Context())
	if jobExit != 0 {
		require.Error(t, err)
		assert.Contains(t, err.Error(), "api waits for migrate, which exited with code 1")
		var left *LeftRunningError
		assert.ErrorAs(t, err, &left, "what it started is left running, and the error says so")
		assert.NotContains(t, err.Error(), "aidb ", "commands are cmd's to name")
		assert.NotContains(t, started, "unit-api")
		assert.Nil(t, f.byName("unit-api"), "never created")
		return
	}
	require.NoError(t, err)

	pos := map[string]int{}
	for i, name := range started {
		pos[name] = i
	}
	require.Len(t, pos, 4, "every service started once: %v", started)
	assert.Less(t, pos["unit-rulesdb"], pos["unit-migrate"])
	assert.Less(t, pos["unit-migrate"], pos["unit-api"])
	assert.Equal(t, RoleService, f.byName("unit-api").cfg.Labels[LabelRole])
	assert.Equal(t, RoleDatabase, f.byName("unit-rulesdb").cfg.Labels[LabelRole])
}
