package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/store/retention"
)

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
	// name is the set manifest's name in the store.
	name string
}

// PrunePlan is what a prune keeps and removes, each with why. Files left
// alone (damaged, or without a manifest) are among Keep.
type PrunePlan struct {
	Dir    string      `json:"dir"`
	Keep   []PruneItem `json:"keep"`
	Remove []PruneItem `json:"remove"`
	Sets   []PruneSet  `json:"sets"`
}

// sets reads the set manifests the listing holds, by name. One that cannot
// be read is an error naming it.
func (c *Catalog) sets(ctx context.Context, l listing) (map[string]manifest.Set, error) {
	sets := map[string]manifest.Set{}
	for _, e := range l.entries {
		if e.Pointer || !manifest.IsSetName(e.Name) {
			continue
		}
		path := c.store.Path(e.Name)
		b, err := c.readAll(ctx, e.Name)
		if err != nil {
			return nil, fmt.Errorf("read set manifest %s: %w", path, err)
		}
		s, err := manifest.ParseSet(b, path)
		if err != nil {
			return nil, err
		}
		sets[e.Name] = s
	}
	return sets, nil
}

// PlanPrune lists the store and applies the retention policy to it (see
// package retention): nothing is removed. A policy that would keep nothing
// by its rules is bad input.
func (c *Catalog) PlanPrune(ctx context.Context, p retention.Policy, now time.Time) (PrunePlan, error) {
	if err := p.Validate(); err != nil {
		return PrunePlan{}, fault.BadInput(fmt.Errorf("prune %s: %w", c.store.Location(), err))
	}
	l, err := c.read(ctx)
	if err != nil {
		return PrunePlan{}, err
	}
	items := c.list(ctx, l)
	sets, err := c.sets(ctx, l)
	if err != nil {
		return PrunePlan{}, err
	}
	byName := map[string][]string{}
	for name, s := range sets {
		for _, f := range s.Files {
			byName[name] = append(byName[name], c.store.Path(f.File))
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
	plan := PrunePlan{Dir: c.store.Location(), Keep: []PruneItem{}, Remove: []PruneItem{}, Sets: []PruneSet{}}
	for i, d := range res.Decisions {
		it := PruneItem{Listed: items[i], Reason: d.Reason}
		if d.Keep {
			plan.Keep = append(plan.Keep, it)
		} else {
			plan.Remove = append(plan.Remove, it)
		}
	}
	for _, s := range res.Sets {
		plan.Sets = append(plan.Sets, PruneSet{File: c.store.Path(s.Name), Remove: s.Remove, Reason: s.Reason, name: s.Name})
	}
	// Oldest first: an interrupted prune has removed the oldest.
	slices.SortStableFunc(plan.Remove, func(a, b PruneItem) int { return a.Created.Compare(b.Created) })
	return plan, nil
}

// Prune removes what the plan (PlanPrune's, from this catalog) says: each
// file with its manifest (the manifest first), then the set manifests that
// go (only once every file they name is gone), then points each latest
// pointer whose file is gone at the newest intact full backup of its
// database that is not a safety backup (or removes it when there is none).
func (c *Catalog) Prune(ctx context.Context, plan PrunePlan) error {
	var errs []error
	for _, e := range plan.Remove {
		for _, name := range []string{e.name + manifest.Suffix, e.name} {
			if err := c.store.Remove(ctx, name); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", c.store.Path(name), err))
			}
		}
	}
	l, err := c.read(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	sets, err := c.sets(ctx, l)
	if err != nil {
		errs = append(errs, err)
	}
	for _, s := range plan.Sets {
		// A set manifest that could not be read is kept: nothing says its
		// files are gone.
		set, ok := sets[s.name]
		if !s.Remove || !ok || !allGone(l, set) {
			continue
		}
		if err := c.store.Remove(ctx, s.name); err != nil {
			errs = append(errs, fmt.Errorf("remove set manifest %s: %w", s.File, err))
		}
	}
	if err := c.repointLatest(ctx, l, plan); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// allGone says none of the set's files is in the store.
func allGone(l listing, s manifest.Set) bool {
	for _, f := range s.Files {
		if _, ok := l.byName[f.File]; ok {
			return false
		}
	}
	return true
}

// repointLatest mends latest pointers whose file is gone.
func (c *Catalog) repointLatest(ctx context.Context, l listing, plan PrunePlan) error {
	var errs []error
	for link, target := range l.latest() {
		if l.has(target) {
			continue
		}
		db, _, _ := backupfile.ParseLatest(link)
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
			if err := c.store.Remove(ctx, link); err != nil {
				errs = append(errs, fmt.Errorf("remove %s, which named a removed file: %w", c.store.Path(link), err))
			}
			continue
		}
		if err := c.PointLatest(ctx, db, best.Compression, best.name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
