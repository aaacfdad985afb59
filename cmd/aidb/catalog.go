package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/verifylog"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/ops/routine"
	"github.com/aidb/aidb/internal/store/catalog"
	"github.com/aidb/aidb/internal/store/retention"
)

func (a *app) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the backups in the backup folder and the repository, checking each against its manifest",
		Long:  listLong,
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.list(cmd.Context()) },
	}
}

const listLong = `List the backups in the backup folder and, when one is set (AIDB_REPOSITORY or
repository: in aidb.yaml), in the repository, each checked against its
manifest: a local file by reading it, a repository file by its size and the
sha256 recorded when it was uploaded. A repository file counts only with its
manifest.`

// list prints the listing; an unreachable repository is named after the
// folder's list, and the command fails (exit 1) then.
func (a *app) list(ctx context.Context) error {
	p, err := a.loadProject(ctx)
	if err != nil {
		return err
	}
	l, err := routine.List(ctx, p)
	if err != nil {
		return err
	}
	if a.json {
		doc := struct {
			Dir        string           `json:"dir"`
			Repository string           `json:"repository,omitempty"`
			Backups    []catalog.Listed `json:"backups"`
			PITR       []pitr.Listed    `json:"pitr"`
		}{Dir: p.BackupDir, Repository: l.Repository, Backups: l.Backups, PITR: l.PITR}
		if err := a.printJSON(doc); err != nil {
			return err
		}
		return l.RepositoryErr
	}
	where := p.BackupDir
	if l.Repository != "" {
		where += " or " + l.Repository
	}
	defer a.sayPITRListed(l.PITR)
	if len(l.Backups) == 0 {
		a.say("no backups in %s", where)
		return l.RepositoryErr
	}
	a.say("in %s:", where)
	if err := a.listTable(p.BackupDir, l.Backups); err != nil {
		return err
	}
	return l.RepositoryErr
}

// sayPITRListed shows each database's base backups and recoverable window
// below the backups.
func (a *app) sayPITRListed(ls []pitr.Listed) {
	for _, l := range ls {
		incremental := 0
		for _, b := range l.Bases {
			if b.Parent != "" {
				incremental++
			}
		}
		newest := l.Bases[len(l.Bases)-1]
		window := l.Problem
		if l.Window != nil {
			window = "recoverable " + l.Window.String()
		}
		a.say("point-in-time recovery of %s: %d base backup(s) (%d incremental), the newest %s; %s", l.Database, len(l.Bases), incremental, newest.Name, window)
	}
}

// listTable shows the folder's files by name (restore and verify take a
// bare name as the folder's); what is wrong with a damaged one goes below
// the table, which it would make too wide.
func (a *app) listTable(dir string, items []catalog.Listed) error {
	w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "FILE\tDATABASE\tKIND\tSIZE\tAGE\tCHECKSUM\tVERIFIED")
	var problems []string
	for _, b := range items {
		name := b.File
		if b.Location == "local" && filepath.Dir(b.File) == filepath.Clean(dir) {
			name = filepath.Base(b.File)
		}
		check := "ok"
		if !b.ChecksumOK {
			problems = append(problems, fmt.Sprintf("%s: %s", name, strings.ReplaceAll(b.Problem, b.File, name)))
			check = fmt.Sprintf("BAD (%d, below)", len(problems))
		}
		if b.Latest {
			name += " (latest)"
		}
		if b.Safety != nil {
			name += " (safety: " + b.Safety.Command + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, b.Database, b.Kind, humanBytes(b.Size), age(time.Since(b.Created)), check, verifiedText(b.Verification))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for i, pr := range problems {
		a.say("BAD (%d) %s", i+1, pr)
	}
	return nil
}

// verifiedText says when a backup was last verified, and how it went
// when it was not equal.
func verifiedText(v *catalog.Verification) string {
	if v == nil {
		return "never"
	}
	verified := age(time.Since(v.At))
	if verified != "just now" {
		verified += " ago"
	}
	if v.Outcome != verifylog.Equal {
		verified = strings.ToUpper(string(v.Outcome)) + " " + verified
	}
	return verified
}

// keepFlags are prune's keep rules: flag, make variable, aidb.yaml key.
var keepFlags = []struct{ flag, makeVar, yaml string }{
	{"keep-last", "KEEP", "keep_last"}, {"keep-hourly", "KEEP_HOURLY", "keep_hourly"}, {"keep-daily", "KEEP_DAILY", "keep_daily"},
	{"keep-weekly", "KEEP_WEEKLY", "keep_weekly"}, {"keep-monthly", "KEEP_MONTHLY", "keep_monthly"}, {"keep-yearly", "KEEP_YEARLY", "keep_yearly"},
}

// pruneOptions are prune's flags.
type pruneOptions struct {
	keep, hourly, daily, weekly, monthly, yearly int
	safetyWithin                                 time.Duration
	removeDamaged, removeForeign                 bool
	viaMake                                      string
}

func (a *app) pruneCommand() *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune [--keep-last N] [--keep-hourly|daily|weekly|monthly|yearly N]",
		Short: "Remove the backups no keep rule keeps, in the folder and the repository (shows the plan; removes only with --yes)",
		Long:  pruneLong,
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.prune(cmd, o) },
	}
	o.flags(cmd.Flags())
	return cmd
}

const pruneLong = `Remove the intact backups of each database and kind that no keep rule keeps,
ranked by the created time in their manifests (UTC), in the backup folder and,
when one is set, in the repository (each by itself). The rules are restic's:
--keep-last N keeps the newest N; --keep-hourly, --keep-daily, --keep-weekly
(ISO weeks), --keep-monthly and --keep-yearly N keep the newest backup of each
of the newest N hours, days, weeks, months and years that have one. A backup
stays when any rule keeps it. Without keep flags, the rules come from
aidb.yaml (retention.keep_last, keep_hourly, ...), else --keep-last 10. The
plan names every file, whether it stays or goes, and why (which rules keep
it); nothing is removed without --yes.

Never removed by the rules: the newest intact full backup of each database,
the file a <db>-latest pointer names, and the other files of a backup set
one of whose files stays. A file that does not match its manifest (damaged)
or has none (foreign) counts toward nothing and is left alone, unless
--remove-damaged or --remove-foreign says otherwise. Safety backups (taken by
restore and nuke) do not count toward --keep-last: they stay for
--keep-safety-within (aidb.yaml retention.safety_keep_within, 168h).`

func (o *pruneOptions) flags(f *pflag.FlagSet) {
	f.IntVar(&o.keep, "keep-last", 0, "keep the newest N intact backups of each database and kind, by their manifests (default: aidb.yaml retention.keep_last, else 10 when no keep flag is given)")
	f.IntVar(&o.hourly, "keep-hourly", 0, "keep the newest backup of each of the newest N hours that have one (UTC)")
	f.IntVar(&o.daily, "keep-daily", 0, "keep the newest backup of each of the newest N days that have one (UTC)")
	f.IntVar(&o.weekly, "keep-weekly", 0, "keep the newest backup of each of the newest N ISO weeks that have one")
	f.IntVar(&o.monthly, "keep-monthly", 0, "keep the newest backup of each of the newest N months that have one")
	f.IntVar(&o.yearly, "keep-yearly", 0, "keep the newest backup of each of the newest N years that have one")
	f.DurationVar(&o.safetyWithin, "keep-safety-within", 0, "keep safety backups younger than this, e.g. 72h; 0 keeps none by age (default: retention.safety_keep_within in aidb.yaml, 168h)")
	f.BoolVar(&o.removeDamaged, "remove-damaged", false, "remove files that do not match their manifest (left alone otherwise)")
	f.BoolVar(&o.removeForeign, "remove-foreign", false, "remove backup files without a manifest, such as plain pg_dump files (left alone otherwise)")
	f.StringVar(&o.viaMake, "make-target", "", "the make target that runs this command")
	_ = f.MarkHidden("make-target")
}

// prune plans the prune of the folder and the repository before it
// removes anything (a repository that cannot be reached changes nothing),
// prints each plan and, with --yes, carries them out.
func (a *app) prune(cmd *cobra.Command, o pruneOptions) error {
	ctx := cmd.Context()
	p, err := a.loadProject(ctx)
	if err != nil {
		return err
	}
	policy, err := prunePolicy(cmd.Flags(), o, p)
	if err != nil {
		return err
	}
	if a.yes {
		release, err := a.lockFolder(ctx, p.BackupDir, "prune")
		if err != nil {
			return err
		}
		defer release()
	}
	stores, err := routine.Stores(ctx, p)
	if err != nil {
		return err
	}
	plans, err := routine.Plan(ctx, stores, policy)
	if err != nil {
		return err
	}
	a.say("policy: %s", policy.Describe())
	removed, err := a.prunePlans(ctx, p.BackupDir, plans, o.viaMake)
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(pruneDoc(plans, removed))
	}
	return nil
}

// prunePlans prints and, with --yes, carries out each location's plan:
// the folder's (names relative to dir), then the repository's.
func (a *app) prunePlans(ctx context.Context, dir string, plans []routine.Planned, viaMake string) ([]bool, error) {
	removed := make([]bool, len(plans))
	for i, pl := range plans {
		prefix := dir + string(filepath.Separator)
		if i > 0 {
			prefix = pl.Catalog.Location() + "/"
		}
		var err error
		if removed[i], err = a.prunePlan(ctx, pl.Catalog, pl.Plan, prefix, viaMake); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// prunedPlan is one location's plan in prune's --json document.
type prunedPlan struct {
	catalog.PrunePlan
	Removed bool `json:"removed"`
}

// pruneDoc is prune's --json document: the folder's plan, and the
// repository's under "repository".
func pruneDoc(plans []routine.Planned, removed []bool) any {
	doc := struct {
		prunedPlan
		Repository *prunedPlan `json:"repository,omitempty"`
	}{prunedPlan: prunedPlan{plans[0].Plan, removed[0]}}
	if len(plans) > 1 {
		doc.Repository = &prunedPlan{plans[1].Plan, removed[1]}
	}
	return doc
}

// prunePolicy is the policy prune applies: the keep flags given are the
// whole policy; none given: aidb.yaml's rules, else --keep-last 10.
func prunePolicy(flags *pflag.FlagSet, o pruneOptions, p *compose.Project) (retention.Policy, error) {
	policy := retention.Policy{KeepLast: o.keep, KeepHourly: o.hourly, KeepDaily: o.daily, KeepWeekly: o.weekly, KeepMonthly: o.monthly, KeepYearly: o.yearly,
		SafetyKeepWithin: p.SafetyKeepWithin}
	fromFlags := false
	for _, k := range keepFlags {
		fromFlags = fromFlags || flags.Changed(k.flag)
	}
	if !fromFlags {
		policy.KeepLast = 10
		if configured, ok := routine.ConfiguredPolicy(p); ok {
			policy = configured
		}
	}
	policy.RemoveDamaged, policy.RemoveForeign = o.removeDamaged, o.removeForeign
	if flags.Changed("keep-safety-within") {
		policy.SafetyKeepWithin = o.safetyWithin
	}
	if err := policy.Validate(); err != nil {
		return policy, fault.BadInput(fmt.Errorf("%s: %w; nothing was removed", policySetting(flags, err, fromFlags, o.viaMake, p.ConfigFile), err))
	}
	return policy, nil
}

// policySetting names the setting at fault in a policy the user gave: the
// make variable through make, else the flag (or aidb.yaml's key).
func policySetting(flags *pflag.FlagSet, err error, fromFlags bool, viaMake, configFile string) string {
	var pe *retention.PolicyError
	if !errors.As(err, &pe) {
		return "--keep-last"
	}
	setting := "--" + pe.Rule
	for _, k := range keepFlags {
		switch {
		case k.flag != pe.Rule:
		case viaMake != "":
			setting = k.makeVar
		case !fromFlags:
			setting = configFile + " retention." + k.yaml
		}
	}
	if pe.Rule == "keep-last" && fromFlags && viaMake == "" && !flags.Changed("keep-last") {
		// Every rule is 0 and --keep-last was not given: the flags that
		// were are at fault.
		var given []string
		for _, k := range keepFlags {
			if flags.Changed(k.flag) {
				given = append(given, "--"+k.flag)
			}
		}
		if len(given) > 0 {
			setting = strings.Join(given, ", ")
		}
	}
	return setting
}

// prunePlan prints one location's plan (names relative to prefix, so the
// lines stay readable) and, with --yes, carries it out; it says whether
// anything was removed.
func (a *app) prunePlan(ctx context.Context, c *catalog.Catalog, plan catalog.PrunePlan, prefix, viaMake string) (bool, error) {
	short := func(s string) string { return strings.ReplaceAll(s, prefix, "") }
	a.say("in %s:", c.Location())
	kept, left := 0, 0
	for _, e := range plan.Keep {
		if why, ok := strings.CutPrefix(e.Reason, "left alone: "); ok {
			left++
			a.say("  leave  %s: %s", short(e.File), short(why))
		} else {
			kept++
			a.say("  keep   %s: %s", short(e.File), short(e.Reason))
		}
	}
	for _, e := range plan.Remove {
		a.say("  remove %s: %s", short(e.File), short(e.Reason))
	}
	removeSets := 0
	for _, s := range plan.Sets {
		if s.Remove {
			removeSets++
			a.say("  remove %s: %s", short(s.File), s.Reason)
		}
	}
	a.say("%s", pruneSummary(kept, left, len(plan.Remove)))
	switch {
	case len(plan.Remove)+removeSets == 0:
		return false, nil
	case a.yes:
		if err := c.Prune(ctx, plan); err != nil {
			return false, err
		}
		a.say("removed %d backup(s) from %s", len(plan.Remove), c.Location())
		return true, nil
	case viaMake != "":
		a.say("nothing removed: run again with YES=1 to remove them")
	default:
		a.say("nothing removed: run again with --yes to remove them")
	}
	return false, nil
}

// pruneSummary is a plan's last line.
func pruneSummary(kept, left, removed int) string {
	if left > 0 {
		return fmt.Sprintf("keep %d backup(s), leave %d alone, remove %d", kept, left, removed)
	}
	return fmt.Sprintf("keep %d backup(s), remove %d", kept, removed)
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
