package roles

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Comment is the comment before the statements SQL renders, as it stands
// in a backup file.
const Comment = "--\n-- Roles this database refers to (aidb): each created where the server lacks it; roles that exist are left as they are\n--\n"

// SQL renders the statements that create, of rs, the roles the server
// lacks, with their attributes (and password hash, where rs holds one),
// and grant the memberships of the roles it created: one DO block, so that
// plain psql runs it, and a failure in it rolls all of it back. A role
// that exists is never altered (not its attributes, not its memberships).
// It needs a superuser (or CREATEROLE for roles without SUPERUSER,
// REPLICATION or BYPASSRLS). No roles, no statements: "".
//
// Names are quoted as identifiers and as literals; the block's dollar
// quote is one that no name or hash contains.
func SQL(rs []Role) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("DECLARE\n  created text[] := '{}';\nBEGIN\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "  IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %s) THEN\n", literal(r.Name))
		fmt.Fprintf(&b, "    CREATE ROLE %s%s;\n", ident(r.Name), attributes(r))
		fmt.Fprintf(&b, "    created := created || %s::text;\n", literal(r.Name))
		b.WriteString("  END IF;\n")
	}
	for _, r := range rs {
		if len(r.MemberOf) == 0 {
			continue
		}
		fmt.Fprintf(&b, "  IF %s = ANY (created) THEN\n", literal(r.Name))
		for _, m := range r.MemberOf {
			admin := ""
			if m.Admin {
				admin = " WITH ADMIN OPTION"
			}
			fmt.Fprintf(&b, "    GRANT %s TO %s%s;\n", ident(m.Role), ident(r.Name), admin)
		}
		b.WriteString("  END IF;\n")
	}
	b.WriteString("END\n")
	body := b.String()
	tag := dollarTag(body)
	return "DO " + tag + "\n" + body + tag + ";\n"
}

// File is SQL as a backup file holds it: the comment, the block, and an
// empty line; "" for no roles.
func File(rs []Role) string {
	s := SQL(rs)
	if s == "" {
		return ""
	}
	return Comment + "\n" + s + "\n"
}

// attributes renders a role's attributes after CREATE ROLE name, each
// stated (not left to the server's defaults).
func attributes(r Role) string {
	var b strings.Builder
	flag := func(on bool, name string) {
		b.WriteString(" ")
		if !on {
			b.WriteString("NO")
		}
		b.WriteString(name)
	}
	flag(r.Login, "LOGIN")
	flag(r.Superuser, "SUPERUSER")
	flag(r.CreateDB, "CREATEDB")
	flag(r.CreateRole, "CREATEROLE")
	flag(r.Inherit, "INHERIT")
	flag(r.Replication, "REPLICATION")
	flag(r.BypassRLS, "BYPASSRLS")
	fmt.Fprintf(&b, " CONNECTION LIMIT %d", r.ConnLimit)
	if r.ValidUntil != "" {
		fmt.Fprintf(&b, " VALID UNTIL %s", literal(r.ValidUntil))
	}
	if r.Password != "" {
		// A hash (SCRAM or md5) is stored as it is, never hashed again.
		fmt.Fprintf(&b, " PASSWORD %s", literal(r.Password))
	}
	return b.String()
}

// dollarTag is a dollar quote, $aidb_roles$ or one with a number, that
// body does not contain.
func dollarTag(body string) string {
	tag := "$aidb_roles$"
	for i := 1; strings.Contains(body, tag); i++ {
		tag = fmt.Sprintf("$aidb_roles%d$", i)
	}
	return tag
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes s as an SQL string literal (standard_conforming_strings
// on, as in every dump).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
