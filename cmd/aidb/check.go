package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/ops/routine"
	"github.com/aidb/aidb/internal/store/freshness"
)

func (a *app) checkCommand() *cobra.Command {
	var maxAge time.Duration
	var verified bool
	var walLag string
	cmd := &cobra.Command{
		Use:   "check [db...] [--max-age DURATION] [--max-wal-lag SIZE]",
		Short: "Say whether each database has a recent backup (and a verified one, with --verified), and whether its WAL stream keeps up; exit 4 if not",
		Long:  checkLong,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.check(cmd.Context(), args, freshness.Policy{MaxAge: maxAge, Verified: verified}, walLag)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&maxAge, "max-age", 0, "how old the newest backup may be (e.g. 26h)")
	f.BoolVar(&verified, "verified", false, "also require a backup younger than --max-age that a verification found equal")
	f.StringVar(&walLag, "max-wal-lag", "", "how much WAL a database with point-in-time recovery on may have written that its stream has not yet saved (e.g. 64MB)")
	return cmd
}

const checkLong = `For each database (no name: every one), the newest intact full backup in the
backup folder or, when one is set, the repository (safety backups do not count), its age, and when it was last
verified. Exit 0 when each is younger than --max-age; with --verified, when
each has a backup younger than --max-age that a verification found equal to
its manifest (aidb verify, and backups taken with verification, record it).
Otherwise exit 4, naming each database and why. Fit for cron, CI schedules
and Nagios-style monitors; it reads the folder and changes nothing, and needs
no Docker engine.

With --max-wal-lag SIZE, each database with point-in-time recovery on (aidb
pitr enable; named ones must have it) is also checked, against the engine:
exit 4 when its WAL stream is not running, its slot is missing or lost WAL,
or more than SIZE of WAL is not yet streamed to the folder. Either flag may
be given alone.`

// check prints each database's freshness and, with walLag, its WAL
// stream's; a stale one or a lagging stream is the error (exit 4).
func (a *app) check(ctx context.Context, args []string, pol freshness.Policy, walLag string) error {
	var limit int64
	if walLag != "" {
		n, err := units.RAMInBytes(walLag)
		if err != nil || n <= 0 {
			return fault.BadInput(fmt.Errorf("--max-wal-lag %q: give a size, e.g. 64MB", walLag))
		}
		limit = n
	}
	if pol.MaxAge <= 0 && limit == 0 {
		return fault.BadInput(fmt.Errorf("--max-age: give how old the newest backup may be, e.g. --max-age 26h for a nightly backup (or --max-wal-lag 64MB for the WAL stream)"))
	}
	doc := map[string]any{}
	var errs []error
	if pol.MaxAge > 0 {
		errs = append(errs, a.checkBackups(ctx, args, pol, doc))
	}
	if limit > 0 {
		errs = append(errs, a.checkWAL(ctx, args, limit, doc))
	}
	err := errors.Join(errs...)
	if a.json && len(doc) > 0 {
		doc["fresh"] = err == nil
		if jerr := a.printJSON(doc); jerr != nil {
			return jerr
		}
	}
	return err
}

// checkBackups is check's --max-age part: it fills doc with what it
// found (dir, max_age_s, verified_required, databases).
func (a *app) checkBackups(ctx context.Context, args []string, pol freshness.Policy, doc map[string]any) error {
	p, err := a.loadProject(ctx)
	if err != nil {
		return err
	}
	dbs, err := p.Select(args)
	if err != nil {
		return err
	}
	names := make([]string, len(dbs))
	for i, db := range dbs {
		names[i] = db.Name
	}
	now := time.Now()
	st, err := routine.Check(ctx, p, names, pol, now)
	if st == nil {
		return err
	}
	if !a.json {
		writeCheckTable(a, st, now)
	}
	doc["dir"], doc["max_age_s"], doc["verified_required"], doc["databases"] = p.BackupDir, pol.MaxAge.Seconds(), pol.Verified, st
	return err
}

// checkWAL is check's --max-wal-lag part: each database's stream, one
// line each, and doc's "wal".
func (a *app) checkWAL(ctx context.Context, args []string, limit int64, doc map[string]any) error {
	s, err := a.open(ctx, args)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	st, err := pitr.CheckLag(ctx, s.eng, s.dbs, len(args) > 0, s.project.BackupDir, limit)
	for _, x := range st {
		state := "ok"
		if x.Problem != "" {
			state = "BEHIND: " + x.Problem
		}
		a.say("%s: WAL stream %s", x.Database, state)
	}
	if st != nil {
		doc["max_wal_lag_bytes"], doc["wal"] = limit, st
	}
	return err
}

func writeCheckTable(a *app, st []freshness.Status, now time.Time) {
	w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DATABASE\tNEWEST BACKUP\tAGE\tLAST VERIFIED\tSTATE")
	for _, s := range st {
		newest, age, ver, state := "none", "-", "never", "ok"
		if s.Created != nil {
			newest, age = s.Newest, freshness.Age(now.Sub(*s.Created))
		}
		if s.LastVerified != nil {
			ver = freshness.Age(now.Sub(s.LastVerified.At)) + " ago"
			if s.LastVerified.Outcome != "equal" {
				ver = string(s.LastVerified.Outcome) + " " + ver
			}
		}
		if !s.Fresh {
			state = "STALE: " + s.Problem
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", s.Database, newest, age, ver, state)
	}
	_ = w.Flush()
}
