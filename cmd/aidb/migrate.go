package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/migrations"
)

// dbMigration is one database's part of the migrate commands' --json output.
type dbMigration struct {
	Name    string               `json:"name"`
	Source  string               `json:"source"`
	Applied []migrations.Applied `json:"applied,omitempty"`
	Status  *migrations.Status   `json:"status,omitempty"`
}

func (a *app) migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate [db...]",
		Short: "Apply pending migrations (only the databases need to be up)",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.eachMigration(cmd.Context(), args, a.migrateUp)
		},
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "status [db...]",
		Short: "Show each database's applied migration version and pending migrations",
		RunE:  func(cmd *cobra.Command, args []string) error { return a.migrateStatus(cmd.Context(), args) },
	})
	cmd.AddCommand(a.migrateDownCommand())
	return cmd
}

// migrateUp applies db's pending migrations and says where it stands.
func (a *app) migrateUp(ctx context.Context, _ *session, db compose.Database, r *migrations.Runner, out *dbMigration) error {
	applied, err := r.Up(ctx)
	out.Applied = applied
	for _, m := range applied {
		a.say("%s: applied %s (%s)", db.Name, m.File, m.Duration.Round(1e6))
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", db.Name, err)
	}
	v, err := r.Version(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		a.say("%s: up to date at version %d", db.Name, v)
	} else {
		a.say("%s: now at version %d", db.Name, v)
	}
	return nil
}

// migrateStatus prints each named database's migration version and
// pending migrations as a table (or the --json document).
func (a *app) migrateStatus(ctx context.Context, names []string) error {
	w := tabwriter.NewWriter(a.stderr, 0, 0, 2, ' ', 0)
	if !a.json {
		fmt.Fprintln(w, "DATABASE\tVERSION\tLATEST\tPENDING")
	}
	err := a.eachMigration(ctx, names, func(ctx context.Context, _ *session, db compose.Database, r *migrations.Runner, out *dbMigration) error {
		st, err := r.Status(ctx)
		if err != nil {
			return fmt.Errorf("migration status of %s: %w", db.Name, err)
		}
		out.Status = &st
		pending := strings.Join(st.Pending, ", ")
		if pending == "" {
			pending = "none"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", db.Name, st.Version, st.Latest, pending)
		return nil
	})
	if !a.json {
		_ = w.Flush()
	}
	return err
}

// migrateDownOptions are migrate down's flags.
type migrateDownOptions struct {
	to       int64
	noBackup bool
}

func (a *app) migrateDownCommand() *cobra.Command {
	o := &migrateDownOptions{}
	down := &cobra.Command{
		Use:   "down [db] [--to V]",
		Short: "Revert the newest migration, or every migration newer than --to V",
		Args:  args(cobra.MaximumNArgs(1)),
		RunE:  func(cmd *cobra.Command, args []string) error { return a.migrateDown(cmd, args, o) },
	}
	down.Flags().Int64Var(&o.to, "to", 0, "revert every migration newer than this version (0: all)")
	down.Flags().BoolVar(&o.noBackup, "no-backup", false, "skip the safety backup of the data the reverted migrations may drop")
	return down
}

// target is the version migrate down reverts to: nil (no --to) for the
// newest migration only.
func (o *migrateDownOptions) target(cmd *cobra.Command) *int64 {
	if !cmd.Flags().Changed("to") {
		return nil
	}
	return &o.to
}

// migrateDown asks, then reverts the named database's (none: every
// database's) migrations, each after a safety backup.
func (a *app) migrateDown(cmd *cobra.Command, names []string, o *migrateDownOptions) error {
	to := o.target(cmd)
	which := "every database"
	if len(names) > 0 {
		which = names[0]
	}
	// A migration's Down drops what its Up made, tables and their
	// rows included: ask, and keep a safety backup, as nuke does.
	if err := a.confirm("revert migrations of " + which + " (their down steps may drop tables and the data in them)"); err != nil {
		return err
	}
	return a.eachMigration(cmd.Context(), names, func(ctx context.Context, s *session, db compose.Database, r *migrations.Runner, out *dbMigration) error {
		if !o.noBackup {
			if err := a.migrateDownBackup(ctx, cmd, s, db, r, to); err != nil {
				return err
			}
		}
		reverted, err := r.Revert(ctx, to)
		out.Applied = reverted
		for _, m := range reverted {
			a.say("%s: reverted %s", db.Name, m.File)
		}
		if err != nil {
			return fmt.Errorf("migrate down %s: %w", db.Name, err)
		}
		if len(reverted) == 0 {
			a.say("%s: nothing to revert", db.Name)
		}
		return nil
	})
}

// migrateDownBackup takes a safety backup of db when reverting to to
// reverts a migration (migrations.Reverts).
func (a *app) migrateDownBackup(ctx context.Context, cmd *cobra.Command, s *session, db compose.Database, r *migrations.Runner, to *int64) error {
	v, err := r.Version(ctx)
	if err != nil {
		return err
	}
	if !migrations.Reverts(v, to) {
		return nil
	}
	why := manifest.Safety{Command: "aidb migrate down", Reason: fmt.Sprintf("the data before aidb migrate down reverted migrations of %s from version %d", db.Name, v)}
	if _, err := a.safetyBackup(cmd, s, []compose.Database{db}, true, why); err != nil {
		return fmt.Errorf("%w\nnothing was reverted; fix that, or revert without a safety backup with --no-backup", err)
	}
	return nil
}

// eachMigration runs fn for each named database (none: all) that has
// migrations, after checking it is up (migrations.Each), holding the
// databases' operation locks, and prints the --json document.
func (a *app) eachMigration(ctx context.Context, names []string, fn func(context.Context, *session, compose.Database, *migrations.Runner, *dbMigration) error) error {
	s, err := a.openLocked(ctx, names, "migrate", false)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()

	outs := []dbMigration{}
	defer func() {
		if a.json {
			_ = a.printJSON(struct {
				Databases []dbMigration `json:"databases"`
			}{outs})
		}
	}()
	return migrations.Each(ctx, s.orch, s.dbs, migrations.EachOptions{
		LockTimeout: a.lockTimeout,
		OnWait: func(db, holder string) {
			a.say("%s: another migration holds the lock (%s); waiting for it", db, holder)
		},
		NoMigrations: func(db string) { a.say("%s: no migrations (set migrations: for it in aidb.yaml)", db) },
	}, func(ctx context.Context, db compose.Database, src migrations.Source, r *migrations.Runner) error {
		out := dbMigration{Name: db.Name, Source: src.Name}
		err := fn(ctx, s, db, r, &out)
		outs = append(outs, out)
		return err
	})
}
