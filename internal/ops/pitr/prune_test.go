package pitr

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
)

// day is a base backup taken at t0+h hours on timeline tl, its WAL from
// segment start to segment end.
func day(name string, h int, tl uint32, start, end uint64) Base {
	return Base{Name: name, Start: t0.Add(time.Duration(h) * time.Hour).Add(-time.Minute), End: t0.Add(time.Duration(h) * time.Hour),
		Timeline: tl, StartLSN: LSN(start << 24), EndLSN: LSN(end<<24 + 40), SegmentSize: DefaultSegmentSize}
}

// run is segments from..to of timeline tl, the n-th written at t0+at+n minutes.
func run(t *testing.T, tl uint32, from, to uint64, at time.Duration) []Segment {
	var out []Segment
	for n := from; n <= to; n++ {
		out = append(out, seg(t, fmt.Sprintf("%08X%08X%08X", tl, 0, n), at+time.Duration(n-from)*time.Minute))
	}
	return out
}

func TestPlanPrune(t *testing.T) {
	t.Parallel()
	// Three base backups a day apart (at t0, t0+24h, t0+48h) and an
	// unbroken stream from the first one's start.
	bases := []Base{day("a", 0, 1, 2, 2), day("b", 24, 1, 10, 10), day("c", 48, 1, 20, 20)}
	segs := run(t, 1, 2, 25, 0)
	for _, tc := range []struct {
		name        string
		bases       []Base
		segs        []Segment
		now         time.Time
		keep        time.Duration
		anchor      string
		removedBase []string
		removedSegs int
	}{
		{"the window asked for reaches before every base: all stay", bases, segs, t0.Add(50 * time.Hour), 72 * time.Hour, "a", nil, 0},
		{"a two-day window keeps the base that ended before its start", bases, segs, t0.Add(50 * time.Hour), 48 * time.Hour, "a", nil, 0},
		{"a one-day window: the first base and the WAL before the second go", bases, segs, t0.Add(50 * time.Hour), 24 * time.Hour, "b", []string{"a"}, 8},
		{"an hour: only the newest base and its WAL", bases, segs, t0.Add(50 * time.Hour), time.Hour, "c", []string{"a", "b"}, 18},
		{"the newest base always stays", bases, segs, t0.Add(500 * time.Hour), time.Hour, "c", []string{"a", "b"}, 18},
		{"a gap in the stream: segments after it stay for a later base", bases, append(run(t, 1, 2, 4, 0), run(t, 1, 10, 25, 0)...),
			t0.Add(50 * time.Hour), 24 * time.Hour, "b", []string{"a"}, 3},
		{"a newer timeline's segments stay while an older timeline's base is kept",
			[]Base{day("a", 0, 1, 2, 2), day("b", 24, 2, 10, 10)}, append(run(t, 1, 2, 12, 0), run(t, 2, 8, 14, 0)...),
			t0.Add(30 * time.Hour), 48 * time.Hour, "a", nil, 0},
		{"an older timeline's segments go with its last base", []Base{day("a", 0, 1, 2, 2), day("b", 24, 2, 10, 10)},
			append(run(t, 1, 2, 12, 0), run(t, 2, 8, 14, 0)...), t0.Add(30 * time.Hour), time.Hour, "b", []string{"a"}, 11 + 2},
	} {
		p, err := PlanPrune("rulesdb", tc.bases, tc.segs, tc.now, tc.keep)
		require.NoError(t, err, tc.name)
		assert.Equal(t, tc.anchor, p.Anchor, tc.name)
		assert.Equal(t, append([]string{}, tc.removedBase...), p.RemovedBases, tc.name)
		assert.Len(t, p.RemovedSegments, tc.removedSegs, tc.name)
		assert.Equal(t, len(tc.segs)-tc.removedSegs, p.KeptSegments, tc.name)
		assert.Len(t, p.KeptBases, len(tc.bases)-len(tc.removedBase), tc.name)
		// What stays recoverable: from the anchor's end to the same newest
		// time as before, and every time from now-keep on, where it was.
		assert.True(t, p.After.To.Equal(p.Before.To), "%s: the window still reaches %s (%s)", tc.name, p.Before.To, p.After.To)
		cut := tc.now.Add(-tc.keep)
		for probe := p.Before.From; !probe.After(p.Before.To); probe = probe.Add(30 * time.Minute) {
			_, errBefore := CheckTarget("rulesdb", p.Before, probe)
			_, errAfter := CheckTarget("rulesdb", p.After, probe)
			if !probe.Before(cut) || !probe.Before(p.After.From) {
				assert.Equal(t, errBefore == nil, errAfter == nil, "%s: %s recoverable before the prune (%v) and after it (%v)", tc.name, probe, errBefore, errAfter)
			}
		}
		for _, name := range p.RemovedSegments {
			s, _ := ParseSegment(name, DefaultSegmentSize)
			for _, b := range tc.bases {
				if slices.Contains(p.KeptBases, b.Name) {
					assert.False(t, s.Timeline == b.Timeline && s.SegNo >= b.EndSegNo(), "%s: segment %s removed but base %s replays it", tc.name, name, b.Name)
				}
			}
		}
	}
	_, err := PlanPrune("rulesdb", nil, segs, t0, time.Hour)
	var nw *NoWindowError
	assert.ErrorAs(t, err, &nw, "no base backup: nothing to plan")
}

func TestPruneRemovesOnlyWithYes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := compose.Database{Name: "rulesdb"}
	f := FoldersOf(dir, db)
	for _, b := range []Base{day("20261205-150000", 0, 1, 2, 2), day("20261206-150000", 24, 1, 10, 10)} {
		require.NoError(t, os.MkdirAll(filepath.Join(f.Base, b.Name), 0o700))
		raw := fmt.Sprintf(`{"start":%q,"end":%q,"timeline":1,"start_lsn":"0/%X","end_lsn":"0/%X","wal_segment_size":%d}`,
			b.Start.Format(time.RFC3339), b.End.Format(time.RFC3339), uint64(b.StartLSN), uint64(b.EndLSN), DefaultSegmentSize)
		require.NoError(t, os.WriteFile(filepath.Join(f.Base, b.Name, RecordName), []byte(raw), 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(f.Base, b.Name, "base.tar.gz"), []byte("x"), 0o600))
	}
	require.NoError(t, os.MkdirAll(f.WAL, 0o700))
	for _, s := range run(t, 1, 2, 12, 0) {
		p := filepath.Join(f.WAL, s.Name)
		require.NoError(t, os.WriteFile(p, []byte("x"), 0o600))
		require.NoError(t, os.Chtimes(p, s.ModTime, s.ModTime))
	}
	require.NoError(t, os.WriteFile(filepath.Join(f.WAL, "00000001000000000000000D.partial"), []byte("x"), 0o600))
	now := func() time.Time { return t0.Add(30 * time.Hour) }

	_, err := Prune(t.Context(), PruneRequest{DB: db, BackupDir: dir, Keep: 0, Now: now})
	assert.Equal(t, fault.Invalid, fault.KindOf(err), "a window of 0 is refused: %v", err)

	plan, err := Prune(t.Context(), PruneRequest{DB: db, BackupDir: dir, Keep: time.Hour, Now: now})
	require.NoError(t, err)
	assert.False(t, plan.Removed)
	assert.Equal(t, []string{"20261205-150000"}, plan.RemovedBases)
	assert.Len(t, plan.RemovedSegments, 8, "segments 2 to 9, before the kept base's start")
	assert.DirExists(t, filepath.Join(f.Base, "20261205-150000"), "without --yes nothing is removed")
	assert.FileExists(t, filepath.Join(f.WAL, "000000010000000000000002"))

	plan, err = Prune(t.Context(), PruneRequest{DB: db, BackupDir: dir, Keep: time.Hour, Now: now, Yes: true})
	require.NoError(t, err)
	assert.True(t, plan.Removed)
	assert.NoDirExists(t, filepath.Join(f.Base, "20261205-150000"))
	assert.NoFileExists(t, filepath.Join(f.WAL, "000000010000000000000009"))
	assert.FileExists(t, filepath.Join(f.WAL, "00000001000000000000000A"), "the kept base's first segment stays")
	assert.FileExists(t, filepath.Join(f.WAL, "00000001000000000000000D.partial"), "the segment being written stays")
	after, err := PlanRestore(db, dir, time.Time{})
	require.NoError(t, err)
	assert.True(t, after.Window.To.Equal(plan.Before.To), "the window still reaches %s", plan.Before.To)
}

func TestIncrementalChains(t *testing.T) {
	t.Parallel()
	full := day("a", 0, 1, 2, 2)
	b := day("b", 24, 1, 10, 10)
	b.Parent = "a"
	c := day("c", 48, 1, 20, 20)
	c.Parent = "b"
	bases := []Base{full, b, c}

	assert.Equal(t, []string{"a", "b", "c"}, names(Chain(bases, c)))
	assert.Nil(t, Chain([]Base{full, c}, c), "a chain missing b cannot be restored")
	assert.Equal(t, []string{"a"}, names(wholeChains([]Base{full, c})), "c is left out, a stays")

	now := t0.Add(50 * time.Hour)
	for _, tc := range []struct {
		name  string
		bases []Base
		tli   uint32
		now   time.Time
		want  string
	}{
		{"none: a full one", nil, 1, now, ""},
		{"the newest, on the same timeline", bases, 1, now, "c"},
		{"another timeline (restored since): a full one", bases, 2, now, ""},
		{"a parent older than MaxParentAge: a full one", bases, 1, c.End.Add(MaxParentAge + time.Hour), ""},
		{"a chain of MaxChain: a full one", chainOf(MaxChain), 1, t0.Add(time.Duration(MaxChain) * time.Hour), ""},
		{"a chain one shorter: incremental", chainOf(MaxChain - 1), 1, t0.Add(time.Duration(MaxChain) * time.Hour), fmt.Sprintf("n%d", MaxChain-2)},
	} {
		assert.Equal(t, tc.want, parentFor(tc.bases, tc.tli, tc.now), tc.name)
	}

	// A prune keeps the chain of every kept base backup, and no WAL for it.
	segs := run(t, 1, 2, 25, 0)
	p, err := PlanPrune("rulesdb", bases, segs, now, time.Hour)
	require.NoError(t, err)
	assert.Equal(t, "c", p.Anchor)
	assert.Equal(t, []string{"a", "b"}, p.KeptParents, "c's chain stays")
	assert.Empty(t, p.RemovedBases)
	assert.Len(t, p.RemovedSegments, 18, "the WAL before c's start goes: its parents need none")
}

func names(bases []Base) []string {
	out := []string{}
	for _, b := range bases {
		out = append(out, b.Name)
	}
	return out
}

// chainOf is a full base backup and n-1 incremental ones after it, an
// hour apart.
func chainOf(n int) []Base {
	var out []Base
	for i := range n {
		b := day(fmt.Sprintf("n%d", i), i, 1, uint64(2+i), uint64(2+i))
		if i > 0 {
			b.Parent = out[i-1].Name
		}
		out = append(out, b)
	}
	return out
}
