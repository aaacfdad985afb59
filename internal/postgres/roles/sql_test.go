package roles

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSQLCreatesMissingRolesWithTheirAttributes(t *testing.T) {
	t.Parallel()
	got := SQL([]Role{
		{Name: "app_reader", Login: true, Inherit: true, ConnLimit: 3, ValidUntil: "2031-01-02 03:04:05.000000+00"},
		{Name: "app_writer", Inherit: true, ConnLimit: -1, MemberOf: []Membership{{Role: "app_group"}, {Role: "pg_read_all_data", Admin: true}}},
		{Name: "rules", Login: true, Superuser: true, CreateDB: true, CreateRole: true, Inherit: true, Replication: true, BypassRLS: true, ConnLimit: -1, Bootstrap: true},
	})
	want := `DO $aidb_roles$
DECLARE
  created text[] := '{}';
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'app_reader') THEN
    CREATE ROLE "app_reader" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3 VALID UNTIL '2031-01-02 03:04:05.000000+00';
    created := created || 'app_reader'::text;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'app_writer') THEN
    CREATE ROLE "app_writer" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1;
    created := created || 'app_writer'::text;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'rules') THEN
    CREATE ROLE "rules" LOGIN SUPERUSER CREATEDB CREATEROLE INHERIT REPLICATION BYPASSRLS CONNECTION LIMIT -1;
    created := created || 'rules'::text;
  END IF;
  IF 'app_writer' = ANY (created) THEN
    GRANT "app_group" TO "app_writer";
    GRANT "pg_read_all_data" TO "app_writer" WITH ADMIN OPTION;
  END IF;
END
$aidb_roles$;
`
	assert.Equal(t, want, got)
	assert.NotContains(t, got, "PASSWORD", "no password unless the role holds one")
}

func TestSQLQuotesOddNames(t *testing.T) {
	t.Parallel()
	got := SQL([]Role{
		{Name: `it's "odd"`, ConnLimit: -1, MemberOf: []Membership{{Role: `Group; DROP ROLE x`}}},
		{Name: "$aidb_roles$", ConnLimit: -1},
		{Name: "Mixed Case", ConnLimit: -1},
	})
	assert.Contains(t, got, `WHERE rolname = 'it''s "odd"') THEN`)
	assert.Contains(t, got, `CREATE ROLE "it's ""odd""" NOLOGIN`)
	assert.Contains(t, got, `created := created || 'it''s "odd"'::text;`)
	assert.Contains(t, got, `IF 'it''s "odd"' = ANY (created) THEN`)
	assert.Contains(t, got, `GRANT "Group; DROP ROLE x" TO "it's ""odd""";`)
	assert.Contains(t, got, `CREATE ROLE "Mixed Case" NOLOGIN`)
	// A name holding the block's usual dollar quote gets another quote.
	assert.True(t, strings.HasPrefix(got, "DO $aidb_roles1$\n"), got)
	assert.True(t, strings.HasSuffix(got, "END\n$aidb_roles1$;\n"), got)
	assert.Equal(t, 2, strings.Count(got, "$aidb_roles1$"), "the quote opens and closes the block only")
}

func TestSQLPasswordOnlyWhereHeld(t *testing.T) {
	t.Parallel()
	hash := "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"
	got := SQL([]Role{{Name: "app_reader", Login: true, ConnLimit: -1, Password: hash}, {Name: "app_writer", ConnLimit: -1}})
	assert.Contains(t, got, `CONNECTION LIMIT -1 PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy';`)
	assert.Equal(t, 1, strings.Count(got, "PASSWORD"))
	// A hash holding a dollar sign does not end the block.
	assert.True(t, strings.HasPrefix(got, "DO $aidb_roles$\n"))
}

func TestSQLOfNoRolesIsNothing(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "", SQL(nil))
	assert.Equal(t, "", File(nil))
	f := File([]Role{{Name: "a", ConnLimit: -1}})
	assert.True(t, strings.HasPrefix(f, Comment+"\nDO $aidb_roles$\n"), f)
	assert.True(t, strings.HasSuffix(f, "$aidb_roles$;\n\n"), f)
}

func TestUnquoteRole(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "plain", unquoteRole("plain"))
	assert.Equal(t, `a"b c`, unquoteRole(`"a""b c"`))
	assert.Equal(t, []string{"a", "b"}, Names([]Role{{Name: "a"}, {Name: "b"}}))
}
