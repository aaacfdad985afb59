package migrations

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// RowQuerier is a connection or transaction that answers one row.
type RowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// FindTable finds the migration bookkeeping table (Table) of the database
// q reads, quoted and schema qualified, public's first; "" when there is
// none. Backups and snapshots record the migration version from it.
func FindTable(ctx context.Context, q RowQuerier) (string, error) {
	var name string
	err := q.QueryRow(ctx, `
		SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relname = $1 AND c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		ORDER BY n.nspname = 'public' DESC, n.nspname LIMIT 1`, Table).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find the migration table: %w", err)
	}
	return name, nil
}
