package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/catalog"
	"github.com/aidb/aidb/fault"
	"github.com/aidb/aidb/oplock"
	"github.com/aidb/aidb/retention"
	"github.com/aidb/aidb/verifylog"
)

func (a *app) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the backups in the backup folder, checking each against its manifest",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.loadProject(cmd.Context())
			if err != nil {
				return err
			}
			items, err := catalog.New(catalog.Folder{Dir: p.BackupDir}).List(cmd.Context())
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(struct {
					Dir     string           `json:"dir"`
					Backups []catalog.Listed `json:"backups"`
				}{p.BackupDir, items})
			}
			if len(items) == 0 {
				a.say("no backups in %s", p.BackupDir)
				return nil
			}
			w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "FILE\tDATABASE\tKIND\tSIZE\tAGE\tCHECKSUM\tVERIFIED")
			for _, b := range items {
				check := "ok"
				if !b.ChecksumOK {
					check = "BAD: " + b.Problem
				}
				name := b.File
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
			return w.Flush()
		},
	}
}

func (a *app) pruneCommand() *cobra.Command {
	var keep int
	var safetyWithin time.Duration
	var removeDamaged, removeForeign bool
	var viaMake string
	cmd := &cobra.Command{
		Use:   "prune --keep-last N",
		Short: "Remove all but the newest N backups of each database and kind (shows the plan; removes only with --yes)",
		Long: `Remove all but the newest N intact backups of each database and kind, ranked
by the created time in their manifests. The plan names every file, whether it
stays or goes, and why; nothing is removed without --yes.

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
			policy := retention.Policy{KeepLast: keep, SafetyKeepWithin: p.SafetyKeepWithin, RemoveDamaged: removeDamaged, RemoveForeign: removeForeign}
			if cmd.Flags().Changed("keep-safety-within") {
				policy.SafetyKeepWithin = safetyWithin
			}
			if err := policy.Validate(); err != nil {
				// Name the setting the user gave: the make variable
				// through make, else the flag.
				setting := "--keep-last"
				if policy.KeepLast >= 1 {
					setting = "--keep-safety-within"
				} else if viaMake != "" {
					setting = "KEEP"
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
			// Names relative to the folder: the lines stay readable.
			short := func(s string) string { return strings.ReplaceAll(s, p.BackupDir+string(filepath.Separator), "") }
			a.say("in %s:", p.BackupDir)
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
			removed := false
			if a.yes && len(plan.Remove)+removeSets > 0 {
				if err := backups.Prune(cmd.Context(), plan); err != nil {
					return err
				}
				removed = true
				a.say("removed %d backup(s)", len(plan.Remove))
			} else if len(plan.Remove)+removeSets > 0 {
				if viaMake != "" {
					a.say("nothing removed: run again with YES=1 to remove them")
				} else {
					a.say("nothing removed: run again with --yes to remove them")
				}
			}
			if a.json {
				return a.printJSON(struct {
					catalog.PrunePlan
					Removed bool `json:"removed"`
				}{plan, removed})
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&keep, "keep-last", 10, "intact backups to keep of each database and kind, newest by their manifests (at least 1)")
	f.DurationVar(&safetyWithin, "keep-safety-within", 0, "keep safety backups younger than this, e.g. 72h; 0 keeps none by age (default: retention.safety_keep_within in aidb.yaml, 168h)")
	f.BoolVar(&removeDamaged, "remove-damaged", false, "remove files that do not match their manifest (left alone otherwise)")
	f.BoolVar(&removeForeign, "remove-foreign", false, "remove backup files without a manifest, such as plain pg_dump files (left alone otherwise)")
	f.StringVar(&viaMake, "make-target", "", "the make target that runs this command")
	_ = f.MarkHidden("make-target")
	return cmd
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
