// Package roles carries the cluster roles a database refers to along with
// its backups. Roles live in the server, not in the database, so a plain
// pg_dump of the database names roles (owners, grantees, policy roles)
// that a fresh server lacks: restoring it there fails, or loses every
// owner and grant. A backup reads the roles its database refers to (Read),
// in the dump's own snapshot; the file and the manifest carry them, and a
// restore creates those the target lacks (SQL) before the file's objects
// name them, never altering a role that exists.
package roles

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what reading roles needs of a connection or transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Role is a cluster role as CREATE ROLE makes it.
type Role struct {
	Name        string `json:"name"`
	Login       bool   `json:"login"`
	Superuser   bool   `json:"superuser"`
	CreateDB    bool   `json:"createdb"`
	CreateRole  bool   `json:"createrole"`
	Inherit     bool   `json:"inherit"`
	Replication bool   `json:"replication"`
	BypassRLS   bool   `json:"bypassrls"`
	// ConnLimit is CONNECTION LIMIT; -1 is none.
	ConnLimit int `json:"connection_limit"`
	// ValidUntil is VALID UNTIL, as a timestamp in UTC (or "infinity");
	// "" for none.
	ValidUntil string `json:"valid_until,omitempty"`
	// Password is the password's hash (pg_authid.rolpassword: SCRAM or
	// md5), only when the backup was asked for it: it is a secret.
	Password string `json:"password,omitempty"`
	// Bootstrap marks the server's bootstrap superuser (OID 10).
	Bootstrap bool `json:"bootstrap,omitempty"`
	// MemberOf lists the roles this one is a member of.
	MemberOf []Membership `json:"member_of,omitempty"`
}

// Membership is one role's membership in another.
type Membership struct {
	Role  string `json:"role"`
	Admin bool   `json:"admin,omitempty"`
}

// Names are the roles' names, in their order.
func Names(rs []Role) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}

// referencedSQL lists the OIDs of the roles the current database refers
// to: the owners of its objects, every grantor and grantee in its ACLs
// (relations, columns, schemas, functions, types, languages, foreign data
// wrappers and servers, large objects, default privileges), the roles its
// policies apply to, the roles whose default privileges it sets, the
// database's owner, the roles in its own ACL and those with settings in
// it (ALTER ROLE … IN DATABASE), and the bootstrap superuser (OID 10),
// which owns the system's objects; then, transitively, the roles these
// are members of. PUBLIC (OID 0) is no role.
const referencedSQL = `
	WITH RECURSIVE acls(acl) AS (
		SELECT relacl FROM pg_catalog.pg_class WHERE relacl IS NOT NULL
		UNION ALL SELECT attacl FROM pg_catalog.pg_attribute WHERE attacl IS NOT NULL
		UNION ALL SELECT nspacl FROM pg_catalog.pg_namespace WHERE nspacl IS NOT NULL
		UNION ALL SELECT proacl FROM pg_catalog.pg_proc WHERE proacl IS NOT NULL
		UNION ALL SELECT typacl FROM pg_catalog.pg_type WHERE typacl IS NOT NULL
		UNION ALL SELECT lanacl FROM pg_catalog.pg_language WHERE lanacl IS NOT NULL
		UNION ALL SELECT fdwacl FROM pg_catalog.pg_foreign_data_wrapper WHERE fdwacl IS NOT NULL
		UNION ALL SELECT srvacl FROM pg_catalog.pg_foreign_server WHERE srvacl IS NOT NULL
		UNION ALL SELECT lomacl FROM pg_catalog.pg_largeobject_metadata WHERE lomacl IS NOT NULL
		UNION ALL SELECT defaclacl FROM pg_catalog.pg_default_acl
		UNION ALL SELECT datacl FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database() AND datacl IS NOT NULL
	), direct(oid) AS (
		SELECT 10::oid
		UNION SELECT x.grantee FROM acls, pg_catalog.aclexplode(acls.acl) x
		UNION SELECT x.grantor FROM acls, pg_catalog.aclexplode(acls.acl) x
		UNION SELECT relowner FROM pg_catalog.pg_class
		UNION SELECT nspowner FROM pg_catalog.pg_namespace
		UNION SELECT proowner FROM pg_catalog.pg_proc
		UNION SELECT typowner FROM pg_catalog.pg_type
		UNION SELECT collowner FROM pg_catalog.pg_collation
		UNION SELECT conowner FROM pg_catalog.pg_conversion
		UNION SELECT oprowner FROM pg_catalog.pg_operator
		UNION SELECT opcowner FROM pg_catalog.pg_opclass
		UNION SELECT opfowner FROM pg_catalog.pg_opfamily
		UNION SELECT cfgowner FROM pg_catalog.pg_ts_config
		UNION SELECT dictowner FROM pg_catalog.pg_ts_dict
		UNION SELECT lanowner FROM pg_catalog.pg_language
		UNION SELECT fdwowner FROM pg_catalog.pg_foreign_data_wrapper
		UNION SELECT srvowner FROM pg_catalog.pg_foreign_server
		UNION SELECT umuser FROM pg_catalog.pg_user_mapping
		UNION SELECT evtowner FROM pg_catalog.pg_event_trigger
		UNION SELECT pubowner FROM pg_catalog.pg_publication
		UNION SELECT stxowner FROM pg_catalog.pg_statistic_ext
		UNION SELECT lomowner FROM pg_catalog.pg_largeobject_metadata
		UNION SELECT defaclrole FROM pg_catalog.pg_default_acl
		UNION SELECT unnest(polroles) FROM pg_catalog.pg_policy
		UNION SELECT datdba FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()
		UNION SELECT s.setrole FROM pg_catalog.pg_db_role_setting s JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
			WHERE d.datname = pg_catalog.current_database()
	), closure(oid) AS (
		SELECT oid FROM direct WHERE oid <> 0
		UNION SELECT m.roleid FROM pg_catalog.pg_auth_members m JOIN closure c ON m.member = c.oid
	)
	SELECT oid FROM closure`

// rolesSQL reads the attributes of the referenced roles (%s: the password
// column), leaving out the predefined pg_* roles, which every server has.
const rolesSQL = `
	SELECT r.rolname::text, r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolinherit,
	       r.rolreplication, r.rolbypassrls, r.rolconnlimit,
	       CASE WHEN r.rolvaliduntil IS NULL THEN ''
	            WHEN NOT pg_catalog.isfinite(r.rolvaliduntil) THEN r.rolvaliduntil::text
	            ELSE pg_catalog.to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' END,
	       %s, r.oid = 10,
	       coalesce((SELECT array_agg(m.roleid::regrole::text ORDER BY m.roleid::regrole::text) FROM pg_catalog.pg_auth_members m WHERE m.member = r.oid), '{}'),
	       coalesce((SELECT array_agg(m.admin_option ORDER BY m.roleid::regrole::text) FROM pg_catalog.pg_auth_members m WHERE m.member = r.oid), '{}')
	FROM pg_catalog.pg_roles r
	WHERE r.oid IN (` + referencedSQL + `) AND NOT starts_with(r.rolname, 'pg_')
	ORDER BY r.rolname`

// Read lists the roles the database q reads refers to (see referencedSQL),
// with their attributes and memberships, by name; in a REPEATABLE READ
// transaction, as they were in its snapshot. With passwords, each role's
// password hash too (reading pg_authid needs a superuser). A membership in
// a predefined role (pg_read_all_data, say) is kept: every server has it.
func Read(ctx context.Context, q Querier, passwords bool) ([]Role, error) {
	pw := "''::text"
	if passwords {
		pw = "coalesce((SELECT a.rolpassword FROM pg_catalog.pg_authid a WHERE a.oid = r.oid), '')"
	}
	rows, err := q.Query(ctx, fmt.Sprintf(rolesSQL, pw))
	if err != nil {
		return nil, fmt.Errorf("read the roles the database refers to: %w", err)
	}
	var out []Role
	var r Role
	var member []string
	var admin []bool
	_, err = pgx.ForEachRow(rows, []any{&r.Name, &r.Login, &r.Superuser, &r.CreateDB, &r.CreateRole, &r.Inherit,
		&r.Replication, &r.BypassRLS, &r.ConnLimit, &r.ValidUntil, &r.Password, &r.Bootstrap, &member, &admin}, func() error {
		for i, m := range member {
			// regrole's text quotes a name that needs it; the name is
			// wanted as it is.
			r.MemberOf = append(r.MemberOf, Membership{Role: unquoteRole(m), Admin: i < len(admin) && admin[i]})
		}
		out = append(out, r)
		r, member, admin = Role{}, nil, nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the roles the database refers to: %w", err)
	}
	return out, nil
}

// unquoteRole reads a role name as regrole writes it: quoted with doubled
// quotes where it needs quoting.
func unquoteRole(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

// Missing lists, in their order, the names of the roles that the server q
// is connected to lacks.
func Missing(ctx context.Context, q Querier, rs []Role) ([]string, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = ANY ($1)", Names(rs))
	if err != nil {
		return nil, fmt.Errorf("look for the backup's roles on the server: %w", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look for the backup's roles on the server: %w", err)
	}
	var out []string
	for _, r := range rs {
		if !slices.Contains(have, r.Name) {
			out = append(out, r.Name)
		}
	}
	return out, nil
}

// Drop removes the roles names (created by a restore whose later steps
// failed; their memberships go with them). A role that something depends
// on by now stays (DROP ROLE refuses); every failure is returned, joined.
func Drop(ctx context.Context, q Querier, names []string) error {
	var errs []error
	for _, name := range names {
		if _, err := q.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
			errs = append(errs, fmt.Errorf("drop role %s, created by this restore: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
