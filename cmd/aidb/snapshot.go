package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/snapshot"
	"github.com/aidb/aidb/orchestrator"
)

// snapshotTargets opens a session for the named databases (none: all),
// takes their operation locks for op (lock), checks each is up, and
// returns them as the snapshot package reaches them. With skipDown and no
// names, a database that is not up is left out (said) rather than an
// error: rm, list and prune of "every database" mean every one that runs.
// Closing the session gives the locks up.
func (a *app) snapshotTargets(ctx context.Context, names []string, op string, skipDown bool) (*session, []snapshot.Target, error) {
	s, err := a.openLocked(ctx, names, op, false)
	if err != nil {
		return nil, nil, err
	}
	var ts []snapshot.Target
	for _, db := range s.dbs {
		// Repaired first, from the maintenance database: a reset killed
		// while the database was closed to connections leaves it
		// unanswering, which the readiness check would call "not up".
		if repairs, err := snapshot.Repair(ctx, target(s, db)); err == nil {
			a.sayRepairs(db.Name, repairs)
		}
		if err := s.orch.RequireReady(ctx, db); err != nil {
			if skipDown && len(names) == 0 && ctx.Err() == nil {
				a.say("%s: not up; skipped", db.Name)
				continue
			}
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

const snapshotLong = `Keep each database as it is now, as a template database on its own server
(make: ai-db-snapshot [NAME=…]). aidb reset puts it back in seconds; aidb
clone makes test databases from it.

A snapshot is CREATE DATABASE … TEMPLATE of the database: PostgreSQL copies
only a database nobody is connected to, so its connections are ended and new
ones refused for the copy, then let in again. Open transactions are rolled
back, so a snapshot holds what was committed; a connection in a transaction
refuses the snapshot unless --yes. Snapshots live in the database's volume
(down and up keep them, nuke removes them) and are never in a backup.`

func (a *app) snapshotCommand() *cobra.Command {
	var name, strategy string
	cmd := &cobra.Command{
		Use:   "snapshot [db...] [--name NAME]",
		Short: "Keep the databases as they are now, as template databases on their own servers (for aidb reset and aidb clone)",
		Long:  snapshotLong,
		Args:  args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, names []string) error {
			return a.runSnapshot(cmd.Context(), names, name, strategy)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the snapshot's name (default: the time, YYYYMMDD-HHMMSS UTC)")
	cmd.Flags().StringVar(&strategy, "strategy", "auto", "how CREATE DATABASE copies: auto, file_copy or wal_log (auto: file_copy from 32 MB)")
	cmd.AddCommand(a.snapshotListCommand(), a.snapshotRmCommand())
	return cmd
}

// runSnapshot is aidb snapshot: one snapshot.Create per database.
func (a *app) runSnapshot(ctx context.Context, names []string, name, strategy string) error {
	st, err := snapshot.ParseStrategy(strategy)
	if err != nil {
		return fault.BadInput(fmt.Errorf("--strategy: %w", err))
	}
	s, ts, err := a.snapshotTargets(ctx, names, "snapshot", false)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	var out []snapshot.CreateResult
	for i, t := range ts {
		res, err := snapshot.Create(ctx, snapshot.CreateRequest{Target: t, Name: name, Yes: a.yes, Strategy: st})
		a.sayRepairs(t.Name, res.Repairs)
		if err != nil {
			return a.undoSnapshots(ctx, ts[:i], out, fmt.Errorf("snapshot %s: %w", t.Name, err))
		}
		a.saySnapshot(res)
		out = append(out, res)
	}
	return a.printIfJSON(map[string]any{"snapshots": out})
}

// undoSnapshots removes the snapshots made (of ts) by a run that failed
// with err, also after Ctrl-C: the databases' snapshots of one run are
// taken together or not at all.
func (a *app) undoSnapshots(ctx context.Context, ts []snapshot.Target, made []snapshot.CreateResult, err error) error {
	ctx = context.WithoutCancel(ctx)
	errs := []error{err}
	for i, t := range ts {
		if _, rerr := snapshot.Remove(ctx, t, snapshot.KindSnapshot, made[i].Snapshot.Name); rerr != nil {
			errs = append(errs, rerr)
			continue
		}
		a.say("%s: removed snapshot %s again: the snapshot of every database is taken, or none", t.Name, made[i].Snapshot.Name)
	}
	return errors.Join(errs...)
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
	defer func() { _ = s.Close() }()
	var out []snapshot.Copy
	for _, db := range s.dbs {
		if err := s.orch.RequireReady(ctx, db); err != nil {
			if len(names) == 0 && ctx.Err() == nil {
				a.say("%s: not up; its snapshots and clones are not listed", db.Name)
				continue
			}
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
	s, ts, err := a.snapshotTargets(ctx, names, string(kind)+" rm", true)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
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

// snapshotAdvice is what to run next after a snapshot package error e
// ("" for none); mk: run from Makefile.ai.
func snapshotAdvice(e error, mk bool) string {
	switch e := e.(type) { //nolint:errorlint // walk hands each error of the tree in turn: a type switch on each, not errors.As
	case *snapshot.SessionsError:
		if mk {
			return "stop the application's connections, or run the target again with YES=1 to end them"
		}
		return "stop the application's connections, or pass --yes to end them"
	case *snapshot.DiffersError:
		return fmt.Sprintf("the snapshot may be damaged: take a new one, or reset to another (aidb snapshot list %s)", e.Database)
	case *snapshot.LimitError:
		return fmt.Sprintf("aidb clone prune %s removes the expired ones", e.Database)
	}
	return ""
}

// countCopies counts the snapshots and clones of each of dbs that has a
// container (waiting up to 3 s for each), before nuke removes them with
// the data; nil in Counted's place (a database not up to ask) is said.
func countCopies(ctx context.Context, s *session, dbs []compose.Database) []removedCopies {
	st, err := s.orch.Status(ctx, dbs)
	if err != nil {
		return nil
	}
	var out []removedCopies
	for i, db := range dbs {
		if st[i].State == "missing" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		c, err := snapshot.Count(cctx, target(s, db))
		cancel()
		rc := removedCopies{Database: db.Name, Counted: err == nil, Snapshots: c.Snapshots, Clones: c.Clones}
		if err != nil {
			rc.Reason = err.Error()
		}
		out = append(out, rc)
	}
	return out
}

// removedCopies is how many snapshots and clones of a database nuke
// removes with its volume; Counted false when it was not up to ask.
type removedCopies struct {
	Database  string `json:"database"`
	Counted   bool   `json:"counted"`
	Snapshots int    `json:"snapshots"`
	Clones    int    `json:"clones"`
	// Reason is why they were not counted (the database did not answer).
	Reason string `json:"reason,omitempty"`
}

// sayCopiesRemoved tells what nuke removed of snapshots and clones.
func (a *app) sayCopiesRemoved(rs []removedCopies) {
	for _, r := range rs {
		if !r.Counted {
			a.say("%s: did not answer to count its snapshots and clones (%s: not up, or published on another port than the configured one); any it had went with its volume", r.Database, r.Reason)
			continue
		}
		if r.Snapshots+r.Clones > 0 {
			a.say("%s: removed %s and %s with its data", r.Database, counted(int64(r.Snapshots), "snapshot"), counted(int64(r.Clones), "clone"))
		}
	}
}

// snapshotCounts counts the snapshots and clones of each ready database
// of dbs (st is their status, in the same order); a database that cannot
// say is left out.
func snapshotCounts(ctx context.Context, s *session, dbs []compose.Database, st []orchestrator.Status) []snapshot.Counts {
	var out []snapshot.Counts
	for i, db := range dbs {
		if i >= len(st) || !st[i].Ready {
			continue
		}
		if c, err := snapshot.Count(ctx, target(s, db)); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// saySnapshotCounts is status's line per database that has snapshots or
// clones.
func (a *app) saySnapshotCounts(cs []snapshot.Counts) {
	for _, c := range cs {
		if c.Snapshots+c.Clones == 0 {
			continue
		}
		line := fmt.Sprintf("%s: %s and %s (aidb snapshot list, aidb clone list)", c.Database, counted(int64(c.Snapshots), "snapshot"), counted(int64(c.Clones), "clone"))
		if c.Newest != "" {
			line += "; aidb reset " + c.Database + " goes back to " + c.Newest
		}
		a.say("%s", line)
	}
}
