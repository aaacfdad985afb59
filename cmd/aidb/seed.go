package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/seed"
)

// seedOptions are seed's flags.
type seedOptions struct {
	rows    int
	ifEmpty bool
}

func (a *app) seedCommand() *cobra.Command {
	o := &seedOptions{}
	cmd := &cobra.Command{
		Use:   "seed [db...]",
		Short: "Fill the default schema's tables with deterministic sample data (empty databases only)",
		RunE:  func(cmd *cobra.Command, args []string) error { return a.seed(cmd.Context(), args, o) },
	}
	cmd.Flags().IntVar(&o.rows, "rows", 1000, "rules and memories to create (other tables scale with them)")
	cmd.Flags().BoolVar(&o.ifEmpty, "if-empty", false, "skip, rather than refuse, a database that already holds data")
	return cmd
}

// seed fills the named databases with sample data (seed.Run), saying
// what it does as it goes.
func (a *app) seed(ctx context.Context, names []string, o *seedOptions) error {
	if o.rows < 1 {
		return fault.BadInput(fmt.Errorf("--rows %d: must be at least 1", o.rows))
	}
	s, err := a.openLocked(ctx, names, "seed", false)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	results, err := seed.Run(ctx, s.orch, s.dbs, seed.Options{
		Rows: o.rows, IfEmpty: o.ifEmpty,
		Progress: func(db, table string, n int64) { a.say("%s: %s: %d rows", db, table, n) },
		Done:     a.seeded,
	})
	if errors.Is(err, seed.ErrNoSampleData) || errors.Is(err, seed.ErrNotEmpty) {
		return fault.BadInput(err) // refused: nothing was written
	}
	if err != nil {
		return err
	}
	if a.json {
		return a.printJSON(seedOutput{results})
	}
	return nil
}

// seeded says how a database's seed ended.
func (a *app) seeded(o seed.Outcome) {
	if o.Seeded {
		a.say("%s: seeded in %s", o.Database, o.Duration.Round(1e6))
	} else {
		a.say("%s: already holds data; not seeded", o.Database)
	}
}

// seedOutput is seed's --json document: every database named, seeded or
// (with --if-empty) left alone because it held data.
type seedOutput struct {
	Databases []seed.Outcome `json:"databases"`
}
