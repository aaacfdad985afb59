package orchestrator

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/compose"
)

// collationSQL finds the collations of the database whose version, as
// recorded when the data was written (pg_database.datcollversion for the
// database's default, pg_collation.collversion for the others), is not
// the C library's (or ICU's) of the server that runs it now: an image
// whose glibc changed (Debian 12's 2.36, Debian 13's 2.41) sorts text
// otherwise, and indexes on text built under the old order can miss rows.
// PostgreSQL 15 and later record these versions.
const collationSQL = `
	SELECT 'the database default (' || d.datcollate || ')', d.datcollversion, pg_catalog.pg_database_collation_actual_version(d.oid)
	FROM pg_catalog.pg_database d
	WHERE d.datname = pg_catalog.current_database() AND d.datcollversion IS DISTINCT FROM pg_catalog.pg_database_collation_actual_version(d.oid)
	UNION ALL
	SELECT quote_ident(n.nspname) || '.' || quote_ident(c.collname), c.collversion, pg_catalog.pg_collation_actual_version(c.oid)
	FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace
	WHERE c.collversion IS NOT NULL AND c.collversion IS DISTINCT FROM pg_catalog.pg_collation_actual_version(c.oid)
	ORDER BY 1`

// CollationDrift says which collations of db's data were recorded under
// another version than the running server's C library (or ICU) gives, and
// what to run, or "" when none was (or the server is older than 15, or
// cannot be asked: this is advice, not a check that fails up).
func (o *Orchestrator) CollationDrift(ctx context.Context, db compose.Database) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, o.ConnString(db))
	if err != nil {
		return ""
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	rows, err := conn.Query(ctx, collationSQL)
	if err != nil {
		return ""
	}
	var drift []string
	for rows.Next() {
		var name string
		var recorded, actual *string
		if err := rows.Scan(&name, &recorded, &actual); err != nil {
			return ""
		}
		drift = append(drift, fmt.Sprintf("%s was recorded at version %s, this image has %s", name, orNone(recorded), orNone(actual)))
	}
	if rows.Err() != nil || len(drift) == 0 {
		return ""
	}
	return fmt.Sprintf("the collation versions of its data do not match this image's C library: %s; indexes on text built under the old version may miss rows. "+
		"Rebuild them and record the new version: REINDEX DATABASE %s; ALTER DATABASE %s REFRESH COLLATION VERSION (and ALTER COLLATION … REFRESH VERSION for each other one named); "+
		"a backup restored on this image rebuilds every index, and aidb verify --amcheck proves it",
		strings.Join(drift, "; "), pgx.Identifier{db.DBName}.Sanitize(), pgx.Identifier{db.DBName}.Sanitize())
}

func orNone(s *string) string {
	if s == nil || *s == "" {
		return "(none)"
	}
	return *s
}
