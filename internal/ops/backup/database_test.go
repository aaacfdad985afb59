package backup

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// The entry names no database: it runs in the one it is loaded into, sets
// everything whole, and quotes what it holds.
func TestDatabaseEntry(t *testing.T) {
	t.Parallel()
	d := fingerprint.Database{
		Owner: "App Owner", ConnLimit: 7, Comment: "it's ours",
		ACL:          []string{`"App Owner" CONNECT`, `"App Owner" CREATE`, `"App Owner" TEMPORARY`, "reader CONNECT WITH GRANT OPTION"},
		Settings:     []string{"search_path=app, public"},
		RoleSettings: []fingerprint.RoleSettings{{Role: "reader", Settings: []string{"statement_timeout=5s"}}},
	}
	got := databaseEntry(d)
	assert.Equal(t, DatabaseComment+`
DO $aidb$
DECLARE db text := pg_catalog.quote_ident(pg_catalog.current_database());
BEGIN
	EXECUTE 'ALTER DATABASE ' || db || ' OWNER TO "App Owner"';
	EXECUTE 'ALTER DATABASE ' || db || ' CONNECTION LIMIT 7';
	EXECUTE 'ALTER DATABASE ' || db || ' RESET ALL';
	EXECUTE 'ALTER DATABASE ' || db || ' SET search_path TO ''app'', ''public''';
	EXECUTE 'COMMENT ON DATABASE ' || db || ' IS ''it''''s ours''';
	EXECUTE 'REVOKE ALL ON DATABASE ' || db || ' FROM PUBLIC';
	EXECUTE 'REVOKE ALL ON DATABASE ' || db || ' FROM "App Owner"';
	EXECUTE 'GRANT CONNECT ON DATABASE ' || db || ' TO "App Owner"';
	EXECUTE 'GRANT CREATE ON DATABASE ' || db || ' TO "App Owner"';
	EXECUTE 'GRANT TEMPORARY ON DATABASE ' || db || ' TO "App Owner"';
	EXECUTE 'GRANT CONNECT ON DATABASE ' || db || ' TO reader WITH GRANT OPTION';
	EXECUTE 'ALTER ROLE "reader" IN DATABASE ' || db || ' SET statement_timeout TO ''5s''';
END
$aidb$;

`, got)

	// A value holding the dollar quote gets another; without owners, no
	// owner and no ACL statements.
	got = databaseEntry(fingerprint.Database{ConnLimit: -1, Comment: "costs $aidb$"})
	assert.Contains(t, got, "\nDO $aidb1$\n")
	assert.Contains(t, got, "\n$aidb1$;\n")
	assert.NotContains(t, got, "OWNER TO")
	assert.NotContains(t, got, "REVOKE")
	assert.Contains(t, got, `' CONNECTION LIMIT -1'`)
}
