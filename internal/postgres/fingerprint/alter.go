package fingerprint

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Alteration is one statement that gives a database one of its
// properties: Head, then the database's name quoted, then Rest.
type Alteration struct{ Head, Rest string }

// For is the statement for database name.
func (a Alteration) For(name string) string { return a.Head + ident(name) + a.Rest }

// Alterations are the statements that give a database the properties d
// holds: owner (when d has one), connection limit, settings, comment, ACL
// (when d has one) and its roles' settings. The settings, comment and ACL
// are set whole (RESET ALL, IS NULL, REVOKE ALL first), so a database
// that had others is left with d's.
func (d Database) Alterations() []Alteration {
	var out []Alteration
	alter := func(head, rest string) { out = append(out, Alteration{head, rest}) }
	if d.Owner != "" {
		alter("ALTER DATABASE ", " OWNER TO "+ident(d.Owner))
	}
	alter("ALTER DATABASE ", fmt.Sprintf(" CONNECTION LIMIT %d", d.ConnLimit))
	alter("ALTER DATABASE ", " RESET ALL")
	for _, s := range d.Settings {
		alter("ALTER DATABASE ", " SET "+setClause(s))
	}
	comment := " IS NULL"
	if d.Comment != "" {
		comment = " IS " + literal(d.Comment)
	}
	alter("COMMENT ON DATABASE ", comment)
	if d.ACL != nil {
		alter("REVOKE ALL ON DATABASE ", " FROM PUBLIC")
		if d.Owner != "" {
			alter("REVOKE ALL ON DATABASE ", " FROM "+ident(d.Owner))
		}
		for _, line := range d.ACL {
			grantee, priv, grantable := parseACLLine(line)
			if UnquoteRole(grantee) == d.Owner {
				grantable = false // an owner's grant options are its own: none to grant
			}
			rest := " TO " + grantee
			if grantable {
				rest += " WITH GRANT OPTION"
			}
			alter("GRANT "+priv+" ON DATABASE ", rest)
		}
	}
	for _, rs := range d.RoleSettings {
		for _, s := range rs.Settings {
			alter("ALTER ROLE "+ident(rs.Role)+" IN DATABASE ", " SET "+setClause(s))
		}
	}
	return out
}

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

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ident quotes name as an SQL identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// Literal quotes s as an SQL string literal (standard_conforming_strings,
// as pg_dump's files set it).
func Literal(s string) string { return literal(s) }
