package pitr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
)

// PrunePlan is what pitr prune removes of one database's base backups and
// WAL segments to keep a recovery window, and what stays.
type PrunePlan struct {
	Database string `json:"database"`
	// Keep is the window asked for: every time from Now-Keep on stays
	// recoverable (as far as it was before).
	Keep time.Duration `json:"keep_ns"`
	Now  time.Time     `json:"now"`
	// Anchor is the oldest base backup kept: the newest that ended at or
	// before Now-Keep (recovery to that time starts from it), else the
	// oldest there is.
	Anchor string `json:"anchor_base_backup"`
	// Before and After are the recoverable window before the prune and
	// after it.
	Before Window `json:"window_before"`
	After  Window `json:"window_after"`
	// KeptBases and RemovedBases are the base backups by name.
	KeptBases    []string `json:"kept_base_backups"`
	RemovedBases []string `json:"removed_base_backups"`
	// KeptParents are older base backups that stay because a kept one is
	// incremental to them (its chain); they need no WAL of their own.
	KeptParents []string `json:"kept_parents,omitempty"`
	// KeptSegments counts the whole segments that stay; RemovedSegments
	// names those that go (every one older than the start of each kept
	// base backup).
	KeptSegments    int      `json:"kept_segments"`
	RemovedSegments []string `json:"removed_segments"`
	// Removed says the plan was carried out (--yes).
	Removed bool `json:"removed"`
	// RemovedShipped counts the objects removed from the repository.
	RemovedShipped int `json:"removed_from_repository"`
}

// PlanPrune decides what of bases and segs (oldest first, as Bases and
// Segments list them) stays so that every time from now-keep to the
// newest whole segment stays as recoverable as it is: the base backup a
// recovery to now-keep starts from (the anchor: the newest that ended at
// or before it; the oldest when none did) and every newer one stay, and a
// segment goes only when it is older than the start of every kept base
// backup (on an older timeline, or before its first segment). Only the
// oldest end of the stream is cut, so a kept span never gets a gap; the
// window after is the window before from the anchor's end on, which the
// plan checks (it errors, changing nothing, where it is not).
func PlanPrune(db string, bases []Base, segs []Segment, now time.Time, keep time.Duration) (PrunePlan, error) {
	p := PrunePlan{Database: db, Keep: keep, Now: now, KeptBases: []string{}, RemovedBases: []string{}, RemovedSegments: []string{}}
	before, err := ComputeWindow(db, bases, segs)
	if err != nil {
		return p, err
	}
	p.Before = before
	cutoff := now.Add(-keep)
	anchor := 0
	for i, b := range bases {
		if !b.End.After(cutoff) {
			anchor = i
		}
	}
	kept := bases[anchor:]
	p.Anchor = kept[0].Name
	parents := parentsOf(bases, kept)
	for _, b := range bases[:anchor] {
		if parents[b.Name] {
			p.KeptParents = append(p.KeptParents, b.Name)
			continue
		}
		p.RemovedBases = append(p.RemovedBases, b.Name)
	}
	var keptSegs []Segment
	for _, s := range segs {
		if olderThanAll(s, kept) {
			p.RemovedSegments = append(p.RemovedSegments, s.Name)
			continue
		}
		keptSegs = append(keptSegs, s)
	}
	for _, b := range kept {
		p.KeptBases = append(p.KeptBases, b.Name)
	}
	p.KeptSegments = len(keptSegs)
	if p.After, err = ComputeWindow(db, kept, keptSegs); err != nil {
		return p, err
	}
	// What stays recoverable: the spans of the kept base backups, as they
	// were. A difference would be a bug here; refuse rather than remove.
	for i, sp := range p.After.Spans {
		if was := p.Before.Spans[anchor+i]; sp.Base != was.Base || !sp.From.Equal(was.From) || !sp.To.Equal(was.To) {
			return p, fmt.Errorf("prune the WAL of %s: the span of base backup %s would change (%s to %s, was %s to %s); nothing was removed",
				db, sp.Base, sp.From.UTC().Format(TimeLayout), sp.To.UTC().Format(TimeLayout),
				p.Before.Spans[anchor+i].From.UTC().Format(TimeLayout), p.Before.Spans[anchor+i].To.UTC().Format(TimeLayout))
		}
	}
	return p, nil
}

// parentsOf names the base backups of bases that a base backup of kept
// is incremental to, directly or through others.
func parentsOf(bases, kept []Base) map[string]bool {
	out := map[string]bool{}
	for _, b := range kept {
		for _, c := range Chain(bases, b) {
			if c.Name != b.Name {
				out[c.Name] = true
			}
		}
	}
	return out
}

// olderThanAll says whether segment s comes before the first segment of
// every base backup in kept: on an older timeline, or on the same one
// before the segment its WAL starts in. A segment of a newer timeline
// than a base backup is not older than it.
func olderThanAll(s Segment, kept []Base) bool {
	for _, b := range kept {
		size := b.SegmentSize
		if size == 0 {
			size = DefaultSegmentSize
		}
		if s.Timeline > b.Timeline || (s.Timeline == b.Timeline && s.SegNo >= uint64(b.StartLSN)/size) {
			return false
		}
	}
	return true
}

// PruneRequest asks to keep a recovery window of one database.
type PruneRequest struct {
	DB        compose.Database
	BackupDir string
	Keep      time.Duration
	// Yes removes what the plan names; without it the plan is only shown.
	Yes bool
	Now func() time.Time
	// Remote, if set, is pruned by the same rule once the folder is
	// (PruneShipped).
	Remote Remote
}

// Prune plans (PlanPrune) and, with Yes, removes the base backups and
// segments of req.DB that a recovery to any time from now-Keep on does
// not need: each base backup's record first (so a folder half removed is
// no base backup), then its folder, then the segments, oldest first (so
// what a kill leaves is still a stream without a gap). The caller holds
// the database's operation lock, so no base backup is being taken.
func Prune(ctx context.Context, req PruneRequest) (PrunePlan, error) {
	if req.Keep <= 0 {
		return PrunePlan{}, fault.BadInput(fmt.Errorf("--keep-window %s: give a duration of more than 0 (e.g. 7d, 36h)", req.Keep))
	}
	now := time.Now()
	if req.Now != nil {
		now = req.Now()
	}
	f := FoldersOf(req.BackupDir, req.DB)
	plan, err := PlanRestore(req.DB, req.BackupDir, time.Time{})
	var nw *NoWindowError
	if errors.As(err, &nw) {
		return PrunePlan{Database: req.DB.Name}, err
	}
	if err != nil {
		return PrunePlan{}, err
	}
	bases, err := Bases(os.DirFS(f.Base))
	if err != nil {
		return PrunePlan{}, err
	}
	p, err := PlanPrune(req.DB.Name, bases, plan.Segs, now, req.Keep)
	if err != nil || !req.Yes {
		return p, err
	}
	for _, name := range p.RemovedBases {
		dir := filepath.Join(f.Base, name)
		if err := os.Remove(filepath.Join(dir, RecordName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return p, fmt.Errorf("remove base backup %s of %s: %w", name, req.DB.Name, err)
		}
		if err := os.RemoveAll(dir); err != nil {
			return p, fmt.Errorf("remove base backup %s of %s: %w", name, req.DB.Name, err)
		}
	}
	for _, name := range p.RemovedSegments {
		for _, dir := range []string{f.WAL, filepath.Join(f.WAL, FetchedFolder)} {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return p, fmt.Errorf("remove WAL segment %s of %s: %w", name, req.DB.Name, err)
			}
		}
	}
	p.Removed = true
	if req.Remote == nil {
		return p, nil
	}
	p.RemovedShipped, err = PruneShipped(ctx, req.Remote, req.DB, now.Add(-req.Keep))
	if err != nil {
		return p, fmt.Errorf("prune %s's stream in %s (the folder is pruned): %w", req.DB.Name, req.Remote.Location(), err)
	}
	return p, nil
}
