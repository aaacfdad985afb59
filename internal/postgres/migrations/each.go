package migrations

import (
	"context"
	"time"

	"github.com/aidb/aidb/compose"
)

// Databases is what running the migrations of a project's databases asks
// of their lifecycle (*orchestrator.Orchestrator satisfies it).
type Databases interface {
	// RequireReady says whether db is up (nil) or how to bring it up.
	RequireReady(ctx context.Context, db compose.Database) error
	// ConnString is db's postgres:// URL from this host.
	ConnString(db compose.Database) string
}

// EachOptions tune Each.
type EachOptions struct {
	// LockTimeout bounds each wait for another run's migration lock.
	LockTimeout time.Duration
	// OnWait, if set, is told once per database when another run holds
	// its migration lock.
	OnWait func(db, holder string)
	// NoMigrations, if set, is told about each database that has no
	// migrations (no folder configured and no embedded set): it is
	// skipped.
	NoMigrations func(db string)
}

// Each runs fn with a Runner on each of dbs that has migrations, in order,
// and closes the Runner after it. Every database's source is checked
// before any database is touched; each database must be up when its turn
// comes. The first error stops the loop and is returned.
func Each(ctx context.Context, d Databases, dbs []compose.Database, opts EachOptions, fn func(ctx context.Context, db compose.Database, src Source, r *Runner) error) error {
	sources := map[string]Source{}
	for _, db := range dbs {
		src, ok, err := SourceFor(db.Name, db.Migrations)
		if err != nil {
			return err
		}
		if ok {
			sources[db.Name] = src
		}
	}
	for _, db := range dbs {
		src, ok := sources[db.Name]
		if !ok {
			if opts.NoMigrations != nil {
				opts.NoMigrations(db.Name)
			}
			continue
		}
		if err := d.RequireReady(ctx, db); err != nil {
			return err
		}
		o := Options{LockTimeout: opts.LockTimeout}
		if opts.OnWait != nil {
			o.OnWait = func(holder string) { opts.OnWait(db.Name, holder) }
		}
		r, err := Open(d.ConnString(db), src, o)
		if err != nil {
			return err
		}
		err = fn(ctx, db, src, r)
		_ = r.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
