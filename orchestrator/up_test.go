package orchestrator

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/pgimage"
)

// unitOrch is an Orchestrator of the default project (AIDB_PROJECT=unit,
// plus env) on the fake engine f, whose databases it pings. It records its
// progress lines.
type unitOrch struct {
	*Orchestrator
	mu    sync.Mutex
	lines []string
}

func newUnitOrch(t *testing.T, f *fakeEngine, env ...string) *unitOrch {
	t.Helper()
	p := loadDefault(t, append([]string{"AIDB_PROJECT=unit"}, env...)...)
	p.ReadyTimeout = 5 * time.Second
	u := &unitOrch{}
	o, err := New(f, p, WithProgress(func(line string) {
		u.mu.Lock()
		u.lines = append(u.lines, line)
		u.mu.Unlock()
	}))
	require.NoError(t, err)
	o.ping = f.ping
	o.pollInterval = time.Millisecond
	o.buildImage = func(context.Context, pgimage.Recipe, string) (string, error) {
		t.Error("no image build expected")
		return "", errNotFaked
	}
	u.Orchestrator = o
	return u
}

func (u *unitOrch) progressText() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return strings.Join(u.lines, "\n")
}

func (u *unitOrch) db(t *testing.T, name string) compose.Database {
	t.Helper()
	db, ok := u.project.Database(name)
	require.True(t, ok)
	return db
}

// withPostgres is a fake engine holding the default images (rulesdb's and
// memorydb's).
func withPostgres() *fakeEngine {
	f := newFakeEngine()
	f.images["postgres:15"] = true
	f.images["pgvector/pgvector:pg17"] = true
	return f
}

func TestUpCreatesLabelledResourcesAndASecondUpChangesNothing(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o := newUnitOrch(t, f)
	require.NoError(t, o.Up(t.Context(), o.project.Databases))

	assert.Equal(t, []string{"unit-memorydb", "unit-rulesdb"}, f.names())
	for _, svc := range []string{"rulesdb", "memorydb"} {
		c := f.byName("unit-" + svc)
		assert.Equal(t, container.StateRunning, c.state)
		assert.Equal(t, RoleDatabase, c.cfg.Labels[LabelRole])
		assert.Equal(t, "unit", c.cfg.Labels[LabelProject])
		assert.Equal(t, svc, c.cfg.Labels[LabelService])
		assert.Equal(t, Labels("unit", svc, RoleData), f.volumes["unit_"+svc+"-data"])
	}
	require.Len(t, f.networks, 1)
	for _, n := range f.networks {
		assert.Equal(t, "unit_default", n.Name)
		assert.Equal(t, Labels("unit", "", RoleNetwork), n.Labels)
	}
	assert.Contains(t, o.progressText(), "rulesdb: ready on 127.0.0.1:55432")

	creates, starts := f.calls["ContainerCreate"], f.calls["ContainerStart"]
	require.NoError(t, o.Up(t.Context(), o.project.Databases))
	assert.Equal(t, creates, f.calls["ContainerCreate"], "a second up creates nothing")
	assert.Equal(t, starts, f.calls["ContainerStart"], "a second up starts nothing")
	assert.Equal(t, []string{"unit-memorydb", "unit-rulesdb"}, f.names())
}

func TestUpStartsAStoppedContainerWithItsVolume(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o := newUnitOrch(t, f)
	rules := o.db(t, "rulesdb")
	require.NoError(t, o.Up(t.Context(), []compose.Database{rules}))
	id := f.byName("unit-rulesdb").id
	require.NoError(t, o.Down(t.Context(), []compose.Database{rules}))
	require.Equal(t, container.StateExited, f.byName("unit-rulesdb").state)

	require.NoError(t, o.Up(t.Context(), []compose.Database{rules}))
	c := f.byName("unit-rulesdb")
	assert.Equal(t, id, c.id, "the same container, started again")
	assert.Equal(t, container.StateRunning, c.state)
}

// A failed Up removes what it created, and nothing else: not a volume
// that was there before (it may hold data), nor another project's.
func TestUpThatFailsRemovesWhatItCreatedAndNothingElse(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	f.volumes["unit_rulesdb-data"] = nil // there before, unlabelled
	f.volumes["other_rulesdb-data"] = Labels("other", "rulesdb", RoleData)
	f.onStart = func(c *fakeContainer) {
		if c.name == "unit-rulesdb" {
			c.state, c.exitCode, c.logs = container.StateExited, 1, "FATAL:  invalid value for parameter \"max_connections\"\n"
		}
	}
	o := newUnitOrch(t, f)
	err := o.Up(t.Context(), o.project.Databases)
	var nr *NotReadyError
	require.ErrorAs(t, err, &nr)
	assert.Contains(t, err.Error(), "unit-rulesdb stopped while starting (state exited, exit code 1)")
	assert.Contains(t, err.Error(), `invalid value for parameter "max_connections"`, "its last log lines")

	assert.Empty(t, f.names(), "the containers this run created are removed")
	assert.Empty(t, f.networks, "the network this run created is removed")
	assert.Contains(t, f.volumes, "unit_rulesdb-data", "a volume that was there before stays")
	assert.Contains(t, f.volumes, "other_rulesdb-data")
	assert.NotContains(t, f.volumes, "unit_memorydb-data", "the volume this run created is removed")
}

func TestUpRefusesATakenPortBeforeCreatingAnything(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	other := newUnitOrch(t, f, "AIDB_PROJECT=other")
	require.NoError(t, other.Up(t.Context(), []compose.Database{other.db(t, "rulesdb")}))
	creates := f.calls["ContainerCreate"]

	o := newUnitOrch(t, f)
	err := o.Up(t.Context(), o.project.Databases)
	var pt *PortTakenError
	require.ErrorAs(t, err, &pt)
	assert.Equal(t, "other-rulesdb", pt.Holder)
	assert.Equal(t, 55432, pt.Port)
	assert.Equal(t, creates, f.calls["ContainerCreate"], "nothing was created")
	assert.Equal(t, []string{"other-rulesdb"}, f.names())
	assert.NotContains(t, f.volumes, "unit_rulesdb-data")
}

// replaced brings rulesdb up with the default configuration, then returns
// an orchestrator of a changed one (another password) and the running
// container's ID.
func replaced(t *testing.T, f *fakeEngine) (*unitOrch, string) {
	t.Helper()
	before := newUnitOrch(t, f)
	require.NoError(t, before.Up(t.Context(), []compose.Database{before.db(t, "rulesdb")}))
	return newUnitOrch(t, f, "RULESDB_PASSWORD=changed"), f.byName("unit-rulesdb").id
}

func TestUpReplacesAChangedContainerOnceItsSuccessorIsReady(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o, oldID := replaced(t, f)
	// When the successor starts, the old container waits, stopped, under
	// its -aidb-previous name.
	var atStart []string
	f.onStart = func(_ *fakeContainer) {
		old := f.containers[oldID]
		atStart = append(atStart, old.name+" "+string(old.state))
	}
	require.NoError(t, o.Up(t.Context(), []compose.Database{o.db(t, "rulesdb")}))

	assert.Equal(t, []string{"unit-rulesdb-aidb-previous exited"}, atStart)
	assert.Equal(t, []string{"unit-rulesdb"}, f.names(), "the old container is removed once the new one answers")
	c := f.byName("unit-rulesdb")
	assert.NotEqual(t, oldID, c.id)
	assert.Contains(t, c.cfg.Env, "POSTGRES_PASSWORD=changed")
	assert.Equal(t, container.StateRunning, c.state)
	assert.Contains(t, f.volumes, "unit_rulesdb-data", "the volume is kept")
}

func TestUpWhoseNewContainerCrashesPutsTheOldOneBack(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o, oldID := replaced(t, f)
	f.onStart = func(c *fakeContainer) {
		if c.id != oldID {
			c.state, c.exitCode, c.logs = container.StateExited, 1, "FATAL:  bad setting\n"
		}
	}
	err := o.Up(t.Context(), []compose.Database{o.db(t, "rulesdb")})

	var kept *KeptError
	require.ErrorAs(t, err, &kept)
	assert.True(t, kept.Running)
	assert.Contains(t, err.Error(), "rulesdb is running as before (container unit-rulesdb, port 55432)")
	var nr *NotReadyError
	require.ErrorAs(t, err, &nr)
	assert.True(t, nr.Removed, "the crashed container is gone, so its log cannot be read any more")
	assert.Contains(t, err.Error(), "FATAL:  bad setting")

	assert.Equal(t, []string{"unit-rulesdb"}, f.names())
	c := f.byName("unit-rulesdb")
	assert.Equal(t, oldID, c.id, "the old container is back under its name")
	assert.Equal(t, container.StateRunning, c.state)
	assert.NoError(t, o.ping(t.Context(), o.ConnString(o.db(t, "rulesdb"))))
}

func TestUpInterruptedDuringAReplacementPutsTheOldOneBack(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o, oldID := replaced(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f.onStart = func(c *fakeContainer) {
		if c.id != oldID {
			c.silent = true // still starting when Ctrl-C comes
			cancel()
		}
	}
	err := o.Up(ctx, []compose.Database{o.db(t, "rulesdb")})

	require.ErrorIs(t, err, context.Canceled)
	var kept *KeptError
	require.ErrorAs(t, err, &kept, "the put-back runs although ctx is cancelled")
	assert.Equal(t, []string{"unit-rulesdb"}, f.names())
	c := f.byName("unit-rulesdb")
	assert.Equal(t, oldID, c.id)
	assert.Equal(t, container.StateRunning, c.state)
}

func TestUpWithARefusedLoginNamesTheSettingAndPutsTheOldOneBack(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o, oldID := replaced(t, f)
	f.onStart = func(c *fakeContainer) {
		if c.id != oldID {
			c.refuse = true // the volume keeps the old password
		}
	}
	err := o.Up(t.Context(), []compose.Database{o.db(t, "rulesdb")})

	var le *LoginError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, []string{"POSTGRES_PASSWORD"}, le.Keys, "the setting that changed, by name")
	assert.Equal(t, "unit_rulesdb-data", le.Volume)
	assert.NotContains(t, err.Error(), "changed", "never a password")
	assert.Equal(t, oldID, f.byName("unit-rulesdb").id)
}

func TestUpClearsWhatAnInterruptedReplacementLeft(t *testing.T) {
	t.Parallel()
	t.Run("only the previous container: renamed back", func(t *testing.T) {
		t.Parallel()
		f := withPostgres()
		o := newUnitOrch(t, f)
		rules := []compose.Database{o.db(t, "rulesdb")}
		require.NoError(t, o.Up(t.Context(), rules))
		c := f.byName("unit-rulesdb")
		c.name, c.state = "unit-rulesdb-aidb-previous", container.StateExited // aidb killed mid-replacement

		st, err := o.Status(t.Context(), rules)
		require.NoError(t, err)
		assert.Equal(t, "exited", st[0].State, "status shows the set-aside container rather than missing")

		require.NoError(t, o.Up(t.Context(), rules))
		assert.Equal(t, []string{"unit-rulesdb"}, f.names())
		assert.Equal(t, c.id, f.byName("unit-rulesdb").id)
		assert.Equal(t, container.StateRunning, c.state)
	})
	t.Run("beside a current container: removed", func(t *testing.T) {
		t.Parallel()
		f := withPostgres()
		o := newUnitOrch(t, f)
		rules := []compose.Database{o.db(t, "rulesdb")}
		require.NoError(t, o.Up(t.Context(), rules))
		prev := f.byName("unit-rulesdb")
		prev.name, prev.state = "unit-rulesdb-aidb-previous", container.StateExited
		f.mu.Lock()
		f.seq++
		cur := &fakeContainer{id: "current0000000000", name: "unit-rulesdb", cfg: prev.cfg, host: prev.host, state: container.StateRunning}
		f.containers[cur.id] = cur
		f.mu.Unlock()

		require.NoError(t, o.Up(t.Context(), rules))
		assert.Equal(t, []string{"unit-rulesdb"}, f.names())
		assert.Equal(t, cur.id, f.byName("unit-rulesdb").id)
	})
}

func TestStartExistingRunsContainersAsTheyWereCreated(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	before := newUnitOrch(t, f)
	rules := before.db(t, "rulesdb")
	require.NoError(t, before.Up(t.Context(), []compose.Database{rules}))
	require.NoError(t, before.Down(t.Context(), []compose.Database{rules}))
	id := f.byName("unit-rulesdb").id

	o := newUnitOrch(t, f, "RULESDB_PASSWORD=changed")
	dbs, err := o.StartExisting(t.Context(), o.project.Databases)
	require.NoError(t, err)
	require.Len(t, dbs, 1, "a database without a container is left out")
	assert.Equal(t, "rules-local-dev", dbs[0].Password, "the password the container was created with")
	c := f.byName("unit-rulesdb")
	assert.Equal(t, id, c.id, "never replaced")
	assert.Equal(t, container.StateRunning, c.state)
}

// An image of another major than the data in the volume is refused before
// any container is touched: the old one runs on, a new one is never made,
// and a container made only to read the volume is gone.
func TestUpRefusesAnImageOfAnotherMajorThanTheData(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o, oldID := replaced(t, f)
	f.dataMajor["unit_rulesdb-data"] = "15"
	require.NoError(t, o.Up(t.Context(), []compose.Database{o.db(t, "rulesdb")}), "the same major is replaced as before")
	newID := f.byName("unit-rulesdb").id
	assert.NotEqual(t, oldID, newID)

	// The data is of 13 now, as a volume made by postgres:13 would be.
	f.dataMajor["unit_rulesdb-data"] = "13"
	o = newUnitOrch(t, f, "RULESDB_PASSWORD=changed-again")
	err := o.Up(t.Context(), []compose.Database{o.db(t, "rulesdb")})
	var me *MajorMismatchError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assert.Equal(t, MajorMismatchError{Database: "rulesdb", Image: "postgres:15", Major: "15", Volume: "unit_rulesdb-data", DataMajor: "13", OldImage: "postgres:15"}, *me)
	assert.Contains(t, err.Error(), "PostgreSQL 15 cannot start on it")
	assert.Contains(t, err.Error(), "nothing was changed")
	c := f.byName("unit-rulesdb")
	assert.Equal(t, newID, c.id, "the container was not replaced")
	assert.Equal(t, container.StateRunning, c.state)

	// No container, the volume there: read by a container never started.
	_, err = f.ContainerRemove(t.Context(), newID, client.ContainerRemoveOptions{Force: true})
	require.NoError(t, err)
	err = o.Up(t.Context(), []compose.Database{o.db(t, "rulesdb")})
	require.ErrorAs(t, err, &me)
	assert.Empty(t, me.OldImage)
	assert.Empty(t, f.names(), "no database container made; the one that read the volume removed")
	assert.Contains(t, f.volumes, "unit_rulesdb-data")
}
