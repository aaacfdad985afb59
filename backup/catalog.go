package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aidb/aidb/backupdir"
	"github.com/aidb/aidb/backupfile"
	"github.com/aidb/aidb/exitcode"
	"github.com/aidb/aidb/manifest"
	"github.com/aidb/aidb/retention"
)

// Listed is one backup file with what its manifest says of it. list --json
// and prune --json name its fields alike.
type Listed struct {
	File        string                 `json:"file"`
	Database    string                 `json:"database"`
	Kind        backupfile.Kind        `json:"kind"`
	Compression backupfile.Compression `json:"compression"`
	// Created is the manifest's created time; the file name's for a file
	// without a readable manifest.
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
	// Manifest is false for a file without one (a plain pg_dump file).
	Manifest bool `json:"manifest"`
	// ChecksumOK says the file's size and sha256 match its manifest.
	ChecksumOK bool `json:"checksum_ok"`
	// Problem says what is wrong when ChecksumOK is false.
	Problem string `json:"problem,omitempty"`
	Latest  bool   `json:"latest"`
	// Safety marks a safety backup aidb took before a command replaced or
	// removed data, with why and by which command.
	Safety *manifest.Safety `json:"safety,omitempty"`
	// foreign says the file has no manifest at all.
	foreign bool
}

// State is what retention makes of the file.
func (l Listed) State() retention.State {
	switch {
	case l.ChecksumOK:
		return retention.Intact
	case l.foreign:
		return retention.Foreign
	}
	return retention.Damaged
}

// List describes every backup file in dir, newest first by the manifests'
// created times, checking each against its manifest (it reads every file
// once).
func List(dir string) ([]Listed, error) {
	entries, err := backupdir.List(dir)
	if err != nil {
		return nil, err
	}
	latest := latestTargets(dir)
	out := make([]Listed, 0, len(entries))
	for _, e := range entries {
		l := Listed{File: e.Path, Database: e.Database, Kind: e.Kind, Compression: e.Compression, Created: e.Created, Size: e.Size, Latest: latest[e.Path]}
		m, err := manifest.Read(e.Path)
		switch {
		case errors.Is(err, manifest.ErrMissing):
			l.Problem, l.foreign = "no manifest: not made by aidb, or its manifest was removed", true
		case err != nil:
			l.Problem = err.Error()
		default:
			l.Manifest = true
			l.Safety = m.Safety
			if !m.Created.IsZero() {
				l.Created = m.Created
			}
			if err := manifest.Check(e.Path, m); err != nil {
				l.Problem = err.Error()
			} else {
				l.ChecksumOK = true
			}
		}
		out = append(out, l)
	}
	slices.SortStableFunc(out, func(a, b Listed) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// latestTargets maps the files the latest pointers in dir point at.
func latestTargets(dir string) map[string]bool {
	m := map[string]bool{}
	for _, target := range latestPointers(dir) {
		m[target] = true
	}
	return m
}

// latestPointers maps each latest pointer in dir to the file it names
// (which may be gone).
func latestPointers(dir string) map[string]string {
	m := map[string]string{}
	des, err := os.ReadDir(dir)
	if err != nil {
		return m
	}
	for _, de := range des {
		if de.Type()&os.ModeSymlink == 0 || !strings.Contains(de.Name(), "-latest.sql") {
			continue
		}
		if target, err := os.Readlink(filepath.Join(dir, de.Name())); err == nil {
			if !filepath.IsAbs(target) {
				target = filepath.Join(dir, target)
			}
			m[filepath.Join(dir, de.Name())] = target
		}
	}
	return m
}

// PruneItem is one backup in a prune plan: list's fields and why it stays
// or goes.
type PruneItem struct {
	Listed
	Reason string `json:"reason"`
}

// PruneSet is one set manifest in a prune plan.
type PruneSet struct {
	File   string `json:"file"`
	Remove bool   `json:"remove"`
	Reason string `json:"reason"`
}

// PrunePlan is what a prune keeps and removes, each with why. Files left
// alone (damaged, or without a manifest) are among Keep.
type PrunePlan struct {
	Dir    string      `json:"dir"`
	Keep   []PruneItem `json:"keep"`
	Remove []PruneItem `json:"remove"`
	Sets   []PruneSet  `json:"sets"`
}

// PlanPrune lists dir and applies the retention policy to it (see package
// retention): nothing is removed. A policy that would keep nothing by its
// rules is bad input.
func PlanPrune(dir string, p retention.Policy, now time.Time) (PrunePlan, error) {
	if err := p.Validate(); err != nil {
		return PrunePlan{}, exitcode.BadInput(fmt.Errorf("prune %s: %w", dir, err))
	}
	items, err := List(dir)
	if err != nil {
		return PrunePlan{}, err
	}
	sets, err := manifest.ReadSets(dir)
	if err != nil {
		return PrunePlan{}, err
	}
	byName := map[string][]string{}
	for name, s := range sets {
		for _, f := range s.Files {
			byName[name] = append(byName[name], filepath.Join(dir, f.File))
		}
	}
	in := make([]retention.Backup, len(items))
	for i, l := range items {
		b := retention.Backup{File: l.File, Database: l.Database, Kind: l.Kind, Created: l.Created, State: l.State(), Problem: l.Problem, Latest: l.Latest}
		if l.Safety != nil {
			b.Safety, b.SafetyWhy = true, l.Safety.Command+": "+l.Safety.Reason
		}
		in[i] = b
	}
	res := retention.Apply(p, now, in, byName)
	plan := PrunePlan{Dir: dir, Keep: []PruneItem{}, Remove: []PruneItem{}, Sets: []PruneSet{}}
	for i, d := range res.Decisions {
		it := PruneItem{Listed: items[i], Reason: d.Reason}
		if d.Keep {
			plan.Keep = append(plan.Keep, it)
		} else {
			plan.Remove = append(plan.Remove, it)
		}
	}
	for _, s := range res.Sets {
		plan.Sets = append(plan.Sets, PruneSet{File: filepath.Join(dir, s.Name), Remove: s.Remove, Reason: s.Reason})
	}
	// Oldest first: an interrupted prune has removed the oldest.
	slices.SortStableFunc(plan.Remove, func(a, b PruneItem) int { return a.Created.Compare(b.Created) })
	return plan, nil
}

// Prune removes what the plan says: each file with its manifest, then the
// set manifests that go (only once every file they name is gone), then
// points each latest pointer whose file is gone at the newest intact full
// backup of its database that is not a safety backup (or removes it when
// there is none).
func Prune(plan PrunePlan) error {
	var errs []error
	for _, e := range plan.Remove {
		for _, p := range []string{manifest.PathFor(e.File), e.File} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove %s: %w", p, err))
			}
		}
	}
	sets, err := manifest.ReadSets(plan.Dir)
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range plan.Sets {
		if !s.Remove || !allGone(plan.Dir, sets[filepath.Base(s.File)]) {
			continue
		}
		if err := os.Remove(s.File); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove set manifest %s: %w", s.File, err))
		}
	}
	if err := repointLatest(plan); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func allGone(dir string, s manifest.Set) bool {
	for _, f := range s.Files {
		if _, err := os.Lstat(filepath.Join(dir, f.File)); err == nil {
			return false
		}
	}
	return true
}

// repointLatest mends latest pointers whose file a prune removed.
func repointLatest(plan PrunePlan) error {
	var errs []error
	for link, target := range latestPointers(plan.Dir) {
		if _, err := os.Stat(target); err == nil {
			continue
		}
		db, _, _ := strings.Cut(filepath.Base(link), "-latest.sql")
		var best *PruneItem
		for i, k := range plan.Keep {
			if k.Database != db || k.Kind != backupfile.Full || !k.ChecksumOK || k.Safety != nil {
				continue
			}
			if best == nil || k.Created.After(best.Created) {
				best = &plan.Keep[i]
			}
		}
		if best == nil {
			if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("remove %s, which named a removed file: %w", link, err))
			}
			continue
		}
		if err := backupdir.PointLatest(plan.Dir, db, best.Compression, best.File); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
