package seed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/compose"
)

// ErrNoSampleData says a database is not one of the default schema's, for
// which alone seed has sample data.
var ErrNoSampleData = errors.New("sample data exists only for the default schema's rulesdb and memorydb")

// Databases is what seeding a project's databases asks of their lifecycle
// (*orchestrator.Orchestrator satisfies it).
type Databases interface {
	// RequireReady says whether db is up (nil) or how to bring it up.
	RequireReady(ctx context.Context, db compose.Database) error
	// ConnString is db's postgres:// URL from this host.
	ConnString(db compose.Database) string
}

// Options say how much to seed and whom to tell.
type Options struct {
	// Rows is the number of rules and memories (see Seeder.Seed).
	Rows int
	// IfEmpty skips, rather than refuses, a database that holds data.
	IfEmpty bool
	// Progress, if set, is told each table seeded, with its rows.
	Progress func(db, table string, rows int64)
	// Done, if set, is told each database's outcome as it finishes.
	Done func(Outcome)
}

// Outcome is what seeding did to one database.
type Outcome struct {
	Database string `json:"database"`
	// Seeded is false for a database skipped because it held data
	// (Options.IfEmpty).
	Seeded bool `json:"seeded"`
	// Rows per table written (empty when not seeded).
	Rows map[string]int64 `json:"rows"`
	// Duration is the time seeding took (Seconds in JSON).
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"duration_s"`
}

// seedFunc seeds the database at connString; unit tests replace it.
type seedFunc func(ctx context.Context, connString string, s Seeder, rows int, progress func(table string, rows int64)) (Result, error)

// dial connects to the database and seeds it.
func dial(ctx context.Context, connString string, s Seeder, rows int, progress func(string, int64)) (Result, error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return Result{}, fmt.Errorf("connect to %s: %w", s.Database, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return s.Seed(ctx, conn, rows, progress)
}

// Run seeds each of dbs in order, each in one transaction (Seeder.Seed).
// Every database must have sample data (ErrNoSampleData, before any is
// touched) and be up when its turn comes. A database that holds data is
// refused (ErrNotEmpty; with IfEmpty skipped, an Outcome that is not
// Seeded). It returns the outcomes so far, also with an error.
func Run(ctx context.Context, d Databases, dbs []compose.Database, opts Options) ([]Outcome, error) {
	return run(ctx, d, dbs, opts, dial)
}

func run(ctx context.Context, d Databases, dbs []compose.Database, opts Options, seed seedFunc) ([]Outcome, error) {
	seeders := map[string]Seeder{}
	for _, db := range dbs {
		sd, ok := For(db.Name)
		if !ok {
			return nil, fmt.Errorf("seed %s: %w", db.Name, ErrNoSampleData)
		}
		seeders[db.Name] = sd
	}
	outcomes := []Outcome{}
	for _, db := range dbs {
		if err := d.RequireReady(ctx, db); err != nil {
			return outcomes, err
		}
		var progress func(string, int64)
		if opts.Progress != nil {
			progress = func(table string, n int64) { opts.Progress(db.Name, table, n) }
		}
		res, err := seed(ctx, d.ConnString(db), seeders[db.Name], opts.Rows, progress)
		var o Outcome
		switch {
		case opts.IfEmpty && errors.Is(err, ErrNotEmpty):
			o = Outcome{Database: db.Name, Rows: map[string]int64{}}
		case err != nil:
			return outcomes, err
		default:
			o = Outcome{Database: db.Name, Seeded: true, Rows: res.Rows, Duration: res.Duration, Seconds: res.Duration.Seconds()}
		}
		outcomes = append(outcomes, o)
		if opts.Done != nil {
			opts.Done(o)
		}
	}
	return outcomes, nil
}
