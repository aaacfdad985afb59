package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/fault"
	"github.com/aidb/aidb/internal/snapshot"
)

// snapshotTargets opens a session for the named databases (none: all),
// takes their operation locks for op (lock), checks each is up, and
// returns them as the snapshot package reaches them. Closing the session
// gives the locks up.
func (a *app) snapshotTargets(ctx context.Context, names []string, op string) (*session, []snapshot.Target, error) {
	s, err := a.openLocked(ctx, names, op, false)
	if err != nil {
		return nil, nil, err
	}
	var ts []snapshot.Target
	for _, db := range s.dbs {
		if err := s.orch.RequireReady(ctx, db); err != nil {
			_ = s.Close()
			return nil, nil, err
		}
		ts = append(ts, target(s, db))
	}
	return s, ts, nil
}

func target(s *session, db compose.Database) snapshot.Target {
	return snapshot.Target{Name: db.Name, URL: s.orch.ConnString(db)}
}

// sayRepairs tells what a library call repaired of killed runs.
func (a *app) sayRepairs(db string, repairs []string) {
	for _, r := range repairs {
		a.say("%s: repaired what a killed aidb run left: %s", db, r)
	}
}

func (a *app) snapshotCommand() *cobra.Command {
	var name, strategy string
	cmd := &cobra.Command{
		Use:   "snapshot [db...] [--name NAME]",
		Short: "Keep the databases as they are now, as template databases on their own servers (for aidb reset and aidb clone)",
		Long: `Keep each database as it is now, as a template database on its own server
(make: ai-db-snapshot [NAME=…]). aidb reset puts it back in seconds; aidb
clone makes test databases from it.

A snapshot is CREATE DATABASE … TEMPLATE of the database: PostgreSQL copies
only a database nobody is connected to, so its connections are ended and new
ones refused for the copy, then let in again. Open transactions are rolled
back, so a snapshot holds what was committed; a connection in a transaction
refuses the snapshot unless --yes. Snapshots live in the database's volume
(down and up keep them, nuke removes them) and are never in a backup.`,
		Args: args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, names []string) error {
			st, err := snapshot.ParseStrategy(strategy)
			if err != nil {
				return fault.BadInput(fmt.Errorf("--strategy: %w", err))
			}
			s, ts, err := a.snapshotTargets(cmd.Context(), names, "snapshot")
			if err != nil {
				return err
			}
			defer s.Close()
			var out []snapshot.CreateResult
			var errs []error
			for _, t := range ts {
				res, err := snapshot.Create(cmd.Context(), snapshot.CreateRequest{Target: t, Name: name, Yes: a.yes, Strategy: st})
				a.sayRepairs(t.Name, res.Repairs)
				if err != nil {
					errs = append(errs, fmt.Errorf("snapshot %s: %w", t.Name, err))
					continue
				}
				a.saySnapshot(res)
				out = append(out, res)
			}
			if err := errors.Join(errs...); err != nil {
				return err
			}
			return a.printIfJSON(map[string]any{"snapshots": out})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the snapshot's name (default: the time, YYYYMMDD-HHMMSS UTC)")
	cmd.Flags().StringVar(&strategy, "strategy", "auto", "how CREATE DATABASE copies: auto, file_copy or wal_log (auto: file_copy from 32 MB)")
	cmd.AddCommand(a.snapshotListCommand(), a.snapshotRmCommand())
	return cmd
}

func (a *app) saySnapshot(res snapshot.CreateResult) {
	c := res.Snapshot
	for _, x := range res.Ended {
		a.say("%s: ended connection %s", c.Database, x)
	}
	a.say("%s: snapshot %s taken (%s, %s, migration version %d, %s, copied in %s with %s; %s was closed to connections meanwhile)",
		c.Database, c.Name, counted(int64(len(c.Fingerprint.Tables)), "table"), counted(c.Rows(), "row"), c.MigrationVersion,
		humanBytes(c.Size), res.Took.Round(time.Millisecond), strategyText(c.Strategy), c.Database)
}

func strategyText(s string) string {
	if s == "" {
		return "a file copy (no STRATEGY before PostgreSQL 15)"
	}
	return "STRATEGY " + s
}

// printIfJSON prints v with --json.
func (a *app) printIfJSON(v any) error {
	if !a.json {
		return nil
	}
	return a.printJSON(v)
}

func (a *app) snapshotListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list [db...]",
		Short: "List the databases' snapshots, oldest first (make: ai-db-snapshots)",
		Args:  args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, names []string) error {
			cs, err := a.listCopies(cmd.Context(), names, snapshot.KindSnapshot)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]any{"snapshots": cs})
			}
			w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "DATABASE\tSNAPSHOT\tCREATED\tMIGRATION\tTABLES\tROWS\tSIZE\tKEPT BY")
			for _, c := range cs {
				by := "you"
				if c.Auto != "" {
					by = "aidb " + c.Auto + " (--undo)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", c.Database, c.Name, c.Created.Format(time.RFC3339), c.MigrationVersion,
					len(c.Fingerprint.Tables), c.Rows(), humanBytes(c.Size), by)
			}
			return w.Flush()
		},
	}
}

// listCopies lists the snapshots or clones of the named databases (none:
// all). It takes no lock: it only reads.
func (a *app) listCopies(ctx context.Context, names []string, kind snapshot.Kind) ([]snapshot.Copy, error) {
	s, err := a.open(ctx, names)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []snapshot.Copy
	for _, db := range s.dbs {
		if err := s.orch.RequireReady(ctx, db); err != nil {
			return nil, err
		}
		cs, err := snapshot.List(ctx, target(s, db), kind)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

func (a *app) snapshotRmCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME [db...]",
		Short: "Remove the snapshot NAME of the databases (none named: of every database that has one)",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.removeCopies(cmd.Context(), snapshot.KindSnapshot, argv[0], argv[1:])
		},
	}
}

// removeCopies removes the snapshot or clone name of the named databases
// (none: all); none having it is bad input.
func (a *app) removeCopies(ctx context.Context, kind snapshot.Kind, name string, names []string) error {
	s, ts, err := a.snapshotTargets(ctx, names, string(kind)+" rm")
	if err != nil {
		return err
	}
	defer s.Close()
	var removed []string
	for _, t := range ts {
		ok, err := snapshot.Remove(ctx, t, kind, name)
		if err != nil {
			return err
		}
		if ok {
			a.say("%s: removed %s %s", t.Name, kind, name)
			removed = append(removed, t.Name)
		}
	}
	if len(removed) == 0 {
		return fault.BadInput(fmt.Errorf("no %s %s: aidb %s list shows those there are", kind, name, kind))
	}
	return a.printIfJSON(map[string]any{"removed": name, "databases": removed})
}
