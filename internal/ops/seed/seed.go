// Package seed fills the tables of aidb's default schema (the embedded
// rulesdb and memorydb migrations) with deterministic sample data that covers
// every column type: NULLs, unicode, quotes, newlines, backslashes, large
// text, arrays, jsonb, bytea, numerics and foreign keys across tables.
//
// Rows stream to the server through COPY, generated one at a time, so memory
// stays flat at any size. The same rows count gives the same data, byte for
// byte, on every run.
package seed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/aidb/aidb/internal/postgres/bulkindex"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
)

// table is one table a seeder fills: its columns and a row generator.
type table struct {
	name    string
	columns []string
	rows    int
	// row returns the values of row i (0-based); r is the table's own
	// deterministic random source.
	row func(r *rng, i int) []any
	// serial is the identity/serial column whose sequence is set past the
	// seeded rows, "" for none.
	serial string
}

// Seeder fills one database of the default schema.
type Seeder struct {
	// Database is the default database this seeder knows (rulesdb, memorydb).
	Database string
	tables   func(rows int) []table
}

// For returns the seeder for a database of the default schema.
func For(database string) (Seeder, bool) {
	switch database {
	case "rulesdb":
		return Seeder{Database: database, tables: rulesTables}, true
	case "memorydb":
		return Seeder{Database: database, tables: memoryTables}, true
	}
	return Seeder{}, false
}

// Tables lists the tables the seeder fills, parents before children.
func (s Seeder) Tables() []string {
	var names []string
	for _, t := range s.tables(1) {
		names = append(names, t.name)
	}
	return names
}

// ErrNotEmpty says the database already holds data: seeding fills empty
// databases only, so it never mixes sample rows into real ones.
var ErrNotEmpty = errors.New("database already holds data")

// ErrNotMigrated says a table of the default schema is missing.
var ErrNotMigrated = errors.New("database is not migrated")

// sqlstateUndefinedTable is undefined_table.
const sqlstateUndefinedTable = "42P01"

// RefusedError says why a database was not seeded, before anything was
// written: Err is ErrNotMigrated (Table is missing) or ErrNotEmpty (Table
// has rows).
type RefusedError struct {
	Database string
	Table    string
	Err      error
}

func (e *RefusedError) Error() string {
	if errors.Is(e.Err, ErrNotMigrated) {
		return fmt.Sprintf("%v: %s has no table %s", e.Err, e.Database, e.Table)
	}
	return fmt.Sprintf("%v: %s.%s has rows; seed fills empty databases only", e.Err, e.Database, e.Table)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Result counts what a Seed wrote.
type Result struct {
	Database string           `json:"database"`
	Rows     map[string]int64 `json:"rows"`
	Duration time.Duration    `json:"duration_ns"`
}

// Seed fills every table with data scaled by rows (the number of rules or
// memories; other tables scale with it), in one transaction: a failure or
// Ctrl-C leaves the database empty as it was. progress, if not nil, is called
// after each table.
func (s Seeder) Seed(ctx context.Context, conn *pgx.Conn, rows int, progress func(table string, rows int64)) (Result, error) {
	if rows < 1 {
		return Result{}, fmt.Errorf("seed %s: rows must be at least 1, not %d", s.Database, rows)
	}
	start := time.Now()
	res := Result{Database: s.Database, Rows: map[string]int64{}}
	tables := s.tables(rows)
	if err := s.checkEmpty(ctx, conn, tables); err != nil {
		return res, err
	}
	if err := registerVector(ctx, conn); err != nil {
		return res, fmt.Errorf("seed %s: %w", s.Database, err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return res, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The tables' indexes are built once after the rows, as a bulk load
	// does (bulkindex: an HNSW index takes its rows one by one otherwise,
	// several times slower), in this transaction: the schema is as it was
	// whatever happens.
	indexes, err := deferIndexes(ctx, tx, tables)
	if err != nil {
		return res, fmt.Errorf("seed %s: %w", s.Database, err)
	}
	for ti, t := range tables {
		r := newRNG(uint64(ti + 1))
		i := 0
		n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, t.columns, pgx.CopyFromFunc(func() ([]any, error) {
			if i >= t.rows {
				return nil, nil
			}
			v := t.row(r, i)
			i++
			return v, nil
		}))
		if err != nil {
			return res, fmt.Errorf("seed %s.%s: %w", s.Database, t.name, err)
		}
		res.Rows[t.name] = n
		if t.serial != "" {
			// The seeded rows carry their ids: move the sequence past them so
			// the application's next insert does not collide.
			q := fmt.Sprintf("SELECT setval(pg_get_serial_sequence($1, $2), (SELECT max(%s) FROM %s))",
				pgx.Identifier{t.serial}.Sanitize(), pgx.Identifier{t.name}.Sanitize())
			if _, err := tx.Exec(ctx, q, t.name, t.serial); err != nil {
				return res, fmt.Errorf("seed %s.%s: set sequence: %w", s.Database, t.name, err)
			}
		}
		if progress != nil {
			progress(t.name, n)
		}
	}
	if len(indexes) > 0 {
		if _, err := tx.Exec(ctx, dumpformat.SetLocal(dumpformat.BuildSettings())+bulkindex.BuildSQL(indexes)); err != nil {
			return res, fmt.Errorf("seed %s: build the indexes: %w", s.Database, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return res, err
	}
	// Fresh statistics, as after any bulk load: the planner's, and the
	// table sizes a backup reads to decide which tables to read in parts.
	for _, t := range tables {
		if _, err := conn.Exec(ctx, "ANALYZE "+pgx.Identifier{t.name}.Sanitize()); err != nil {
			return res, fmt.Errorf("seed %s.%s: analyze: %w", s.Database, t.name, err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// deferIndexes drops, in tx, the indexes of tables that bulkindex builds
// again after a load, and returns them.
func deferIndexes(ctx context.Context, tx pgx.Tx, tables []table) ([]bulkindex.Index, error) {
	names := make([]string, len(tables))
	for i, t := range tables {
		if err := tx.QueryRow(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = pg_catalog.to_regclass($1)`,
			pgx.Identifier{t.name}.Sanitize()).Scan(&names[i]); err != nil {
			return nil, fmt.Errorf("find table %s: %w", t.name, err)
		}
	}
	indexes, err := bulkindex.Read(ctx, tx, names)
	if err != nil || len(indexes) == 0 {
		return nil, err
	}
	if _, err := tx.Exec(ctx, bulkindex.DropSQL(indexes)); err != nil {
		return nil, fmt.Errorf("drop the indexes to build after the rows: %w", err)
	}
	return indexes, nil
}

// checkEmpty refuses, with a RefusedError, a database whose tables are
// missing or hold rows.
func (s Seeder) checkEmpty(ctx context.Context, conn *pgx.Conn, tables []table) error {
	for _, t := range tables {
		var any bool
		q := fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s)", pgx.Identifier{t.name}.Sanitize())
		if err := conn.QueryRow(ctx, q).Scan(&any); err != nil {
			var pg *pgconn.PgError
			if errors.As(err, &pg) && pg.Code == sqlstateUndefinedTable {
				return &RefusedError{Database: s.Database, Table: t.name, Err: ErrNotMigrated}
			}
			return err
		}
		if any {
			return &RefusedError{Database: s.Database, Table: t.name, Err: ErrNotEmpty}
		}
	}
	return nil
}
