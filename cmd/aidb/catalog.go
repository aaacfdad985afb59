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

	"github.com/aidb/aidb/internal/archive/verifylog"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/runs/oplock"
	"github.com/aidb/aidb/internal/store/catalog"
	"github.com/aidb/aidb/internal/store/repository"
	"github.com/aidb/aidb/internal/store/retention"
)

func (a *app) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the backups in the backup folder and the repository, checking each against its manifest",
		Long: `List the backups in the backup folder and, when one is set (AIDB_REPOSITORY or
repository: in aidb.yaml), in the repository, each checked against its
manifest: a local file by reading it, a repository file by its size and the
sha256 recorded when it was uploaded. A repository file counts only with its
manifest.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.loadProject(cmd.Context())
			if err != nil {
				return err
			}
			items, err := catalog.New(catalog.Folder{Dir: p.BackupDir}).List(cmd.Context())
			if err != nil {
				return err
			}
			// The folder is listed whatever the repository does: an
			// unreachable one is named after the list, and the command
			// fails (exit 1) then.
			var repoErr error
			repo, err := repository.ForProject(cmd.Context(), p)
			if err != nil {
				repo, repoErr = nil, err
			}
			where := p.BackupDir
			if repo != nil {
				remote, err := catalog.New(repo).List(cmd.Context())
				if err != nil {
					repoErr = err
				} else {
					items = append(items, remote...)
					where += " or " + repo.Location()
				}
			}
			if repoErr != nil {
				repoErr = fmt.Errorf("the repository %s was not listed: %w", p.Repository, repoErr)
			}
			if a.json {
				doc := struct {
					Dir        string           `json:"dir"`
					Repository string           `json:"repository,omitempty"`
					Backups    []catalog.Listed `json:"backups"`
				}{Dir: p.BackupDir, Backups: items}
				if repo != nil {
					doc.Repository = repo.Location()
				}
				if err := a.printJSON(doc); err != nil {
					return err
				}
				return repoErr
			}
			if len(items) == 0 {
				a.say("no backups in %s", where)
				return repoErr
			}
			// The folder's files by name (restore and verify take a bare
			// name as the folder's); what is wrong with a damaged one
			// goes below the table, which it would make too wide.
			a.say("in %s:", where)
			w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "FILE\tDATABASE\tKIND\tSIZE\tAGE\tCHECKSUM\tVERIFIED")
			var problems []string
			for _, b := range items {
				name := b.File
				if b.Location == "local" && filepath.Dir(b.File) == filepath.Clean(p.BackupDir) {
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
				verified := "never"
				if v := b.Verification; v != nil {
					if verified = age(time.Since(v.At)); verified != "just now" {
						verified += " ago"
					}
					if v.Outcome != verifylog.Equal {
						verified = strings.ToUpper(string(v.Outcome)) + " " + verified
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, b.Database, b.Kind, humanBytes(b.Size), age(time.Since(b.Created)), check, verified)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			for i, pr := range problems {
				a.say("BAD (%d) %s", i+1, pr)
			}
			return repoErr
		},
	}
}

// keepFlags are prune's keep rules: flag, make variable, aidb.yaml key.
var keepFlags = []struct{ flag, makeVar, yaml string }{
	{"keep-last", "KEEP", "keep_last"}, {"keep-hourly", "KEEP_HOURLY", "keep_hourly"}, {"keep-daily", "KEEP_DAILY", "keep_daily"},
	{"keep-weekly", "KEEP_WEEKLY", "keep_weekly"}, {"keep-monthly", "KEEP_MONTHLY", "keep_monthly"}, {"keep-yearly", "KEEP_YEARLY", "keep_yearly"},
}

func (a *app) pruneCommand() *cobra.Command {
	var keep, hourly, daily, weekly, monthly, yearly int
	var safetyWithin time.Duration
	var removeDamaged, removeForeign bool
	var viaMake string
	cmd := &cobra.Command{
		Use:   "prune [--keep-last N] [--keep-hourly|daily|weekly|monthly|yearly N]",
		Short: "Remove the backups no keep rule keeps, in the folder and the repository (shows the plan; removes only with --yes)",
		Long: `Remove the intact backups of each database and kind that no keep rule keeps,
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
--keep-safety-within (aidb.yaml retention.safety_keep_within, 168h).`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.loadProject(cmd.Context())
			if err != nil {
				return err
			}
			// The keep flags given are the whole policy; none given:
			// aidb.yaml's rules, else --keep-last 10.
			policy := retention.Policy{KeepLast: keep, KeepHourly: hourly, KeepDaily: daily, KeepWeekly: weekly, KeepMonthly: monthly, KeepYearly: yearly,
				SafetyKeepWithin: p.SafetyKeepWithin, RemoveDamaged: removeDamaged, RemoveForeign: removeForeign}
			fromFlags := false
			for _, k := range keepFlags {
				fromFlags = fromFlags || cmd.Flags().Changed(k.flag)
			}
			if !fromFlags {
				policy.KeepLast = 10
				if p.Keep.Any() {
					policy.KeepLast, policy.KeepHourly, policy.KeepDaily = p.Keep.Last, p.Keep.Hourly, p.Keep.Daily
					policy.KeepWeekly, policy.KeepMonthly, policy.KeepYearly = p.Keep.Weekly, p.Keep.Monthly, p.Keep.Yearly
				}
			}
			if cmd.Flags().Changed("keep-safety-within") {
				policy.SafetyKeepWithin = safetyWithin
			}
			if err := policy.Validate(); err != nil {
				// Name the setting the user gave: the make variable
				// through make, else the flag (or aidb.yaml's key).
				setting := "--keep-last"
				var pe *retention.PolicyError
				if errors.As(err, &pe) {
					setting = "--" + pe.Rule
					for _, k := range keepFlags {
						switch {
						case k.flag != pe.Rule:
						case viaMake != "":
							setting = k.makeVar
						case !fromFlags:
							setting = p.ConfigFile + " retention." + k.yaml
						}
					}
				}
				if pe != nil && pe.Rule == "keep-last" && fromFlags && viaMake == "" && !cmd.Flags().Changed("keep-last") {
					// Every rule is 0 and --keep-last was not given: the
					// flags that were are at fault.
					var given []string
					for _, k := range keepFlags {
						if cmd.Flags().Changed(k.flag) {
							given = append(given, "--"+k.flag)
						}
					}
					if len(given) > 0 {
						setting = strings.Join(given, ", ")
					}
				}
				return fault.BadInput(fmt.Errorf("%s: %w; nothing was removed", setting, err))
			}
			if a.yes {
				// The folder only: prune needs no engine.
				req := a.lockRequest("prune")
				req.Folder = p.BackupDir
				h, err := oplock.Take(cmd.Context(), req)
				if err != nil {
					return err
				}
				defer h.Release()
			}
			backups := catalog.New(catalog.Folder{Dir: p.BackupDir})
			plan, err := backups.PlanPrune(cmd.Context(), policy, time.Now())
			if err != nil {
				return err
			}
			// The repository's plan is made before anything is removed, so
			// a repository that cannot be reached changes nothing.
			repo, err := repository.ForProject(cmd.Context(), p)
			if err != nil {
				return err
			}
			var remote *catalog.Catalog
			var rplan catalog.PrunePlan
			if repo != nil {
				remote = catalog.New(repo)
				if rplan, err = remote.PlanPrune(cmd.Context(), policy, time.Now()); err != nil {
					return err
				}
			}
			a.say("policy: %s", policy.Describe())
			removed, err := a.prunePlan(cmd.Context(), backups, plan, p.BackupDir+string(filepath.Separator), viaMake)
			if err != nil {
				return err
			}
			var rremoved bool
			if remote != nil {
				if rremoved, err = a.prunePlan(cmd.Context(), remote, rplan, repo.Location()+"/", viaMake); err != nil {
					return err
				}
			}
			if a.json {
				type located struct {
					catalog.PrunePlan
					Removed bool `json:"removed"`
				}
				doc := struct {
					located
					Repository *located `json:"repository,omitempty"`
				}{located: located{plan, removed}}
				if remote != nil {
					doc.Repository = &located{rplan, rremoved}
				}
				return a.printJSON(doc)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&keep, "keep-last", 0, "keep the newest N intact backups of each database and kind, by their manifests (default: aidb.yaml retention.keep_last, else 10 when no keep flag is given)")
	f.IntVar(&hourly, "keep-hourly", 0, "keep the newest backup of each of the newest N hours that have one (UTC)")
	f.IntVar(&daily, "keep-daily", 0, "keep the newest backup of each of the newest N days that have one (UTC)")
	f.IntVar(&weekly, "keep-weekly", 0, "keep the newest backup of each of the newest N ISO weeks that have one")
	f.IntVar(&monthly, "keep-monthly", 0, "keep the newest backup of each of the newest N months that have one")
	f.IntVar(&yearly, "keep-yearly", 0, "keep the newest backup of each of the newest N years that have one")
	f.DurationVar(&safetyWithin, "keep-safety-within", 0, "keep safety backups younger than this, e.g. 72h; 0 keeps none by age (default: retention.safety_keep_within in aidb.yaml, 168h)")
	f.BoolVar(&removeDamaged, "remove-damaged", false, "remove files that do not match their manifest (left alone otherwise)")
	f.BoolVar(&removeForeign, "remove-foreign", false, "remove backup files without a manifest, such as plain pg_dump files (left alone otherwise)")
	f.StringVar(&viaMake, "make-target", "", "the make target that runs this command")
	_ = f.MarkHidden("make-target")
	return cmd
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
	if left > 0 {
		a.say("keep %d backup(s), leave %d alone, remove %d", kept, left, len(plan.Remove))
	} else {
		a.say("keep %d backup(s), remove %d", kept, len(plan.Remove))
	}
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
