package fingerprint

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Database is what belongs to a database rather than to its schema, and
// so is not in a plain pg_dump of it (pg_dump writes it only with
// --create, which aidb cannot use: a restore loads into a database of
// another name first): its owner, connection limit and comment, who may
// connect to it (its ACL), its ALTER DATABASE … SET settings and the
// ALTER ROLE … IN DATABASE … SET settings of its roles.
type Database struct {
	// Owner is the database's owner ("" when the backup left owners out).
	Owner string `json:"owner,omitempty"`
	// ConnLimit is CONNECTION LIMIT; -1 is none.
	ConnLimit int `json:"connection_limit"`
	// Comment is COMMENT ON DATABASE ("" for none).
	Comment string `json:"comment,omitempty"`
	// ACL is who may do what on the database, the default spelled out
	// (PUBLIC CONNECT and TEMPORARY, the owner everything): one
	// "grantee privilege" line each ("PUBLIC" for everyone), with " WITH
	// GRANT OPTION" where it holds, sorted. Nil when owners and
	// privileges were left out.
	ACL []string `json:"acl,omitempty"`
	// Settings are its ALTER DATABASE … SET settings, as the server keeps
	// them ("name=value"), sorted.
	Settings []string `json:"settings,omitempty"`
	// RoleSettings are its roles' ALTER ROLE … IN DATABASE … SET settings,
	// by role name.
	RoleSettings []RoleSettings `json:"role_settings,omitempty"`
}

// RoleSettings are one role's settings in the database.
type RoleSettings struct {
	Role     string   `json:"role"`
	Settings []string `json:"settings"`
}

// databaseSQL reads the current database's own properties: owner,
// connection limit, comment, effective ACL (acldefault when datacl is
// NULL), and its settings and its roles' settings there.
const databaseSQL = `
	SELECT d.datdba::regrole::text, d.datconnlimit,
	       coalesce(pg_catalog.shobj_description(d.oid, 'pg_database'), ''),
	       coalesce((SELECT array_agg(CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE x.grantee::regrole::text END
	                                  || ' ' || x.privilege_type
	                                  || CASE WHEN x.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END ORDER BY 1)
	                 FROM pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) x), '{}'),
	       coalesce((SELECT s.setconfig FROM pg_catalog.pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0), '{}')
	FROM pg_catalog.pg_database d WHERE d.datname = coalesce(nullif($1, ''), pg_catalog.current_database())`

// roleSettingsSQL reads the settings of roles in the current database.
const roleSettingsSQL = `
	SELECT s.setrole::regrole::text, s.setconfig
	FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
	WHERE d.datname = coalesce(nullif($1, ''), pg_catalog.current_database()) AND s.setrole <> 0
	ORDER BY 1`

// ReadDatabase reads the properties of the database q is connected to;
// withOwners false leaves its owner and ACL out (a backup without owners
// and privileges). regrole names are quoted as identifiers are where
// they need it ("App Owner"); UnquoteRole gives the plain name.
func ReadDatabase(ctx context.Context, q Querier, withOwners bool) (Database, error) {
	return ReadDatabaseOf(ctx, q, "", withOwners)
}

// ReadDatabaseOf is ReadDatabase for database name of q's server (the one
// q is connected to when name is empty): it reads pg_database and
// pg_db_role_setting only, so name may take no connections (a template).
func ReadDatabaseOf(ctx context.Context, q Querier, name string, withOwners bool) (Database, error) {
	var d Database
	if err := q.QueryRow(ctx, databaseSQL, name).Scan(&d.Owner, &d.ConnLimit, &d.Comment, &d.ACL, &d.Settings); err != nil {
		return d, fmt.Errorf("fingerprint: the database's own properties: %w", err)
	}
	d.Owner = UnquoteRole(d.Owner)
	slices.Sort(d.Settings)
	rows, err := q.Query(ctx, roleSettingsSQL, name)
	if err != nil {
		return d, fmt.Errorf("fingerprint: the settings of roles in the database: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rs RoleSettings
		if err := rows.Scan(&rs.Role, &rs.Settings); err != nil {
			return d, err
		}
		rs.Role = UnquoteRole(rs.Role)
		slices.Sort(rs.Settings)
		d.RoleSettings = append(d.RoleSettings, rs)
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("fingerprint: the settings of roles in the database: %w", err)
	}
	if !withOwners {
		d.Owner, d.ACL = "", nil
	}
	return d, nil
}

// UnquoteRole turns a role name as regrole prints it (quoted where an
// identifier needs quotes) into the role's name.
func UnquoteRole(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

// Differences names what of want (a backup's) got (a restored database's)
// lacks or has otherwise, one line each; none when they are equal. An
// owner or ACL left out of want is not compared.
func (want Database) Differences(got Database) []string {
	return want.DifferencesFrom(got, "the backup", "the restored database")
}

// DifferencesFrom is Differences where of names what want describes ("the
// snapshot") and here what got does ("the reset database").
func (want Database) DifferencesFrom(got Database, of, here string) []string {
	var out []string
	if want.Owner != "" && want.Owner != got.Owner {
		out = append(out, fmt.Sprintf("database: owner %s, %s has %s", got.Owner, of, want.Owner))
	}
	if want.ConnLimit != got.ConnLimit {
		out = append(out, fmt.Sprintf("database: connection limit %d, %s has %d", got.ConnLimit, of, want.ConnLimit))
	}
	if want.Comment != got.Comment {
		out = append(out, fmt.Sprintf("database: comment %q, %s has %q", got.Comment, of, want.Comment))
	}
	if want.ACL != nil {
		out = append(out, lineDiffs("database: privilege", of, here, want.ACL, got.ACL)...)
	}
	out = append(out, lineDiffs("database: setting", of, here, want.Settings, got.Settings)...)
	gotRoles := map[string][]string{}
	for _, rs := range got.RoleSettings {
		gotRoles[rs.Role] = rs.Settings
	}
	for _, rs := range want.RoleSettings {
		out = append(out, lineDiffs("database: role "+rs.Role+"'s setting", of, here, rs.Settings, gotRoles[rs.Role])...)
		delete(gotRoles, rs.Role)
	}
	for _, rs := range got.RoleSettings {
		if s, ok := gotRoles[rs.Role]; ok {
			out = append(out, lineDiffs("database: role "+rs.Role+"'s setting", of, here, nil, s)...)
		}
	}
	return out
}

// lineDiffs names the lines want has and got lacks, and those got has
// and want lacks.
func lineDiffs(what, of, here string, want, got []string) []string {
	var out []string
	for _, l := range want {
		if !slices.Contains(got, l) {
			out = append(out, fmt.Sprintf("%s %s: %s has it, %s does not", what, l, of, here))
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			out = append(out, fmt.Sprintf("%s %s: %s has it, %s does not", what, l, here, of))
		}
	}
	return out
}
