package pgtools

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// A throwaway can serve several verifications one after the other (verify
// --all): starting a container and its initdb costs more than most small
// backups' restores. Between two of them Clean puts the server back as it
// started, and proves it did: a backup restores into one database, but
// roles, their memberships and settings, and databases are the server's,
// shared by every database on it, and a backup's restore creates roles
// (its owners and grantees) and could change others. What Clean cannot put
// back, it refuses, and the throwaway is not used again.

// sharedStateQuery is a text that changes whenever what every database of
// the server shares changes: roles (attributes, password), memberships,
// databases (owner, template and connection flags, limit, ACL, encoding,
// locale), role and database settings, tablespaces, comments and security
// labels on shared objects, and the settings ALTER SYSTEM wrote. Object
// ids are left out: a database made again gets a new one.
const sharedStateQuery = `SELECT concat_ws(E'\n',
  (SELECT string_agg(format('%s %s %s %s %s %s %s %s %s %s %s', rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb,
     rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, md5(coalesce(rolpassword, '')), rolvaliduntil), ',' ORDER BY rolname)
   FROM pg_catalog.pg_authid),
  (SELECT string_agg(format('%s>%s %s', r.rolname, m.rolname, am.admin_option), ',' ORDER BY r.rolname, m.rolname)
   FROM pg_catalog.pg_auth_members am JOIN pg_catalog.pg_authid r ON r.oid = am.roleid JOIN pg_catalog.pg_authid m ON m.oid = am.member),
  (SELECT string_agg(format('%s %s %s %s %s %s %s %s', datname, pg_catalog.pg_get_userbyid(datdba), datistemplate, datallowconn,
     datconnlimit, datacl, pg_catalog.pg_encoding_to_char(encoding), datcollate), ',' ORDER BY datname)
   FROM pg_catalog.pg_database),
  (SELECT string_agg(x, ',' ORDER BY x) FROM (SELECT format('%s %s %s', coalesce(d.datname, '-'), coalesce(r.rolname, '-'), s.setconfig) AS x
   FROM pg_catalog.pg_db_role_setting s LEFT JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
   LEFT JOIN pg_catalog.pg_authid r ON r.oid = s.setrole) settings),
  (SELECT string_agg(format('%s %s %s', spcname, pg_catalog.pg_get_userbyid(spcowner), spcacl), ',' ORDER BY spcname)
   FROM pg_catalog.pg_tablespace),
  (SELECT string_agg(x, ',' ORDER BY x) FROM (SELECT format('%s %s', classoid::regclass, description) AS x
   FROM pg_catalog.pg_shdescription) comments),
  (SELECT count(*)::text FROM pg_catalog.pg_shseclabel),
  (SELECT string_agg(format('%s=%s', name, setting), ',' ORDER BY name) FROM pg_catalog.pg_file_settings
   WHERE sourcefile LIKE '%postgresql.auto.conf'))`

// maintenanceDatabases are the databases initdb makes, which Clean keeps.
var maintenanceDatabases = []string{"postgres", "template0", "template1"}

// sharedState reads sharedStateQuery on the throwaway's postgres database.
func (t *Throwaway) sharedState(ctx context.Context, conn *pgx.Conn) (string, error) {
	var s string
	if err := conn.QueryRow(ctx, sharedStateQuery).Scan(&s); err != nil {
		return "", fmt.Errorf("read the shared state of throwaway container %.12s: %w", t.id, err)
	}
	return s, nil
}

// maintenance connects to the throwaway's postgres database.
func (t *Throwaway) maintenance(ctx context.Context) (*pgx.Conn, error) {
	db := t.DB
	db.DBName = "postgres"
	conn, err := pgx.Connect(ctx, t.r.dbs.ConnString(db))
	if err != nil {
		return nil, fmt.Errorf("connect to throwaway container %.12s: %w", t.id, err)
	}
	return conn, nil
}

// recordStart reads what the throwaway started with, which Clean puts it
// back to: its shared state and its roles.
func (t *Throwaway) recordStart(ctx context.Context) error {
	conn, err := t.maintenance(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if t.startRoles, err = names(ctx, conn, `SELECT rolname FROM pg_catalog.pg_roles WHERE rolname <> ALL($1) ORDER BY 1`, []string{}); err != nil {
		return fmt.Errorf("list the roles of throwaway container %.12s: %w", t.id, err)
	}
	t.start, err = t.sharedState(ctx, conn)
	return err
}

// ErrNotClean is a throwaway Clean could not put back as it started: it
// is closed, not used again.
var ErrNotClean = errors.New("the throwaway's server is not as it started")

// Clean puts the throwaway back as it started, for the next verification:
// every database but postgres and the templates dropped (ending their
// connections), its own database (DB.DBName) made again, empty, and every
// role it did not start with dropped with what it owns. It then compares
// the server's shared state (sharedStateQuery) with what it started with;
// any difference is ErrNotClean, naming nothing of the backup's data. The
// wait is bounded by ctx and 30 s.
func (t *Throwaway) Clean(ctx context.Context) error {
	if t.start == "" {
		return fmt.Errorf("%w: its state at start was not recorded", ErrNotClean)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := t.maintenance(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	dbs, err := names(ctx, conn, `SELECT datname FROM pg_catalog.pg_database WHERE NOT datname = ANY($1) ORDER BY 1`, maintenanceDatabases)
	if err != nil {
		return fmt.Errorf("list the databases of throwaway container %.12s: %w", t.id, err)
	}
	for _, d := range dbs {
		if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{d}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s of throwaway container %.12s: %w", d, t.id, err)
		}
	}
	// Roles the restores created own nothing now (their databases are
	// gone) but may hold grants in the maintenance databases, or
	// memberships: DROP OWNED in each, then DROP ROLE.
	roles, err := names(ctx, conn, `SELECT rolname FROM pg_catalog.pg_roles WHERE rolname <> ALL($1) ORDER BY 1`, t.startRoles)
	if err != nil {
		return fmt.Errorf("list the roles of throwaway container %.12s: %w", t.id, err)
	}
	if len(roles) > 0 {
		if err := t.dropRoles(ctx, conn, roles); err != nil {
			return err
		}
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{t.DB.DBName}.Sanitize()); err != nil {
		return fmt.Errorf("make database %s of throwaway container %.12s again: %w", t.DB.DBName, t.id, err)
	}
	now, err := t.sharedState(ctx, conn)
	if err != nil {
		return err
	}
	if now != t.start {
		return fmt.Errorf("%w: container %.12s", ErrNotClean, t.id)
	}
	return nil
}

// dropRoles drops roles (the ones the throwaway did not start with) and
// what they own or were granted on what is left: the postgres database
// and the server's shared objects (no restore reaches the templates).
func (t *Throwaway) dropRoles(ctx context.Context, conn *pgx.Conn, roles []string) error {
	list := ""
	for i, r := range roles {
		if i > 0 {
			list += ", "
		}
		list += pgx.Identifier{r}.Sanitize()
	}
	if _, err := conn.Exec(ctx, "DROP OWNED BY "+list); err != nil {
		return fmt.Errorf("drop what roles %s own in throwaway container %.12s: %w", list, t.id, err)
	}
	if _, err := conn.Exec(ctx, "DROP ROLE "+list); err != nil {
		return fmt.Errorf("drop roles %s of throwaway container %.12s: %w", list, t.id, err)
	}
	return nil
}

// names runs a query of one text column with one argument.
func names(ctx context.Context, conn *pgx.Conn, sql string, arg []string) ([]string, error) {
	rows, err := conn.Query(ctx, sql, arg)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
