package fingerprint

import (
	"strings"
)

// PrivilegeForm says what a schema description says of owners and
// privileges.
type PrivilegeForm uint8

const (
	// NoPrivileges says nothing of them: manifest formats 1 to 3, whose
	// backups were taken with pg_dump --no-owner --no-privileges.
	NoPrivileges PrivilegeForm = iota
	// WithOwners describes the owners of relations, schemas, functions
	// and types, their ACLs and their columns' (each item grantee,
	// privilege and grantor), default privileges, row-level security
	// flags and policies: format 4.
	WithOwners
	// WithoutOwners is WithOwners without the owner lines, and with each
	// object's owner named "(owner)" in its ACL: a --no-owner backup,
	// whose objects belong to whoever restores it, is compared on the
	// grants it holds, not on owners it does not.
	WithoutOwners
)

// SchemaForm says how a schema is described, by manifest format.
type SchemaForm struct {
	// ChildColumnOrder describes the column order of inheritance
	// children (formats 1 and 2; see SchemaQueries).
	ChildColumnOrder bool
	Privileges       PrivilegeForm
	// NoMaintain leaves the MAINTAIN privilege out of every ACL: a
	// backup taken on a server before PostgreSQL 17 (which added it) is
	// described so on any server. Restored on 17 or later, its owners and
	// its ALL grants (GRANT ALL, and the default ACL of an object) hold
	// MAINTAIN as well, though nothing was granted that the backup lacks;
	// on an earlier server no ACL holds it, so the description of such a
	// backup's source is the same with it or without.
	NoMaintain bool
}

// privilegeFilter stands in aclItems for the condition on the exploded
// ACL items: replaced by noMaintain where the form asks, else left as
// the comment it is (withPrivilegeFilter).
const privilegeFilter = "/*privilege filter*/"

// noMaintain leaves MAINTAIN items out (SchemaForm.NoMaintain).
const noMaintain = "WHERE x.privilege_type <> 'MAINTAIN'"

// withPrivilegeFilter makes queries' ACLs leave MAINTAIN out when form
// says so.
func withPrivilegeFilter(queries []string, form SchemaForm) []string {
	out := make([]string, len(queries))
	for i, q := range queries {
		if form.NoMaintain {
			q = strings.ReplaceAll(q, privilegeFilter, noMaintain)
		}
		out[i] = q
	}
	return out
}

// MaintainMajor is the PostgreSQL major that added the MAINTAIN privilege.
const MaintainMajor = 17

// userSchemas is the SQL condition, over pg_namespace n, that selects the
// schemas of the user (public included) that no extension owns.
const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
	AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')`

// userFunctions and userTypes select, over pg_proc p / pg_type t and their
// pg_namespace n, what the schema's function and type lines describe.
const (
	userFunctions = `p.prokind IN ('f', 'p', 'a', 'w') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
	AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`
	userTypes = `(t.typtype IN ('e', 'd', 'r') OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_catalog.pg_class tc WHERE tc.oid = t.typrelid AND tc.relkind = 'c')))
	AND n.nspname NOT IN ('pg_catalog', 'information_schema')
	AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')`
)

// roleName renders the role OID expr as a name: PUBLIC for 0, and with
// owner set (WithoutOwners), "(owner)" for the object's owner.
func roleName(expr, owner string) string {
	s := "CASE WHEN " + expr + " = 0 THEN 'PUBLIC' ELSE quote_ident(pg_catalog.pg_get_userbyid(" + expr + ")) END"
	if owner != "" {
		s = "CASE WHEN " + expr + " = " + owner + " THEN '(owner)' ELSE " + s + " END"
	}
	return s
}

// aclItems renders an ACL as its items, sorted, "grantee:privilege:grantor"
// (a * after a privilege given WITH GRANT OPTION). A NULL ACL is the
// default for objtype (acldefault) owned by owner, so an ACL a dump leaves
// out because it equals the default compares equal to it. With relative,
// the owner is "(owner)".
func aclItems(acl, objtype, owner string, relative bool) string {
	rel := ""
	if relative {
		rel = owner
	}
	return `coalesce((SELECT string_agg(s.i, ' ' ORDER BY s.i) FROM (SELECT ` + roleName("x.grantee", rel) +
		` || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END || ':' || ` + roleName("x.grantor", rel) +
		` AS i FROM pg_catalog.aclexplode(coalesce(` + acl + `, pg_catalog.acldefault(` + objtype + `, ` + owner + `))) x ` + privilegeFilter + `) s), '')`
}

const (
	relName  = `quote_ident(n.nspname) || '.' || quote_ident(c.relname)`
	relFrom  = ` FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND `
	funcName = `quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')'`
	funcFrom = ` FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE `
	typeName = `quote_ident(n.nspname) || '.' || quote_ident(t.typname)`
	typeFrom = ` FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE `
	owner    = `quote_ident(pg_catalog.pg_get_userbyid(%s))`
)

// PrivilegeQueries are the queries that describe owners and privileges in
// form p (none for NoPrivileges); each returns one text column.
func PrivilegeQueries(p PrivilegeForm) []string {
	if p == NoPrivileges {
		return nil
	}
	relative := p == WithoutOwners
	ownerOf := func(col string) string { return strings.Replace(owner, "%s", col, 1) }
	qs := []string{
		`SELECT 'acl relation ' || ` + relName + ` || ' ' || ` + aclItems("c.relacl", `CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char"`, "c.relowner", relative) +
			relFrom + UserRelations,
		`SELECT 'acl column ' || ` + relName + ` || ' ' || quote_ident(a.attname) || ' ' || ` + aclItems("a.attacl", `'c'::"char"`, "c.relowner", relative) +
			` FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			 WHERE a.attnum > 0 AND NOT a.attisdropped AND cardinality(a.attacl) > 0 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + UserRelations,
		`SELECT 'acl schema ' || quote_ident(n.nspname) || ' ' || ` + aclItems("n.nspacl", `'n'::"char"`, "n.nspowner", relative) +
			` FROM pg_catalog.pg_namespace n WHERE ` + userSchemas,
		`SELECT 'acl function ' || ` + funcName + ` || ' ' || ` + aclItems("p.proacl", `'f'::"char"`, "p.proowner", relative) + funcFrom + userFunctions,
		`SELECT 'acl type ' || ` + typeName + ` || ' ' || ` + aclItems("t.typacl", `'T'::"char"`, "t.typowner", relative) + typeFrom + userTypes,
		// Default privileges belong to the role they are set for, whoever
		// owns the objects: pg_dump keeps them with --no-owner too.
		`SELECT 'default privileges for ' || quote_ident(pg_catalog.pg_get_userbyid(d.defaclrole)) || ' in ' || coalesce(quote_ident(n.nspname), '*')
		        || ' on ' || d.defaclobjtype::text || ' ' || ` + aclItems("d.defaclacl", `'r'::"char"`, "d.defaclrole", false) +
			` FROM pg_catalog.pg_default_acl d LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace`,
		`SELECT 'row level security ' || ` + relName + ` || ' enabled=' || c.relrowsecurity::text || ' forced=' || c.relforcerowsecurity::text
		 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.relkind IN ('r', 'p') AND (c.relrowsecurity OR c.relforcerowsecurity) AND ` + UserRelations,
		`SELECT 'policy ' || ` + relName + ` || ' ' || quote_ident(p.polname) || CASE WHEN p.polpermissive THEN ' permissive' ELSE ' restrictive' END
		        || ' for ' || p.polcmd::text || ' to ' || coalesce((SELECT string_agg(s.r, ',' ORDER BY s.r) FROM (SELECT ` + roleName("o", "") + ` AS r FROM unnest(p.polroles) o) s), '')
		        || coalesce(' using ' || pg_catalog.pg_get_expr(p.polqual, p.polrelid), '') || coalesce(' with check ' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '')
		 FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		 WHERE ` + UserRelations,
	}
	if !relative {
		qs = append(qs,
			`SELECT 'owner relation ' || `+relName+` || ' ' || `+ownerOf("c.relowner")+relFrom+UserRelations,
			`SELECT 'owner schema ' || quote_ident(n.nspname) || ' ' || `+ownerOf("n.nspowner")+` FROM pg_catalog.pg_namespace n WHERE `+userSchemas,
			`SELECT 'owner function ' || `+funcName+` || ' ' || `+ownerOf("p.proowner")+funcFrom+userFunctions,
			`SELECT 'owner type ' || `+typeName+` || ' ' || `+ownerOf("t.typowner")+typeFrom+userTypes,
		)
	}
	return qs
}
