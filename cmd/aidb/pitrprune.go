package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	str2duration "github.com/xhit/go-str2duration/v2"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/store/repository"
)

const pitrPruneLong = `Keep a recovery window of point-in-time recovery, and remove what it does
not need (make: ai-db-pitr-prune DB=rulesdb WINDOW=7d [YES=1]).

Every time from now minus --keep-window on stays as recoverable as it is:
the base backup a recovery to the window's start begins from (the newest that
ended at or before it; the oldest when none did) and every newer one stay,
with every WAL segment from the first one's start on. Older base backups go,
and the segments before the start of every kept one: only the oldest end of
the stream is cut, so no kept stretch of WAL gets a gap, and the newest base
backup always stays. Without --yes it shows the plan and removes nothing.`

// pitrPruneCommand is aidb pitr prune.
func (a *app) pitrPruneCommand() *cobra.Command {
	var window string
	cmd := &cobra.Command{Use: "prune [db...] --keep-window DURATION [--yes]", Short: "Remove the base backups and WAL a kept recovery window does not need",
		Long: pitrPruneLong, RunE: func(cmd *cobra.Command, args []string) error { return a.pitrPrune(cmd, args, window) }}
	cmd.Flags().StringVar(&window, "keep-window", "", "how far back every time stays recoverable (e.g. 7d, 36h, 1d12h)")
	return cmd
}

// pitrPrune runs aidb pitr prune: each named database (all: those with
// base backups) keeps the window.
func (a *app) pitrPrune(cmd *cobra.Command, args []string, window string) error {
	keep, err := str2duration.ParseDuration(window)
	if err != nil || keep <= 0 {
		return fault.BadInput(fmt.Errorf("--keep-window %q: give how far back every time stays recoverable, e.g. 7d, 36h or 1d12h", window))
	}
	s, err := a.openLocked(cmd.Context(), args, "pitr prune", false)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	req := pitr.PruneRequest{BackupDir: s.project.BackupDir, Keep: keep, Yes: a.yes}
	// A repository that does not answer is not pruned: the folder is,
	// and the command fails at the end, so that neither a person nor a
	// scheduler takes the repository's window as kept.
	repo, repoErr := repository.ForProject(cmd.Context(), s.project)
	if repo != nil {
		req.Remote = repo
	}
	plans, err := a.pitrPrunePlans(cmd.Context(), s.dbs, req, len(args) == 0)
	if err != nil {
		return err
	}
	if len(plans) == 0 {
		a.say("no database has a base backup: nothing to prune (aidb pitr enable <db> starts point-in-time recovery)")
	}
	if err := a.printPITRJSON(map[string]any{"pruned": plans}); err != nil {
		return err
	}
	if repoErr != nil {
		return fmt.Errorf("the backup folder was pruned, the repository %s was not: %w; run aidb pitr prune again once it answers", s.project.Repository, repoErr)
	}
	return nil
}

// pitrPrunePlans prunes each database of dbs by req and says its plan; with
// all (no database named), those without base backups are passed over.
func (a *app) pitrPrunePlans(ctx context.Context, dbs []compose.Database, req pitr.PruneRequest, all bool) ([]pitr.PrunePlan, error) {
	plans := []pitr.PrunePlan{}
	for _, db := range dbs {
		req.DB = db
		p, err := pitr.Prune(ctx, req)
		var none *pitr.NoWindowError
		if all && errors.As(err, &none) {
			continue
		}
		if err != nil {
			return nil, err
		}
		a.sayPrunePlan(p)
		plans = append(plans, p)
	}
	return plans, nil
}

func (a *app) sayPrunePlan(p pitr.PrunePlan) {
	verb := "would remove"
	if p.Removed {
		verb = "removed"
	}
	a.say("%s: keeping every time from %s recoverable: base backup %s and %d newer, %d segments", p.Database,
		p.Now.Add(-p.Keep).UTC().Format(pitr.TimeLayout), p.Anchor, len(p.KeptBases)-1, p.KeptSegments)
	a.say("%s: %s %d base backups %v and %d segments older than the kept ones; recoverable then: %s", p.Database, verb,
		len(p.RemovedBases), p.RemovedBases, len(p.RemovedSegments), p.After)
	if len(p.KeptParents) > 0 {
		a.say("%s: keeping %v as well: kept base backups are incremental to them", p.Database, p.KeptParents)
	}
	if p.RemovedShipped > 0 {
		a.say("%s: removed %d object(s) of the same from the repository", p.Database, p.RemovedShipped)
	}
	if !p.Removed && (len(p.RemovedBases) > 0 || len(p.RemovedSegments) > 0) {
		a.say("%s: nothing was removed: add --yes (make: YES=1) to remove them", p.Database)
	}
}
