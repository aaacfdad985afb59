package fingerprint

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The column lines of format 3 on leave out the position of an
// inheritance child's columns (a dump cannot keep it) but keep everything
// else that describes a column, and inheritance is described instead;
// formats before keep attnum everywhere, as they were hashed.
func TestSchemaQueriesColumnPosition(t *testing.T) {
	t.Parallel()
	columns := func(qs []string) string {
		for _, q := range qs {
			if strings.HasPrefix(q, "SELECT 'column '") {
				return q
			}
		}
		t.Fatal("no column query")
		return ""
	}
	now, before := SchemaQueries(false), SchemaQueries(true)
	require.Len(t, now, len(schemaQueries)+1)
	require.Len(t, before, len(schemaQueries))

	col := columns(now)
	assert.Contains(t, col, "pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) THEN 'inherited' ELSE a.attnum::text END || ' ' || quote_ident(a.attname)")
	for _, kept := range []string{"format_type(a.atttypid, a.atttypmod)", "a.attnotnull", "a.attidentity", "a.attgenerated", "pg_get_expr(ad.adbin, ad.adrelid)"} {
		assert.Contains(t, col, kept, "a real difference is still caught")
	}
	assert.Contains(t, now[len(now)-1], "SELECT 'inherits '")
	assert.Contains(t, now[len(now)-1], "i.inhseqno")

	old := columns(before)
	assert.Contains(t, old, "|| ' ' || a.attnum::text || ' ' || quote_ident(a.attname)")
	assert.NotContains(t, old, "pg_inherits")
	for i, q := range before {
		assert.NotContains(t, q, columnPosition, "query %d has its position filled in", i)
		assert.NotContains(t, now[i], columnPosition, "query %d has its position filled in", i)
		if !strings.HasPrefix(q, "SELECT 'column '") {
			assert.Equal(t, q, now[i], "only the column query differs between formats")
		}
	}
}

func TestColumnList(t *testing.T) {
	t.Parallel()
	assert.Equal(t, `t."class", t."a", t."it's ""q"""`, ColumnList([]string{"class", "a", `it's "q"`}))
	assert.Equal(t, "", ColumnList(nil), "ROW() of no columns")
}

// OrderedColumnsSQL takes its names and table as parameters (never
// spliced in) and leaves out what a dump holds no data of.
func TestOrderedColumnsSQL(t *testing.T) {
	t.Parallel()
	assert.Contains(t, OrderedColumnsSQL, "unnest($1::text[]) WITH ORDINALITY AS c(name, ord)")
	assert.Contains(t, OrderedColumnsSQL, "ORDER BY c.ord")
	assert.Contains(t, OrderedColumnsSQL, "a.attrelid = $2::text::regclass AND a.attname = c.name")
	assert.Contains(t, OrderedColumnsSQL, "a.attgenerated = ''")
	assert.Contains(t, OrderedColumnsSQL, "NOT a.attisdropped")
}

// A backup of a server before 17 is described without MAINTAIN: every
// ACL query of the description leaves it out (and only it), in both
// privilege forms; without NoMaintain the queries keep every privilege.
func TestNoMaintainFilter(t *testing.T) {
	t.Parallel()
	for _, p := range []PrivilegeForm{WithOwners, WithoutOwners} {
		plain := withPrivilegeFilter(PrivilegeQueries(p), SchemaForm{Privileges: p})
		filtered := withPrivilegeFilter(PrivilegeQueries(p), SchemaForm{Privileges: p, NoMaintain: true})
		require.Len(t, filtered, len(plain))
		acls := 0
		for i := range plain {
			assert.NotContains(t, plain[i], "MAINTAIN", "query %d keeps every privilege", i)
			if strings.Contains(plain[i], "aclexplode") {
				acls++
				assert.Contains(t, filtered[i], "x "+noMaintain+") s)", "query %d leaves MAINTAIN out of its ACL items", i)
				assert.Equal(t, plain[i], strings.ReplaceAll(filtered[i], noMaintain, privilegeFilter), "query %d: nothing else changes", i)
			} else {
				assert.Equal(t, plain[i], filtered[i], "query %d has no ACL", i)
			}
		}
		assert.Equal(t, 6, acls, "relations, columns, schemas, functions, types, default privileges")
	}
	assert.Empty(t, withPrivilegeFilter(PrivilegeQueries(NoPrivileges), SchemaForm{NoMaintain: true}))
}
