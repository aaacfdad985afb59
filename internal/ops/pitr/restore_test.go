package pitr

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/orchestrator"
)

// fakeEngine records what a restore asks of the engine; every call that
// would change something fails the test unless allowed.
type fakeEngine struct {
	t     *testing.T
	state orchestrator.UpgradeState
	calls []string
}

func (f *fakeEngine) call(name string) { f.calls = append(f.calls, name) }

func (f *fakeEngine) Image(context.Context, compose.Database) (string, error) { return "img", nil }
func (f *fakeEngine) ConnString(compose.Database) string                      { return "" }
func (f *fakeEngine) WALStream(context.Context, compose.Database) (*orchestrator.WALStream, error) {
	return nil, nil
}
func (f *fakeEngine) WALNetwork(compose.Database) (string, string) { return "net", "rulesdb" }
func (f *fakeEngine) StartWALStream(context.Context, compose.Database, string, string, bool) error {
	f.call("StartWALStream")
	return nil
}
func (f *fakeEngine) RemoveWALStream(context.Context, compose.Database) (string, error) {
	f.call("RemoveWALStream")
	return "", nil
}
func (f *fakeEngine) WALStreamLogs(context.Context, compose.Database, int) (string, error) {
	return "", nil
}
func (f *fakeEngine) RunOnce(context.Context, compose.Database, pgtools.OneShot) (string, error) {
	f.call("RunOnce")
	return "", errors.New("unpack failed")
}
func (f *fakeEngine) ExecAs(context.Context, compose.Database, string, []string) (string, error) {
	f.call("ExecAs")
	return "", nil
}
func (f *fakeEngine) UpgradeState(context.Context, compose.Database) (orchestrator.UpgradeState, error) {
	return f.state, nil
}
func (f *fakeEngine) CreateUpgradeVolume(context.Context, compose.Database, orchestrator.Upgrade) error {
	f.call("CreateUpgradeVolume")
	return nil
}
func (f *fakeEngine) RemoveVolume(_ context.Context, name string) error {
	f.call("RemoveVolume " + name)
	return nil
}
func (f *fakeEngine) SwitchMajor(context.Context, compose.Database, orchestrator.Upgrade) error {
	f.call("SwitchMajor")
	return nil
}
func (f *fakeEngine) StartRecovery(context.Context, string, compose.Database, string, string, string, []string) (*pgtools.Throwaway, error) {
	f.call("StartRecovery")
	return nil, errors.New("not here")
}

// folderWithBase writes one base backup of PostgreSQL version, ended at
// t0, and one whole segment after it written at t0+1m.
func folderWithBase(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	db := compose.Database{Name: "rulesdb"}
	f := FoldersOf(dir, db)
	bdir := filepath.Join(f.Base, "20261205T150000.000Z")
	for _, d := range []string{bdir, f.WAL} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeRecord(bdir, Base{End: t0, Timeline: 1, EndLSN: 3 << 24, SegmentSize: DefaultSegmentSize, ServerVersion: version, Image: "img"}); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(f.WAL, "000000010000000000000003")
	if err := os.WriteFile(seg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(seg, t0.Add(time.Minute), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A partial segment, written later, never extends the window.
	partial := filepath.Join(f.WAL, "000000010000000000000004.partial")
	if err := os.WriteFile(partial, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

var running = orchestrator.UpgradeState{Container: "aidb-rulesdb", Running: true, DataMajor: "15", Volume: "aidb_rulesdb-data", ComposeVolume: "aidb_rulesdb-data"}

// Refusals change nothing: no volume, no container, no switch.
func TestRestoreRefusalsChangeNothing(t *testing.T) {
	t.Parallel()
	db := compose.Database{Name: "rulesdb", Service: "rulesdb", Image: "postgres:15"}
	for _, tc := range []struct {
		name    string
		state   orchestrator.UpgradeState
		version string
		target  time.Time
		kind    fault.Kind
		says    string
	}{
		{"before the base", running, "15.8", t0.Add(-time.Minute), fault.Invalid, "before the end of the oldest base backup"},
		{"after the newest whole segment", running, "15.8", t0.Add(2 * time.Minute), fault.Invalid, "after the newest whole WAL segment"},
		{"another major", running, "17.2", t0.Add(30 * time.Second), fault.Invalid, "is of PostgreSQL 17"},
		{"not running", orchestrator.UpgradeState{Container: "aidb-rulesdb"}, "15.8", t0.Add(30 * time.Second), fault.NotRunning, "aidb up rulesdb"},
		{"unfinished", func() orchestrator.UpgradeState { s := running; s.Previous = "x-aidb-pre-upgrade"; return s }(), "15.8", t0.Add(30 * time.Second), fault.Invalid, "--finish or --rollback"},
	} {
		f := &fakeEngine{t: t, state: tc.state}
		_, err := Restore(t.Context(), f, RestoreRequest{DB: db, BackupDir: folderWithBase(t, tc.version), Target: tc.target})
		if err == nil || fault.KindOf(err) != tc.kind || !strings.Contains(err.Error(), tc.says) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("%s: %v; want a %s refusal saying %q", tc.name, err, tc.kind, tc.says)
		}
		if len(f.calls) > 0 {
			t.Errorf("%s: the refusal called %v", tc.name, f.calls)
		}
	}
}

// A failure after the new volume was made removes it again, and never
// switches.
func TestRestoreFailureRemovesTheVolume(t *testing.T) {
	t.Parallel()
	db := compose.Database{Name: "rulesdb", Service: "rulesdb", Image: "postgres:15"}
	f := &fakeEngine{t: t, state: running}
	_, err := Restore(t.Context(), f, RestoreRequest{DB: db, BackupDir: folderWithBase(t, "15.8"), Target: t0.Add(30 * time.Second)})
	if err == nil || !strings.Contains(err.Error(), "unpack failed") || !strings.Contains(err.Error(), "runs on as it was") {
		t.Fatalf("Restore = %v", err)
	}
	got := strings.Join(f.calls, ", ")
	if !strings.HasPrefix(got, "CreateUpgradeVolume, RunOnce, RemoveVolume aidb_rulesdb-data-pitr-") || strings.Contains(got, "SwitchMajor") || strings.Contains(got, "RemoveWALStream") {
		t.Errorf("calls: %s", got)
	}
}
