package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/seed"
)

func (a *app) seedCommand() *cobra.Command {
	var rows int
	var ifEmpty bool
	cmd := &cobra.Command{
		Use:   "seed [db...]",
		Short: "Fill the default schema's tables with deterministic sample data (empty databases only)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if rows < 1 {
				return fault.BadInput(fmt.Errorf("--rows %d: must be at least 1", rows))
			}
			s, err := a.openLocked(cmd.Context(), args, "seed", false)
			if err != nil {
				return err
			}
			defer s.Close()
			results, err := seed.Run(cmd.Context(), s.orch, s.dbs, seed.Options{
				Rows: rows, IfEmpty: ifEmpty,
				Progress: func(db, table string, n int64) { a.say("%s: %s: %d rows", db, table, n) },
				Done: func(o seed.Outcome) {
					if o.Seeded {
						a.say("%s: seeded in %s", o.Database, o.Duration.Round(1e6))
					} else {
						a.say("%s: already holds data; not seeded", o.Database)
					}
				},
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
		},
	}
	cmd.Flags().IntVar(&rows, "rows", 1000, "rules and memories to create (other tables scale with them)")
	cmd.Flags().BoolVar(&ifEmpty, "if-empty", false, "skip, rather than refuse, a database that already holds data")
	return cmd
}

// seedOutput is seed's --json document: every database named, seeded or
// (with --if-empty) left alone because it held data.
type seedOutput struct {
	Databases []seed.Outcome `json:"databases"`
}
