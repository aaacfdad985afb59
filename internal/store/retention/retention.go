// Package retention decides which backups a prune keeps and which it
// removes, and why: a pure function of a policy, the clock, and the backups
// with what their manifests say of them (restic's ApplyPolicy is the model).
// It touches no files; the caller shows the plan before anything is removed.
//
// The rules, in order:
//   - A file without a manifest (foreign) or whose bytes do not match it
//     (damaged) never counts toward a rule; it is left alone unless the
//     policy says to remove such files.
//   - The user's intact backups of each database and kind, ranked by the
//     manifest's created time (not the file name), are kept by restic's
//     rules (its ApplyPolicy): keep-last N keeps the newest N; keep-hourly,
//     -daily, -weekly (ISO weeks), -monthly and -yearly N each keep the
//     newest backup of each of the newest N hours, days, ... that have a
//     backup, in UTC. A backup stays when any rule keeps it; the reason
//     names every rule that does.
//   - Safety backups (taken by aidb before a restore or nuke) count toward
//     no rule; those younger than SafetyKeepWithin stay.
//   - The newest intact full backup of each database always stays (the
//     user's, or, when the user has none, the newest safety backup), and so
//     does an intact file a <db>-latest pointer names.
//   - A set is kept whole: when any of its files stays, all stay; its
//     manifest goes only with its last file, so it never names a file that
//     is gone.
package retention

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aidb/aidb/internal/archive/backupfile"
)

// State is what a file's manifest says of it.
type State string

const (
	// Intact means the file's size and sha256 match its manifest.
	Intact State = "intact"
	// Damaged means the file does not match its manifest, or the manifest
	// cannot be read.
	Damaged State = "damaged"
	// Foreign means no manifest (a plain pg_dump file, or its manifest was
	// removed).
	Foreign State = "foreign"
)

// Backup is one file as retention sees it.
type Backup struct {
	// File identifies it (its path); set manifests name files by it.
	File     string
	Database string
	Kind     backupfile.Kind
	// Created is the manifest's created time (the name's for a foreign
	// file, which is never ranked by it).
	Created time.Time
	State   State
	// Problem says what is wrong with a damaged file.
	Problem string
	// Safety marks a safety backup; SafetyWhy says by which command and why.
	Safety    bool
	SafetyWhy string
	// Latest says a <db>-latest pointer names the file.
	Latest bool
}

// Policy is what to keep. Of the keep rules at least one must be
// positive; none may be negative.
type Policy struct {
	// KeepLast is how many of the user's newest intact backups of each
	// database and kind stay.
	KeepLast int
	// KeepHourly, KeepDaily, KeepWeekly, KeepMonthly and KeepYearly keep
	// the newest backup of each of the newest N hours, days, ISO weeks,
	// months and years (UTC) that have one, per database and kind.
	KeepHourly, KeepDaily, KeepWeekly, KeepMonthly, KeepYearly int
	// SafetyKeepWithin is how long safety backups stay; 0 keeps none by
	// age (the newest intact full backup of a database still stays).
	SafetyKeepWithin time.Duration
	// RemoveDamaged and RemoveForeign remove damaged files and files
	// without a manifest, which are otherwise left alone.
	RemoveDamaged, RemoveForeign bool
}

// PolicyError is a policy that cannot be applied; Rule names the setting
// at fault ("keep-last", "keep-daily", ..., "keep-safety-within"), so a
// caller can name the flag or variable the user gave.
type PolicyError struct {
	Rule string
	msg  string
}

func (e *PolicyError) Error() string { return e.msg }

// rule is one counting rule: its name, its count, and the period a
// backup's created time falls in ("" for keep-last, where every backup is
// a period of its own).
type rule struct {
	name   string
	count  int
	period func(time.Time) string
}

func (p Policy) rules() []rule {
	return []rule{
		{"keep-last", p.KeepLast, nil},
		{"keep-hourly", p.KeepHourly, func(t time.Time) string { return t.Format("hour 2006-01-02 15h") }},
		{"keep-daily", p.KeepDaily, func(t time.Time) string { return t.Format("day 2006-01-02") }},
		{"keep-weekly", p.KeepWeekly, func(t time.Time) string {
			y, w := t.ISOWeek()
			return fmt.Sprintf("week %04d-W%02d", y, w)
		}},
		{"keep-monthly", p.KeepMonthly, func(t time.Time) string { return t.Format("month 2006-01") }},
		{"keep-yearly", p.KeepYearly, func(t time.Time) string { return t.Format("year 2006") }},
	}
}

// Describe is the policy's keep rules as flags would give them, e.g.
// "keep-last 3, keep-daily 7"; rules of 0 are left out.
func (p Policy) Describe() string {
	var parts []string
	for _, r := range p.rules() {
		if r.count > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", r.name, r.count))
		}
	}
	return strings.Join(parts, ", ")
}

// Validate rejects a policy that would keep nothing by its rules, or has a
// negative count or duration (a *PolicyError).
func (p Policy) Validate() error {
	any := false
	for _, r := range p.rules() {
		if r.count < 0 {
			return &PolicyError{r.name, fmt.Sprintf("%s %d is negative: give a count of 1 or more, or 0 to leave the rule out", r.name, r.count)}
		}
		any = any || r.count > 0
	}
	if !any {
		return &PolicyError{"keep-last", "every keep rule is 0, which would remove every backup of a database: keep at least 1 (keep-last, or keep-hourly, -daily, -weekly, -monthly, -yearly)"}
	}
	if p.SafetyKeepWithin < 0 {
		return &PolicyError{"keep-safety-within", fmt.Sprintf("keep-safety-within %s is negative: give a duration such as 168h, or 0 to keep no safety backup by age", p.SafetyKeepWithin)}
	}
	return nil
}

// Decision is what happens to one backup, and why.
type Decision struct {
	Backup
	Keep   bool
	Reason string
}

// SetDecision is what happens to one set manifest.
type SetDecision struct {
	// Name is the set manifest's name.
	Name   string
	Remove bool
	Reason string
}

// Plan is every decision: one per backup, in the order given, and one per
// set.
type Plan struct {
	Decisions []Decision
	Sets      []SetDecision
}

// Apply decides, for each backup, whether it stays, and for each set
// (name → the files it names) whether its manifest goes. The policy must
// be valid.
func Apply(p Policy, now time.Time, backups []Backup, sets map[string][]string) Plan {
	ds := make([]Decision, len(backups))
	for i, b := range backups {
		ds[i] = Decision{Backup: b}
	}

	// Damaged and foreign files count toward nothing.
	for i := range ds {
		d := &ds[i]
		switch d.State {
		case Foreign:
			d.Keep, d.Reason = !p.RemoveForeign, "left alone: no manifest (not made by aidb, or its manifest was removed)"
			if p.RemoveForeign {
				d.Reason = "no manifest: removed as asked"
			}
		case Damaged:
			d.Keep, d.Reason = !p.RemoveDamaged, "left alone: damaged ("+d.Problem+")"
			if p.RemoveDamaged {
				d.Reason = "damaged (" + d.Problem + "): removed as asked"
			}
		}
	}

	// The user's intact backups, per database and kind, by the rules.
	groups := map[string][]int{}
	var order []string
	for i, d := range ds {
		if d.State != Intact || d.Safety {
			continue
		}
		key := d.Database + "\x00" + string(d.Kind)
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], i)
	}
	newestFirst := func(a, b int) int {
		if c := ds[b].Created.Compare(ds[a].Created); c != 0 {
			return c
		}
		return strings.Compare(ds[b].File, ds[a].File)
	}
	for _, key := range order {
		idx := groups[key]
		slices.SortFunc(idx, newestFirst)
		applyRules(p, ds, idx)
	}

	// Safety backups by age.
	for i := range ds {
		d := &ds[i]
		if d.State != Intact || !d.Safety {
			continue
		}
		age := now.Sub(d.Created)
		if age < p.SafetyKeepWithin {
			d.Keep, d.Reason = true, fmt.Sprintf("safety backup (%s), %s old: safety backups stay %s", d.SafetyWhy, roundAge(age), p.SafetyKeepWithin)
		} else {
			d.Reason = fmt.Sprintf("safety backup (%s), %s old: safety backups stay %s", d.SafetyWhy, roundAge(age), p.SafetyKeepWithin)
		}
	}

	// The newest intact full backup of each database always stays: the
	// user's, else a safety backup, so a prune never leaves a database
	// without one good backup.
	newest := map[string]int{}
	for i, d := range ds {
		if d.State != Intact || d.Kind != backupfile.Full {
			continue
		}
		j, ok := newest[d.Database]
		if !ok || better(d, ds[j], newestFirst(i, j) < 0) {
			newest[d.Database] = i
		}
	}
	for _, i := range newest {
		if d := &ds[i]; !d.Keep {
			d.Keep, d.Reason = true, "the newest intact full backup of "+d.Database+": always kept ("+d.Reason+")"
		}
	}
	for i := range ds {
		if d := &ds[i]; d.State == Intact && d.Latest && !d.Keep {
			d.Keep, d.Reason = true, d.Database+"-latest points at it ("+d.Reason+")"
		}
	}

	return Plan{Decisions: ds, Sets: applySets(ds, sets)}
}

// applyRules decides the backups idx of one database and kind, newest
// first, as restic's ApplyPolicy does: each rule with a count left keeps a
// backup whose period differs from that of the last one it kept (so the
// newest of each period), and counts it; keep-last keeps each backup until
// its count is spent.
func applyRules(p Policy, ds []Decision, idx []int) {
	rules := p.rules()
	left := make([]int, len(rules))
	last := make([]string, len(rules))
	for i, r := range rules {
		left[i] = r.count
	}
	for rank, i := range idx {
		d := &ds[i]
		t := d.Created.UTC()
		var why []string
		for j, r := range rules {
			if left[j] <= 0 {
				continue
			}
			if r.period == nil {
				left[j]--
				why = append(why, fmt.Sprintf("keep-last %d", r.count))
				continue
			}
			if per := r.period(t); per != last[j] {
				last[j] = per
				left[j]--
				why = append(why, fmt.Sprintf("%s %d: the newest of %s", r.name, r.count, per))
			}
		}
		pos := fmt.Sprintf("#%d of %d intact %s backups of %s, newest first", rank+1, len(idx), d.Kind, d.Database)
		if len(why) > 0 {
			d.Keep, d.Reason = true, pos+"; kept by "+strings.Join(why, "; ")
		} else {
			d.Reason = pos + "; no rule keeps it (" + p.Describe() + ")"
		}
	}
}

// better says whether candidate a should replace b as the backup that
// always stays: the user's backups before safety backups, then the newer.
func better(a, b Decision, newer bool) bool {
	if a.Safety != b.Safety {
		return !a.Safety
	}
	return newer
}

// applySets keeps each set whole once any of its files stays, and removes
// the manifest of a set none of whose files stays.
func applySets(ds []Decision, sets map[string][]string) []SetDecision {
	byFile := map[string]int{}
	for i, d := range ds {
		byFile[d.File] = i
	}
	names := make([]string, 0, len(sets))
	for name := range sets {
		names = append(names, name)
	}
	slices.Sort(names)
	var out []SetDecision
	for _, name := range names {
		var kept []string
		var members []int
		for _, f := range sets[name] {
			i, ok := byFile[f]
			if !ok {
				continue // gone already
			}
			members = append(members, i)
			if ds[i].Keep {
				kept = append(kept, f)
			}
		}
		switch {
		case len(members) == 0:
			out = append(out, SetDecision{Name: name, Remove: true, Reason: "names no file that is left"})
		case len(kept) == 0:
			out = append(out, SetDecision{Name: name, Remove: true, Reason: "every file it names is removed"})
		default:
			for _, i := range members {
				if d := &ds[i]; !d.Keep {
					d.Keep, d.Reason = true, fmt.Sprintf("in set %s with %s, which stays: a set is kept whole (%s)", name, kept[0], d.Reason)
				}
			}
			out = append(out, SetDecision{Name: name, Reason: "kept whole: " + kept[0] + " stays"})
		}
	}
	return out
}

func roundAge(d time.Duration) time.Duration {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute)
	case d >= time.Minute:
		return d.Round(time.Second)
	}
	return max(d.Round(time.Second), 0)
}
