package restore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/internal/postgres/dumpformat"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/migrations"
)

// checkForeign refuses a full restore of a file without a manifest into a
// database whose tables it does not know: when the target holds tables and
// the file creates or loads none of them, it is very likely a backup of
// another database (a manifest would say which), and restoring it would
// replace every table of the target. The migration bookkeeping table is
// left out on both sides: every migrated database has one. An empty target
// takes any file; a request that names the file's database (AsDatabase)
// skips the check. The refusal is a ForeignError.
func (p *Plan) checkForeign(ctx context.Context, conn *pgx.Conn, file dumpformat.Tables) error {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname || '.' || c.relname
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND c.relname <> $1 AND `+fingerprint.UserRelations+`
		ORDER BY 1`, migrations.Table)
	if err != nil {
		return fmt.Errorf("list the tables of %s: %w", p.DB.Name, err)
	}
	target, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the tables of %s: %w", p.DB.Name, err)
	}
	if len(target) == 0 {
		return nil
	}
	var own []string
	for _, t := range file.All() {
		if t.Name == migrations.Table {
			continue
		}
		if slices.Contains(target, t.Key()) {
			return nil
		}
		own = append(own, t.Key())
	}
	return &ForeignError{File: p.File, Target: p.DB.Name, FileTables: own, TargetTables: target}
}

// fewNames lists up to five names, and how many more there are.
func fewNames(names []string) string {
	const few = 5
	if len(names) <= few {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:few], ", "), len(names)-few)
}
