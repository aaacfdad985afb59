package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/snapshot"
	"github.com/aidb/aidb/orchestrator"
)

const cloneLong = `Make a new database from a snapshot of <db> (the newest you took, or --from
SNAPSHOT) on the same server, and print its postgres:// URL on stdout (with
--json: the clone's metadata and URL). Tests running in parallel each take
one; aidb clone rm NAME removes it, and with --ttl aidb clone prune (and the
next clone) removes it once it expired. At most --max clones of a database
exist at once. Go tests: the aidbtest package does this with t.Cleanup.`

func (a *app) cloneCommand() *cobra.Command {
	var req snapshot.CloneRequest
	var strategy string
	cmd := &cobra.Command{
		Use:   "clone <db> [--from SNAPSHOT] [--name NAME] [--ttl DURATION]",
		Short: "Make a new database from a snapshot on the same server, for a test, and print its URL",
		Long:  cloneLong,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.runClone(cmd.Context(), argv, req, strategy)
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.From, "from", "", "the snapshot to clone (default: the newest you took)")
	f.StringVar(&req.Name, "name", "", "the clone's name (default: t and 8 random hex digits)")
	f.DurationVar(&req.TTL, "ttl", 0, "how long the clone may live; aidb clone prune removes it after (default: until removed)")
	f.IntVar(&req.Max, "max", snapshot.DefaultMaxClones, "how many clones of the database may exist at once")
	f.StringVar(&strategy, "strategy", "auto", "how CREATE DATABASE copies: auto, file_copy or wal_log")
	cmd.AddCommand(a.cloneRmCommand(), a.cloneListCommand(), a.clonePruneCommand())
	return cmd
}

// runClone is aidb clone: snapshot.Clone, then the URL on stdout.
func (a *app) runClone(ctx context.Context, argv []string, req snapshot.CloneRequest, strategy string) error {
	var err error
	if req.Strategy, err = snapshot.ParseStrategy(strategy); err != nil {
		return fault.BadInput(fmt.Errorf("--strategy: %w", err))
	}
	switch {
	case req.TTL < 0:
		return fault.BadInput(fmt.Errorf("--ttl %s: give a positive duration such as 1h (or none: the clone stays until aidb clone rm); nothing was made", req.TTL))
	case req.Max < 1:
		return fault.BadInput(fmt.Errorf("--max %d: give a limit of 1 or more clones; nothing was made", req.Max))
	}
	s, ts, err := a.snapshotTargets(ctx, argv, "clone", false)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	req.Target = ts[0]
	res, err := snapshot.Clone(ctx, req)
	a.sayRepairs(ts[0].Name, res.Repairs)
	for _, p := range res.Pruned {
		a.say("%s: removed clone %s: its --ttl ran out", ts[0].Name, p)
	}
	if err != nil {
		return err
	}
	a.say("%s: clone %s made from snapshot %s: %s (aidb clone rm %s removes it)", ts[0].Name, res.Clone.Name, res.Clone.From, orchestrator.RedactURL(res.URL), res.Clone.Name)
	if a.json {
		return a.printJSON(res)
	}
	_, err = fmt.Fprintln(a.stdout, res.URL)
	return err
}

func (a *app) cloneRmCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME [db...]",
		Short: "Remove the clone NAME (its connections are ended)",
		Args:  args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.removeCopies(cmd.Context(), snapshot.KindClone, argv[0], argv[1:])
		},
	}
}

func (a *app) cloneListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list [db...]",
		Short: "List the databases' clones, oldest first",
		Args:  args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, names []string) error {
			cs, err := a.listCopies(cmd.Context(), names, snapshot.KindClone)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(map[string]any{"clones": cs})
			}
			w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "DATABASE\tCLONE\tFROM\tCREATED\tEXPIRES\tSIZE")
			for _, c := range cs {
				exp := "never"
				if c.Expires != nil {
					exp = c.Expires.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Database, c.Name, c.From, c.Created.Format(time.RFC3339), exp, humanBytes(c.Size))
			}
			return w.Flush()
		},
	}
}

func (a *app) clonePruneCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "prune [db...]",
		Short: "Remove the clones whose --ttl ran out",
		Args:  args(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, names []string) error {
			s, ts, err := a.snapshotTargets(cmd.Context(), names, "clone prune", true)
			if err != nil {
				return err
			}
			defer func() { _ = s.Close() }()
			out := map[string][]string{}
			for _, t := range ts {
				pruned, repairs, err := snapshot.Prune(cmd.Context(), t, time.Now())
				a.sayRepairs(t.Name, repairs)
				if err != nil {
					return err
				}
				out[t.Name] = pruned
				a.say("%s: removed %s whose --ttl ran out", t.Name, counted(int64(len(pruned)), "clone"))
			}
			return a.printIfJSON(map[string]any{"pruned": out})
		},
	}
}
