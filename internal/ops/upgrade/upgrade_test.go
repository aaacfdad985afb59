package upgrade

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/orchestrator"
)

// fake is a small engine: it records the calls an upgrade makes, keeps
// the volumes it creates, and fails the step named in failAt.
type fake struct {
	state   orchestrator.UpgradeState
	failAt  string
	calls   []string
	volumes map[string]bool
	staged  *fakeStage
	// restored is what the stage's restore returns.
	restored restore.Result
}

var errBoom = errors.New("boom")

func (f *fake) step(name string) error {
	f.calls = append(f.calls, name)
	if f.failAt == name {
		return errBoom
	}
	return nil
}

func (f *fake) EnsureImage(_ context.Context, ref string) (string, error) {
	return ref, f.step("image " + ref)
}
func (f *fake) UpgradeState(context.Context, compose.Database) (orchestrator.UpgradeState, error) {
	return f.state, f.step("state")
}
func (f *fake) CreateUpgradeVolume(_ context.Context, _ compose.Database, u orchestrator.Upgrade) error {
	if err := f.step("create volume " + u.Volume); err != nil {
		return err
	}
	f.volumes[u.Volume] = true
	return nil
}
func (f *fake) RemoveVolume(_ context.Context, name string) error {
	delete(f.volumes, name)
	return f.step("remove volume " + name)
}
func (f *fake) SwitchMajor(_ context.Context, _ compose.Database, u orchestrator.Upgrade) error {
	return f.step("switch to " + u.Image + " on " + u.Volume)
}
func (f *fake) SwitchBack(context.Context, compose.Database) ([]string, error) {
	return []string{"upgraded"}, f.step("switch back")
}
func (f *fake) RemovePrevious(context.Context, compose.Database) ([]string, error) {
	return []string{"previous"}, f.step("remove previous")
}

type fakeStage struct{ f *fake }

func (s *fakeStage) Restore(context.Context, string) (restore.Result, error) {
	return s.f.restored, s.f.step("restore")
}
func (s *fakeStage) Stop(context.Context) error  { return s.f.step("stop stage") }
func (s *fakeStage) Close(context.Context) error { return s.f.step("close stage") }

var rulesdb = compose.Database{Name: "rulesdb", Service: "rulesdb", Image: "postgres:15", DataMount: "/var/lib/postgresql/data"}

func newFake() *fake {
	return &fake{
		state:    orchestrator.UpgradeState{Container: "p-rulesdb", Running: true, DataMajor: "15", Volume: "p_rulesdb-data", ComposeVolume: "p_rulesdb-data"},
		volumes:  map[string]bool{},
		restored: restore.Result{Verified: true, Tables: 3, Rows: 10},
	}
}

func (f *fake) request() Request {
	return Request{
		DB: rulesdb, Image: "postgres:17", ComposeFile: "/app/compose.yaml",
		Backup:    func(context.Context) (string, error) { return "backups/rulesdb-1.sql", f.step("backup") },
		Unchanged: func(context.Context, string) error { return f.step("unchanged") },
		Stage: func(_ context.Context, image string, _ compose.Database, volume, target string) (Stage, error) {
			if err := f.step("stage " + image + " on " + volume + " at " + target); err != nil {
				return nil, err
			}
			f.staged = &fakeStage{f}
			return f.staged, nil
		},
	}
}

func TestRunInOrder(t *testing.T) {
	t.Parallel()
	f := newFake()
	res, err := Run(t.Context(), f, f.request())
	require.NoError(t, err)
	assert.Equal(t, []string{"state", "image postgres:17", "create volume p_rulesdb-data-pg17", "backup", "stage postgres:17 on p_rulesdb-data-pg17 at /var/lib/postgresql/data",
		"restore", "stop stage", "close stage", "unchanged", "switch to postgres:17 on p_rulesdb-data-pg17", "state"}, f.calls)
	assert.Equal(t, Result{Database: "rulesdb", From: "15", To: "17", Image: "postgres:17", Backup: "backups/rulesdb-1.sql",
		Volume: "p_rulesdb-data-pg17", PreviousVolume: "p_rulesdb-data", Tables: 3, Rows: 10,
		ComposeChange: "in /app/compose.yaml, change service rulesdb's line image: postgres:15 to image: postgres:17 (aidb does not edit your files; until then aidb runs postgres:17 for rulesdb by its upgrade)"}, res)
	assert.True(t, f.volumes["p_rulesdb-data-pg17"], "the new volume stays: the database runs on it")
}

// Each step that fails before the switch leaves nothing the upgrade made
// (the new volume removed, the stage closed) and never switches; a failed
// switch (the orchestrator puts the old container back) removes the new
// volume too.
func TestRunFailuresLeaveTheOldDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		failAt string
		after  []string // calls after the failed one
	}{
		{"image postgres:17", nil},
		{"create volume p_rulesdb-data-pg17", nil},
		{"backup", []string{"remove volume p_rulesdb-data-pg17"}},
		{"stage postgres:17 on p_rulesdb-data-pg17 at /var/lib/postgresql/data", []string{"remove volume p_rulesdb-data-pg17"}},
		{"restore", []string{"close stage", "remove volume p_rulesdb-data-pg17"}},
		{"stop stage", []string{"close stage", "remove volume p_rulesdb-data-pg17"}},
		{"unchanged", []string{"remove volume p_rulesdb-data-pg17"}},
		{"switch to postgres:17 on p_rulesdb-data-pg17", []string{"remove volume p_rulesdb-data-pg17"}},
	} {
		t.Run(tc.failAt, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			f.failAt = tc.failAt
			_, err := Run(t.Context(), f, f.request())
			require.ErrorIs(t, err, errBoom)
			i := len(f.calls) - len(tc.after) - 1
			require.GreaterOrEqual(t, i, 0, "%v", f.calls)
			assert.Equal(t, tc.failAt, f.calls[i])
			assert.Equal(t, tc.after, nilIfEmpty(f.calls[i+1:]))
			assert.Empty(t, f.volumes, "the new volume is gone")
			if tc.failAt != "switch to postgres:17 on p_rulesdb-data-pg17" {
				assert.NotContains(t, f.calls, "switch to postgres:17 on p_rulesdb-data-pg17")
			}
			switch tc.failAt {
			case "image postgres:17":
				assert.NotContains(t, f.calls, "backup", "an image that cannot be had is refused before the backup")
				assert.Contains(t, err.Error(), "nothing was backed up or changed")
			case "create volume p_rulesdb-data-pg17":
			default:
				assert.Contains(t, err.Error(), "rulesdb runs on PostgreSQL 15 as before")
			}
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// A restore that was not compared with a manifest is no upgrade.
func TestRunRefusesAnUnverifiedRestore(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.restored.Verified = false
	_, err := Run(t.Context(), f, f.request())
	require.Error(t, err)
	assert.NotContains(t, f.calls, "switch to postgres:17 on p_rulesdb-data-pg17")
	assert.Empty(t, f.volumes)
}

// Refusals come before anything is made, with the kind cmd maps to exit
// 2 (or not running).
func TestRunRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		edit  func(*orchestrator.UpgradeState, *Request)
		kind  fault.Kind
		words string
	}{
		{"no container", func(s *orchestrator.UpgradeState, _ *Request) { s.Container = "" }, fault.NotRunning, "aidb up rulesdb"},
		{"stopped", func(s *orchestrator.UpgradeState, _ *Request) { s.Running = false }, fault.NotRunning, "aidb up rulesdb"},
		{"unfinished", func(s *orchestrator.UpgradeState, _ *Request) { s.Previous = "p-rulesdb-aidb-pre-upgrade" }, fault.Invalid, "--finish"},
		{"same major", func(_ *orchestrator.UpgradeState, r *Request) { r.Image = "postgres:15.4" }, fault.Invalid, "already holds PostgreSQL 15"},
		{"older major", func(s *orchestrator.UpgradeState, _ *Request) { s.DataMajor = "18" }, fault.Invalid, "newer major only"},
		{"no major", func(_ *orchestrator.UpgradeState, r *Request) { r.Image = "postgres:latest" }, fault.Invalid, "--image"},
		{"no volume", func(s *orchestrator.UpgradeState, _ *Request) { s.ComposeVolume = "" }, fault.Invalid, "no named volume"},
		{"not postgres", func(_ *orchestrator.UpgradeState, r *Request) { r.Image = "mysql:8" }, fault.Invalid, "mysql:8 does not name a PostgreSQL image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake()
			req := f.request()
			tc.edit(&f.state, &req)
			_, err := Run(t.Context(), f, req)
			require.Error(t, err)
			assert.Equal(t, tc.kind, fault.KindOf(err), err.Error())
			assert.Contains(t, err.Error(), tc.words)
			assert.Equal(t, []string{"state"}, f.calls, "nothing but the look")
		})
	}
}

// A database upgraded before (its data in p_rulesdb-data-pg17) moves on:
// the compose volume is still the one the new volume is named after and
// stands for, and the one replaced is the volume it runs on.
func TestRunFromAnUpgradedDatabase(t *testing.T) {
	t.Parallel()
	f := newFake()
	f.state.DataMajor, f.state.Volume = "17", "p_rulesdb-data-pg17"
	f.state.Upgrade = &orchestrator.Upgrade{Image: "postgres:17", FromImage: "postgres:15", Volume: "p_rulesdb-data-pg17", ComposeVolume: "p_rulesdb-data", Replaces: "p_rulesdb-data"}
	req := f.request()
	req.Image = "postgres:18"
	u, err := plan(req.DB, f.state, req.Image)
	require.NoError(t, err)
	assert.Equal(t, orchestrator.Upgrade{Image: "postgres:18", FromImage: "postgres:15", Volume: "p_rulesdb-data-pg18", ComposeVolume: "p_rulesdb-data", Replaces: "p_rulesdb-data-pg17"}, u)
}

func TestRollbackAndFinish(t *testing.T) {
	t.Parallel()
	upgraded := func() *fake {
		f := newFake()
		f.state.DataMajor, f.state.Previous = "17", "p-rulesdb-aidb-pre-upgrade"
		f.state.Upgrade = &orchestrator.Upgrade{Image: "postgres:17", Volume: "p_rulesdb-data-pg17"}
		return f
	}
	f := upgraded()
	res, err := Rollback(t.Context(), f, RollbackRequest{DB: rulesdb, SafetyBackup: func(context.Context) (string, error) { return "s.sql", f.step("safety backup") }})
	require.NoError(t, err)
	assert.Equal(t, []string{"state", "safety backup", "switch back"}, f.calls)
	assert.Equal(t, "s.sql", res.SafetyBackup)

	f = upgraded()
	f.failAt = "safety backup"
	_, err = Rollback(t.Context(), f, RollbackRequest{DB: rulesdb, SafetyBackup: func(context.Context) (string, error) { return "", f.step("safety backup") }})
	require.ErrorIs(t, err, errBoom)
	assert.Contains(t, err.Error(), "nothing was changed")
	assert.Equal(t, []string{"state", "safety backup"}, f.calls, "no switch without the safety backup")

	f = upgraded()
	removed, err := Finish(t.Context(), f, rulesdb)
	require.NoError(t, err)
	assert.Equal(t, []string{"previous"}, removed)
	assert.Equal(t, []string{"state", "remove previous"}, f.calls)

	for _, f := range []*fake{newFake(), func() *fake { f := upgraded(); f.state.Previous = ""; return f }()} {
		_, err = Rollback(t.Context(), f, RollbackRequest{DB: rulesdb, SafetyBackup: func(context.Context) (string, error) { return "", f.step("safety backup") }})
		assert.Equal(t, fault.Invalid, fault.KindOf(err))
		_, err = Finish(t.Context(), f, rulesdb)
		assert.Equal(t, fault.Invalid, fault.KindOf(err))
		assert.Equal(t, []string{"state", "state"}, f.calls, "nothing but the look")
	}
}

func TestComposeChange(t *testing.T) {
	t.Parallel()
	db := rulesdb
	assert.Contains(t, ComposeChange(db, "postgres:17", "/app/compose.yaml"), "in /app/compose.yaml, change service rulesdb's line image: postgres:15 to image: postgres:17")
	assert.Contains(t, ComposeChange(db, "postgres:17", compose.DefaultComposeName), "use a compose file of your own")
	assert.Contains(t, ComposeChange(db, "postgres:15", "/app/compose.yaml"), "nothing to change")
	db.ImageVars = []string{"RULESDB_IMAGE"}
	assert.Contains(t, ComposeChange(db, "postgres:17", "/app/compose.yaml"), "set RULESDB_IMAGE in .env so that it reads postgres:17")
}

func TestPostgresImage(t *testing.T) {
	t.Parallel()
	for _, ref := range []string{"postgres:17", "pgvector/pgvector:pg17", "aidb.local/postgres:17", "timescale/timescaledb:2.17.2-pg17",
		"bitnami/postgresql:17", "registry.internal:5000/team/postgres:17.2"} {
		assert.True(t, postgresImage(ref), ref)
	}
	for _, ref := range []string{"mysql:8", "redis:7", "registry.internal:5000/team/mariadb:11"} {
		assert.False(t, postgresImage(ref), ref)
	}
}
