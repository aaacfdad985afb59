package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/routine"
	"github.com/aidb/aidb/internal/store/freshness"
)

func (a *app) checkCommand() *cobra.Command {
	var maxAge time.Duration
	var verified bool
	cmd := &cobra.Command{
		Use:   "check [db...] --max-age DURATION",
		Short: "Say whether each database has a recent backup (and a verified one, with --verified); exit 4 if not",
		Long:  checkLong,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.check(cmd.Context(), args, freshness.Policy{MaxAge: maxAge, Verified: verified})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&maxAge, "max-age", 0, "how old the newest backup may be (e.g. 26h)")
	f.BoolVar(&verified, "verified", false, "also require a backup younger than --max-age that a verification found equal")
	return cmd
}

const checkLong = `For each database (no name: every one), the newest intact full backup in the
backup folder or, when one is set, the repository (safety backups do not count), its age, and when it was last
verified. Exit 0 when each is younger than --max-age; with --verified, when
each has a backup younger than --max-age that a verification found equal to
its manifest (aidb verify, and backups taken with verification, record it).
Otherwise exit 4, naming each database and why. Fit for cron, CI schedules
and Nagios-style monitors; it reads the folder and changes nothing, and needs
no Docker engine.`

// check prints each database's freshness; a stale one is the error.
func (a *app) check(ctx context.Context, args []string, pol freshness.Policy) error {
	if pol.MaxAge <= 0 {
		return fault.BadInput(fmt.Errorf("--max-age: give how old the newest backup may be, e.g. --max-age 26h for a nightly backup"))
	}
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
		return err
	}
	if jerr := a.printJSON(struct {
		Dir       string             `json:"dir"`
		MaxAgeS   float64            `json:"max_age_s"`
		Verified  bool               `json:"verified_required"`
		Fresh     bool               `json:"fresh"`
		Databases []freshness.Status `json:"databases"`
	}{p.BackupDir, pol.MaxAge.Seconds(), pol.Verified, err == nil, st}); jerr != nil {
		return jerr
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
