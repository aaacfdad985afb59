package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/backup"
	"github.com/aidb/aidb/backupdir"
	"github.com/aidb/aidb/oplock"
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
			items, err := backup.List(p.BackupDir)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(struct {
					Dir     string          `json:"dir"`
					Backups []backup.Listed `json:"backups"`
				}{p.BackupDir, items})
			}
			if len(items) == 0 {
				a.say("no backups in %s", p.BackupDir)
				return nil
			}
			w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "FILE\tDATABASE\tKIND\tSIZE\tAGE\tCHECKSUM")
			for _, b := range items {
				check := "ok"
				if !b.ChecksumOK {
					check = "BAD: " + b.Problem
				}
				name := b.File
				if b.Latest {
					name += " (latest)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", name, b.Database, b.Kind, humanBytes(b.Size), age(time.Since(b.Created)), check)
			}
			return w.Flush()
		},
	}
}

func (a *app) pruneCommand() *cobra.Command {
	var keep int
	cmd := &cobra.Command{
		Use:   "prune --keep-last N",
		Short: "Remove all but the newest N backups of each database and kind (shows the plan; removes only with --yes)",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.loadProject(cmd.Context())
			if err != nil {
				return err
			}
			if a.yes {
				if err := backupdir.Ensure(p.BackupDir); err != nil {
					return err
				}
				l, err := oplock.Folder(cmd.Context(), p.BackupDir, "aidb prune", a.lockTimeout, func(holder string) {
					a.say("backup folder: waiting for %s, up to %s", holder, a.lockTimeout)
				})
				if err != nil {
					return err
				}
				defer l.Release()
				a.clearLitter(cmd.Context(), p.BackupDir, nil) // the folder only: prune needs no engine
			}
			plan, err := backup.PlanPrune(p.BackupDir, keep)
			if err != nil {
				return err
			}
			for _, e := range plan.Remove {
				a.say("remove %s", e.Path)
			}
			a.say("keep %d backup(s), remove %d", len(plan.Keep), len(plan.Remove))
			removed := false
			if a.yes && len(plan.Remove) > 0 {
				if err := backup.Prune(plan); err != nil {
					return err
				}
				removed = true
				a.say("removed %d backup(s)", len(plan.Remove))
			} else if len(plan.Remove) > 0 {
				a.say("nothing removed: run again with --yes to remove them")
			}
			if a.json {
				return a.printJSON(struct {
					backup.PrunePlan
					Removed bool `json:"removed"`
				}{plan, removed})
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&keep, "keep-last", 10, "backups to keep of each database and kind (at least 1)")
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
