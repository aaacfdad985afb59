package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/snapshot"
)

const resetLong = `Replace each database with one of its snapshots (make: ai-db-reset [NAME=…] [YES=1]):
the newest one you took (aidb snapshot), or --to NAME.

Its connections are ended: they are named, and refuse the reset unless --yes.
What the database holds is first kept as a snapshot of its own (auto-…), so
aidb reset --undo goes back (the newest three are kept). The snapshot is
copied under a temporary name and compared with its fingerprint (tables,
rows, content, sequences, migration version; a difference is exit 3 and
nothing is replaced), then renamed in, in one transaction. A reset killed at
any point leaves the database or its snapshot whole; the next snapshot,
reset or clone puts things right and says so. Several databases are reset
together or not at all: each is checked before any changes, and when one
fails the ones already reset are put back. The copy gets what the snapshot's
database had of its own: owner, settings, its roles' settings there, grants,
comment and connection limit.`

func (a *app) resetCommand() *cobra.Command {
	var req snapshot.ResetRequest
	var strategy string
	cmd := &cobra.Command{
		Use:   "reset [db...] [--to NAME] [--undo] [--yes]",
		Short: "Replace the databases with a snapshot (the newest you took, or --to NAME); --undo goes back",
		Long:  resetLong,
		Args:  args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, names []string) error {
			return a.runReset(cmd.Context(), names, req, strategy)
		},
	}
	cmd.Flags().StringVar(&req.To, "to", "", "the snapshot to reset to (default: the newest you took)")
	cmd.Flags().BoolVar(&req.Undo, "undo", false, "go back to what the last reset replaced")
	cmd.Flags().StringVar(&strategy, "strategy", "auto", "how CREATE DATABASE copies: auto, file_copy or wal_log")
	return cmd
}

// runReset is aidb reset: snapshot.ResetAll over the databases, as req asks.
func (a *app) runReset(ctx context.Context, names []string, req snapshot.ResetRequest, strategy string) error {
	var err error
	if req.Strategy, err = snapshot.ParseStrategy(strategy); err != nil {
		return fault.BadInput(fmt.Errorf("--strategy: %w", err))
	}
	if req.To != "" && req.Undo {
		return fault.BadInput(errors.New("give --to NAME or --undo, not both"))
	}
	s, ts, err := a.snapshotTargets(ctx, names, "reset", false)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	req.Yes = a.yes
	all, err := snapshot.ResetAll(ctx, req, ts)
	for _, res := range all.Resets {
		a.sayRepairs(res.Database, res.Repairs)
	}
	if err != nil {
		for _, db := range all.Undone {
			a.say("%s: put back as it was before this reset: every database is reset, or none", db)
		}
		return err
	}
	for _, res := range all.Resets {
		a.sayReset(res)
	}
	return a.printIfJSON(map[string]any{"resets": all.Resets})
}

func (a *app) sayReset(res snapshot.ResetResult) {
	for _, x := range res.Ended {
		a.say("%s: ended connection %s", res.Database, x)
	}
	c := res.Snapshot
	a.say("%s: reset to snapshot %s of %s (%s, %s, migration version %d; equal to its fingerprint) in %s with %s",
		res.Database, c.Name, c.Created.Format(time.RFC3339), counted(int64(len(c.Fingerprint.Tables)), "table"), counted(c.Rows(), "row"),
		c.MigrationVersion, res.Took.Round(time.Millisecond), strategyText(res.Strategy))
	a.say("%s: what it held before is kept as snapshot %s: aidb reset %s --undo goes back", res.Database, res.Kept.Name, res.Database)
	for _, r := range res.Removed {
		a.say("%s: removed snapshot %s, kept by an older reset (the newest %d are kept)", res.Database, r, snapshot.DefaultKeepAuto)
	}
}
