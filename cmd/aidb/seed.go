package main

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/aidb/aidb/exitcode"
	"github.com/aidb/aidb/seed"
)

func (a *app) seedCommand() *cobra.Command {
	var rows int
	var ifEmpty bool
	cmd := &cobra.Command{
		Use:   "seed [db...]",
		Short: "Fill the default schema's tables with deterministic sample data (empty databases only)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if rows < 1 {
				return exitcode.BadInput(fmt.Errorf("--rows %d: must be at least 1", rows))
			}
			s, err := a.open(cmd.Context(), args)
			if err != nil {
				return err
			}
			defer s.Close()
			ctx := cmd.Context()
			release, err := a.lock(ctx, s, s.dbs, "seed", false)
			if err != nil {
				return err
			}
			defer release()
			seeders := map[string]seed.Seeder{}
			for _, db := range s.dbs {
				sd, ok := seed.For(db.Name)
				if !ok {
					return exitcode.BadInput(fmt.Errorf("seed %s: sample data exists only for the default schema's rulesdb and memorydb", db.Name))
				}
				seeders[db.Name] = sd
			}
			results := []seededDB{}
			for _, db := range s.dbs {
				if err := s.orch.RequireReady(ctx, db); err != nil {
					return err
				}
				conn, err := pgx.Connect(ctx, s.orch.ConnString(db))
				if err != nil {
					return fmt.Errorf("connect to %s: %w", db.Name, err)
				}
				res, err := seeders[db.Name].Seed(ctx, conn, rows, func(table string, n int64) {
					a.say("%s: %s: %d rows", db.Name, table, n)
				})
				_ = conn.Close(ctx)
				if ifEmpty && errors.Is(err, seed.ErrNotEmpty) {
					a.say("%s: already holds data; not seeded", db.Name)
					results = append(results, seededDB{Database: db.Name, Rows: map[string]int64{}})
					continue
				}
				if errors.Is(err, seed.ErrNotEmpty) {
					return exitcode.BadInput(err) // refused: nothing was written
				}
				if err != nil {
					return err
				}
				results = append(results, seededDB{Database: db.Name, Seeded: true, Rows: res.Rows, Seconds: res.Duration.Seconds()})
				a.say("%s: seeded in %s", db.Name, res.Duration.Round(1e6))
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
	Databases []seededDB `json:"databases"`
}

type seededDB struct {
	Database string `json:"database"`
	Seeded   bool   `json:"seeded"`
	// Rows per table written (empty when not seeded).
	Rows    map[string]int64 `json:"rows"`
	Seconds float64          `json:"duration_s"`
}
