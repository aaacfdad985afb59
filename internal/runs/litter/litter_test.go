package litter

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/runs/owner"
	"github.com/aidb/aidb/orchestrator"
)

// procs is a fake process table: pid to start time.
type procs map[int]uint64

func (p procs) StartTime(pid int) (uint64, bool) {
	start, ok := p[pid]
	return start, ok
}

// engine is a fake engine holding containers; failing ids cannot be removed.
type engine struct {
	containers []pgtools.WorkContainer
	failing    map[string]bool
	removed    []string
}

func (e *engine) WorkContainers(context.Context) ([]pgtools.WorkContainer, error) {
	return e.containers, nil
}

func (e *engine) RemoveWorkContainer(_ context.Context, id string) error {
	if e.failing[id] {
		return errors.New("engine says no")
	}
	e.removed = append(e.removed, id)
	return nil
}

func name(base string, o owner.Owner, ext string) string { return base + owner.Mark + o.String() + ext }

func TestClearRemovesOnlyDeadOwnersWork(t *testing.T) {
	t.Parallel()
	self := owner.Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 100, Start: 5000}
	live := owner.Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 200, Start: 7000}
	killed := owner.Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 300, Start: 8000} // pid 300 now runs another process
	lastBoot := owner.Owner{Host: "aaaaaa", Boot: "cccccc", PID: 200, Start: 7000}
	otherHost := owner.Owner{Host: "dddddd", Boot: "bbbbbb", PID: 400, Start: 1}
	table := procs{100: 5000, 200: 7000, 300: 9000}

	dir := t.TempDir()
	file := func(n string, size int) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), make([]byte, size), 0o600))
	}
	fifo := func(n string) { mkfifo(t, filepath.Join(dir, n)) }
	// The killed run's partial backup, manifest and latest pointer, and its
	// helper's pipes.
	file(name("rulesdb-20250517-093005.sql", killed, ".partial"), 1000)
	file(name("rulesdb-20250517-093005.sql.manifest.json", killed, ".partial"), 10)
	require.NoError(t, os.Symlink("rulesdb-20250517-093005.sql", filepath.Join(dir, name("rulesdb-latest.sql", killed, ".partial"))))
	fifo(name(".aidb-dump-0a1b2c.script", killed, ".fifo"))
	fifo(name(".aidb-dump-0a1b2c.0", killed, ".fifo"))
	// An earlier boot's.
	file(name("memorydb-20250517-093005.sql", lastBoot, ".partial"), 5)
	// A live run's, this process's and another host's stay.
	keep := []string{
		name("memorydb-20250518-000000.sql", live, ".partial"),
		name("memorydb-20250518-000001.sql", self, ".partial"),
		name("memorydb-20250518-000002.sql", otherHost, ".partial"),
	}
	for _, n := range keep {
		file(n, 1)
	}
	fifo(name(".aidb-load-3d4e5f.in", live, ".fifo"))
	keep = append(keep, name(".aidb-load-3d4e5f.in", live, ".fifo"))
	// An older aidb's, which named no owner: listed, kept.
	unowned := []string{"rulesdb-20250101-000000.sql.partial", ".aidb-dump-9f8e7d.pgpass"}
	file(unowned[0], 3)
	file(unowned[1], 3)
	fifo(".aidb-dump-9f8e7d.fifo")
	unowned = append(unowned, ".aidb-dump-9f8e7d.fifo")
	// Backups and other files are never work files.
	others := []string{"rulesdb-20250517-093005.sql", "rulesdb-20250517-093005.sql.manifest.json", ".aidb.lock", "notes~1-2-aaaaaa-bbbbbb.txt"}
	for _, n := range others {
		file(n, 1)
	}

	e := &engine{containers: []pgtools.WorkContainer{
		{ID: "c-killed", Name: "p-dump", Role: orchestrator.RoleDump, Owner: killed.String()},
		{ID: "c-killed-verify", Name: "p-verify", Role: orchestrator.RoleVerify, Owner: killed.String()},
		{ID: "c-live", Role: orchestrator.RoleVerify, Owner: live.String()},
		{ID: "c-other-host", Role: orchestrator.RoleDump, Owner: otherHost.String()},
		{ID: "c-old", Role: orchestrator.RoleDump},
		{ID: "c-garbled", Role: orchestrator.RoleLoad, Owner: "nonsense"},
		{ID: "c-last-boot", Role: orchestrator.RoleLoad, Owner: lastBoot.String()},
	}}

	rep, err := Clear(t.Context(), Options{Dir: dir, Containers: e, Self: self, Procs: table})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"c-killed", "c-killed-verify", "c-last-boot"}, e.removed)

	require.Len(t, rep.Removed, 2)
	byPID := map[int]Left{}
	for _, l := range rep.Removed {
		byPID[l.Owner.PID] = l
	}
	k := byPID[300]
	assert.Equal(t, killed, k.Owner)
	assert.ElementsMatch(t, []string{
		name("rulesdb-20250517-093005.sql", killed, ".partial"),
		name("rulesdb-20250517-093005.sql.manifest.json", killed, ".partial"),
		name("rulesdb-latest.sql", killed, ".partial"),
	}, k.Files)
	assert.Len(t, k.Pipes, 2)
	assert.Equal(t, int64(1010), k.Bytes)
	assert.Len(t, k.Containers, 2)
	b := byPID[200]
	assert.Equal(t, lastBoot, b.Owner, "the earlier boot's pid 200 is not the live pid 200")
	assert.Len(t, b.Files, 1)
	assert.Len(t, b.Containers, 1)

	var unownedNames []string
	for _, f := range rep.UnownedFiles {
		unownedNames = append(unownedNames, filepath.Base(f))
	}
	assert.ElementsMatch(t, unowned, unownedNames)
	require.Len(t, rep.UnownedContainers, 1)
	assert.Equal(t, "c-old", rep.UnownedContainers[0].ID)

	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var left []string
	for _, de := range des {
		left = append(left, de.Name())
	}
	assert.ElementsMatch(t, slices.Concat(keep, unowned, others), left, "only the dead owners' work is gone")

	// Once cleared, nothing is left to say.
	rep, err = Clear(t.Context(), Options{Dir: dir, Containers: &engine{}, Self: self, Procs: table})
	require.NoError(t, err)
	assert.Empty(t, rep.Removed)
}

func TestClearGoesOnAfterAFailure(t *testing.T) {
	t.Parallel()
	self := owner.Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 100, Start: 5000}
	killed := owner.Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 300, Start: 8000}
	dir := t.TempDir()
	partial := filepath.Join(dir, name("rulesdb-20250517-093005.sql", killed, ".partial"))
	require.NoError(t, os.WriteFile(partial, nil, 0o600))
	e := &engine{
		containers: []pgtools.WorkContainer{{ID: "stuck", Owner: killed.String()}, {ID: "gone", Owner: killed.String()}},
		failing:    map[string]bool{"stuck": true},
	}
	rep, err := Clear(t.Context(), Options{Dir: dir, Containers: e, Self: self, Procs: procs{}})
	assert.ErrorContains(t, err, "engine says no")
	assert.Equal(t, []string{"gone"}, e.removed)
	require.Len(t, rep.Removed, 1)
	assert.Len(t, rep.Removed[0].Files, 1, "the folder is cleared even so")
	assert.NoFileExists(t, partial)

	// A missing folder holds nothing.
	_, err = Clear(t.Context(), Options{Dir: filepath.Join(dir, "nope"), Self: self, Procs: procs{}})
	assert.NoError(t, err)
}
