package backup

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// databaseEntry renders what belongs to the database rather than to its
// schema (fingerprint.Database) as an entry of the dump, put in before
// its closing comment: pg_dump writes the same only with --create, in
// statements that name the database, while a restore loads into a
// database of another name (a temporary one swapped in, a throwaway).
// So the statements name the database they run in, current_database(),
// from a DO block; plain psql into any database sets them on that one.
// The settings, comment and ACL are set whole (RESET ALL, IS NULL,
// REVOKE ALL first), so loading into a database that had others leaves
// the backup's.
func databaseEntry(d fingerprint.Database) string {
	var stmts []string
	if d.Owner != "" {
		stmts = append(stmts, " OWNER TO "+ident(d.Owner))
	}
	stmts = append(stmts, fmt.Sprintf(" CONNECTION LIMIT %d", d.ConnLimit), " RESET ALL")
	for _, s := range d.Settings {
		stmts = append(stmts, " SET "+setClause(s))
	}
	comment := " IS NULL"
	if d.Comment != "" {
		comment = " IS " + literal(d.Comment)
	}
	var b strings.Builder
	b.WriteString("DECLARE db text := pg_catalog.quote_ident(pg_catalog.current_database());\nBEGIN\n")
	exec := func(head, rest string) {
		fmt.Fprintf(&b, "\tEXECUTE %s || db || %s;\n", literal(head), literal(rest))
	}
	for _, s := range stmts {
		exec("ALTER DATABASE ", s)
	}
	exec("COMMENT ON DATABASE ", comment)
	if d.ACL != nil {
		exec("REVOKE ALL ON DATABASE ", " FROM PUBLIC")
		if d.Owner != "" {
			exec("REVOKE ALL ON DATABASE ", " FROM "+ident(d.Owner))
		}
		for _, line := range d.ACL {
			grantee, priv, grantable := parseACLLine(line)
			if fingerprint.UnquoteRole(grantee) == d.Owner {
				grantable = false // an owner's grant options are its own: none to grant
			}
			rest := " TO " + grantee
			if grantable {
				rest += " WITH GRANT OPTION"
			}
			exec("GRANT "+priv+" ON DATABASE ", rest)
		}
	}
	for _, rs := range d.RoleSettings {
		for _, s := range rs.Settings {
			exec("ALTER ROLE "+ident(rs.Role)+" IN DATABASE ", " SET "+setClause(s))
		}
	}
	b.WriteString("END")
	body := b.String()
	tag := "$aidb$"
	for i := 1; strings.Contains(body, tag); i++ {
		tag = fmt.Sprintf("$aidb%d$", i)
	}
	return DatabaseComment + "\nDO " + tag + "\n" + body + "\n" + tag + ";\n\n"
}

// DatabaseComment opens the entry databaseEntry writes, in pg_dump's form
// (the type pg_dump gives the same statements with --create): a restore
// that splits the dump into entries runs it as one of the post-data.
const DatabaseComment = "--\n-- Name: DATABASE; Type: DATABASE PROPERTIES; Schema: -; Owner: -\n--\n"

// parseACLLine splits a fingerprint.Database ACL line ("grantee privilege
// [WITH GRANT OPTION]", the grantee quoted as an identifier where it
// needs quotes, or PUBLIC).
func parseACLLine(line string) (grantee, priv string, grantable bool) {
	line, grantable = strings.CutSuffix(line, " WITH GRANT OPTION")
	i := strings.LastIndexByte(line, ' ')
	return line[:i], line[i+1:], grantable
}

// setClause turns a setting as the server keeps it ("name=value") into
// what follows SET: name TO 'value', or, for the settings that hold a list
// of names (pg_dump's variable_is_guc_list_quote), each element a literal
// of its own ('$user', 'public'), as pg_dump writes them.
func setClause(s string) string {
	name, value, _ := strings.Cut(s, "=")
	if !listSetting[strings.ToLower(name)] {
		return name + " TO " + literal(value)
	}
	elems := splitGUCList(value)
	for i, e := range elems {
		elems[i] = literal(e)
	}
	return name + " TO " + strings.Join(elems, ", ")
}

// listSetting are the settings whose value is a list of names, kept with
// each name quoted as an identifier where it needs it.
var listSetting = map[string]bool{
	"local_preload_libraries": true, "search_path": true, "session_preload_libraries": true,
	"shared_preload_libraries": true, "temp_tablespaces": true, "unix_socket_directories": true,
}

// splitGUCList splits a list setting's value into its names, as
// PostgreSQL's SplitGUCList does: separated by commas, blanks around them
// dropped, a double-quoted name taken as it stands ("" for a quote).
func splitGUCList(v string) []string {
	var out []string
	i := 0
	for {
		for i < len(v) && v[i] == ' ' {
			i++
		}
		var name strings.Builder
		if i < len(v) && v[i] == '"' {
			i++
			for i < len(v) {
				if v[i] == '"' {
					if i+1 < len(v) && v[i+1] == '"' {
						name.WriteByte('"')
						i += 2
						continue
					}
					i++
					break
				}
				name.WriteByte(v[i])
				i++
			}
		} else {
			for i < len(v) && v[i] != ',' {
				name.WriteByte(v[i])
				i++
			}
		}
		out = append(out, strings.TrimRight(name.String(), " "))
		for i < len(v) && v[i] == ' ' {
			i++
		}
		if i >= len(v) || v[i] != ',' {
			return out
		}
		i++
	}
}

// literal quotes s as an SQL string literal (standard_conforming_strings,
// as pg_dump's files set it).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ident quotes name as an SQL identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
