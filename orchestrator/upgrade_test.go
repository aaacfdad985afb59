package orchestrator

import (
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
)

// upgradedRulesdb is the default project's rulesdb on 15, switched to 17
// on a volume of its own (SwitchMajor), on the fake engine.
func upgradedRulesdb(t *testing.T, f *fakeEngine) (*unitOrch, Upgrade) {
	t.Helper()
	f.images["postgres:17"] = true
	o := newUnitOrch(t, f)
	db := o.db(t, "rulesdb")
	require.NoError(t, o.Up(t.Context(), []compose.Database{db}))
	f.dataMajor["unit_rulesdb-data"] = "15"
	u := Upgrade{Image: "postgres:17", FromImage: "postgres:15", Volume: "unit_rulesdb-data-pg17", ComposeVolume: "unit_rulesdb-data", Replaces: "unit_rulesdb-data"}
	require.NoError(t, o.CreateUpgradeVolume(t.Context(), db, u))
	err := o.CreateUpgradeVolume(t.Context(), db, u)
	assert.Equal(t, fault.Invalid, fault.KindOf(err), "a volume of that name is never reused")
	f.dataMajor[u.Volume] = "17" // what the restore into it left
	require.NoError(t, o.SwitchMajor(t.Context(), db, u))
	return o, u
}

func mountsOf(c *fakeContainer) []string {
	var out []string
	for _, m := range c.host.Mounts {
		out = append(out, m.Source)
	}
	return out
}

// The switch runs the new image on the new volume with the upgrade's
// labels, and keeps the old container, stopped, with its volume; up keeps
// the upgrade (no refusal, no old image, no old volume) while the compose
// file names the old image, through a replacement too; --finish removes
// the old container and volume only.
func TestSwitchMajorAndUpKeepTheUpgrade(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o, u := upgradedRulesdb(t, f)
	db := o.db(t, "rulesdb")

	c := f.byName("unit-rulesdb")
	assert.Equal(t, "postgres:17", c.cfg.Image)
	assert.Equal(t, []string{"unit_rulesdb-data-pg17"}, mountsOf(c))
	assert.Equal(t, container.StateRunning, c.state)
	for k, v := range u.Labels() {
		assert.Equal(t, v, c.cfg.Labels[k], k)
	}
	prev := f.byName("unit-rulesdb-aidb-pre-upgrade")
	require.NotNil(t, prev)
	assert.Equal(t, container.StateExited, prev.state)
	assert.Equal(t, []string{"unit_rulesdb-data"}, mountsOf(prev))

	st, err := o.UpgradeState(t.Context(), db)
	require.NoError(t, err)
	assert.Equal(t, UpgradeState{Container: "unit-rulesdb", Running: true, DataMajor: "17", Volume: "unit_rulesdb-data-pg17", ComposeVolume: "unit_rulesdb-data",
		Upgrade: &u, Previous: "unit-rulesdb-aidb-pre-upgrade"}, st)
	sts, err := o.Status(t.Context(), []compose.Database{db})
	require.NoError(t, err)
	assert.Equal(t, &UpgradeStatus{Image: "postgres:17", ComposeImage: "postgres:15", ComposeBehind: true, Volume: u.Volume,
		Previous: "unit-rulesdb-aidb-pre-upgrade", PreviousVolume: "unit_rulesdb-data"}, sts[0].Upgrade)

	id := c.id
	require.NoError(t, o.Up(t.Context(), []compose.Database{db}))
	assert.Equal(t, id, f.byName("unit-rulesdb").id, "kept as it runs")

	// A changed port replaces the container: on the upgrade's image and
	// volume, its labels carried on.
	o2 := newUnitOrch(t, f, "RULESDB_PORT=56999")
	require.NoError(t, o2.Up(t.Context(), []compose.Database{o2.db(t, "rulesdb")}))
	c = f.byName("unit-rulesdb")
	assert.NotEqual(t, id, c.id)
	assert.Equal(t, "postgres:17", c.cfg.Image)
	assert.Equal(t, []string{"unit_rulesdb-data-pg17"}, mountsOf(c))
	assert.Equal(t, u.Labels()[LabelUpgradeVolume], c.cfg.Labels[LabelUpgradeVolume])
	assert.NotNil(t, f.byName("unit-rulesdb-aidb-pre-upgrade"), "the old one is still kept")

	removed, err := o2.RemovePrevious(t.Context(), o2.db(t, "rulesdb"))
	require.NoError(t, err)
	assert.Equal(t, []string{"unit-rulesdb-aidb-pre-upgrade", "unit_rulesdb-data"}, removed)
	assert.Equal(t, []string{"unit-rulesdb"}, f.names())
	assert.NotContains(t, f.volumes, "unit_rulesdb-data")
	assert.Contains(t, f.volumes, "unit_rulesdb-data-pg17")

	// Replaced again after --finish: the compose file's volume is not
	// made again, and the compose file's new image is run once it names it.
	o3 := newUnitOrch(t, f, "RULESDB_PORT=56998")
	o3.project.Databases[1].Image = "postgres:17"
	require.Equal(t, "rulesdb", o3.project.Databases[1].Name)
	require.NoError(t, o3.Up(t.Context(), []compose.Database{o3.db(t, "rulesdb")}))
	assert.Equal(t, []string{"unit_rulesdb-data-pg17"}, mountsOf(f.byName("unit-rulesdb")))
	assert.NotContains(t, f.volumes, "unit_rulesdb-data")
	_, err = o3.RemovePrevious(t.Context(), o3.db(t, "rulesdb"))
	assert.Equal(t, fault.Invalid, fault.KindOf(err), "nothing left to finish")
}

// A rollback puts the old container back under its name, running, and
// removes the upgraded container and volume.
func TestSwitchBack(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o, u := upgradedRulesdb(t, f)
	db := o.db(t, "rulesdb")
	prevID := f.byName("unit-rulesdb-aidb-pre-upgrade").id

	removed, err := o.SwitchBack(t.Context(), db)
	require.NoError(t, err)
	assert.Equal(t, []string{"unit-rulesdb-aidb-upgraded", u.Volume}, removed)
	c := f.byName("unit-rulesdb")
	assert.Equal(t, prevID, c.id)
	assert.Equal(t, container.StateRunning, c.state)
	assert.Equal(t, []string{"unit-rulesdb"}, f.names())
	assert.NotContains(t, f.volumes, u.Volume)
	st, err := o.UpgradeState(t.Context(), db)
	require.NoError(t, err)
	assert.Nil(t, st.Upgrade)
	assert.Equal(t, "15", st.DataMajor)

	_, err = o.SwitchBack(t.Context(), db)
	assert.Equal(t, fault.Invalid, fault.KindOf(err), "nothing to roll back")
}

// A previous container that does not come up leaves the upgraded one
// running, under its name, with its volume.
func TestSwitchBackThatFailsKeepsTheUpgrade(t *testing.T) {
	t.Parallel()
	f := withPostgres()
	o, u := upgradedRulesdb(t, f)
	db := o.db(t, "rulesdb")
	upID := f.byName("unit-rulesdb").id
	prevID := f.byName("unit-rulesdb-aidb-pre-upgrade").id
	f.onStart = func(c *fakeContainer) {
		if c.id == prevID {
			c.state, c.exitCode, c.logs = container.StateExited, 1, "FATAL: database files are incompatible"
		}
	}
	_, err := o.SwitchBack(t.Context(), db)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "runs on as it did, upgraded")
	c := f.byName("unit-rulesdb")
	assert.Equal(t, upID, c.id)
	assert.Equal(t, container.StateRunning, c.state)
	assert.Equal(t, prevID, f.byName("unit-rulesdb-aidb-pre-upgrade").id)
	assert.Contains(t, f.volumes, u.Volume)
}
