package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/roles"
)

// withRoles is an application's access rules, created outside the
// migrations: roles (a login role, a role that is a member of another, a
// role that owns a table), table and column grants, default privileges,
// and row-level security with a policy for one role.
const withRoles = `
CREATE ROLE app_group NOLOGIN;
CREATE ROLE app_reader LOGIN CONNECTION LIMIT 3 PASSWORD 'reader-secret';
CREATE ROLE app_writer NOLOGIN IN ROLE app_group;
CREATE ROLE app_owner NOLOGIN;
CREATE TABLE notes (id int PRIMARY KEY, owner_name text NOT NULL, body text, secret text);
INSERT INTO notes VALUES (1, 'app_reader', 'mine', 's1'), (2, 'someone', 'theirs', 's2'), (3, 'app_reader', 'mine too', 's3');
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY reader_sees_own ON notes FOR SELECT TO app_reader USING (owner_name = current_user);
GRANT SELECT (id, owner_name, body) ON notes TO app_reader;
GRANT SELECT, INSERT, UPDATE ON notes TO app_writer;
CREATE TABLE audit (id int PRIMARY KEY, what text);
ALTER TABLE audit OWNER TO app_owner;
INSERT INTO audit VALUES (1, 'created');
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO app_group;
`

// access is what the application's roles see and may do in a database:
// the rows app_reader reads (its policy lets it see its own), whether it
// may read a column it was not granted, whether app_group may read a
// table created now (default privileges), app_writer's memberships,
// app_reader's connection limit, and the schema's description with owners
// and privileges (fingerprint.SchemaLines).
type access struct {
	ReaderRows     []string
	ReaderSecret   string
	GroupReadsNew  bool
	WriterMemberOf []string
	ReaderConnLim  int
	Schema         []string
}

var errRolledBack = errors.New("rolled back")

func accessOf(t *testing.T, url string) access {
	t.Helper()
	conn := connect(t, url)
	ctx := t.Context()
	var a access
	require.NoError(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE app_reader"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT id || ':' || body FROM notes ORDER BY id")
		if err != nil {
			return err
		}
		a.ReaderRows, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	}))
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "SET LOCAL ROLE app_reader; SELECT secret FROM notes")
		return err
	})
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		a.ReaderSecret = pg.Code
	} else {
		require.NoError(t, err)
	}
	require.ErrorIs(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE TABLE public.made_later (id int)"); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT has_table_privilege('app_group', 'public.made_later', 'SELECT')").Scan(&a.GroupReadsNew); err != nil {
			return err
		}
		return errRolledBack // the probe leaves nothing behind
	}), errRolledBack)
	require.NoError(t, conn.QueryRow(ctx, `SELECT coalesce(array_agg(m.roleid::regrole::text ORDER BY 1), '{}')
		FROM pg_auth_members m WHERE m.member = 'app_writer'::regrole`).Scan(&a.WriterMemberOf))
	require.NoError(t, conn.QueryRow(ctx, "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app_reader'").Scan(&a.ReaderConnLim))
	a.Schema, err = fingerprint.SchemaLines(ctx, conn, fingerprint.SchemaForm{Privileges: fingerprint.WithOwners})
	require.NoError(t, err)
	return a
}

// restoreJSON runs aidb restore --json --yes --no-backup with args.
func (p *project) restoreJSON(args ...string) (int, []restore.Result, string) {
	p.t.Helper()
	r := p.aidb(append([]string{"restore", "--json", "--yes", "--no-backup"}, args...)...)
	var doc struct {
		Restores []restore.Result `json:"restores"`
	}
	if r.code == 0 {
		require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	}
	return r.code, doc.Restores, r.stderr
}

// verifiedBackup runs aidb backup --json --verify rulesdb with args and
// returns the file, which verified equal.
func (p *project) verifiedBackup(args ...string) string {
	p.t.Helper()
	r := p.aidb(append([]string{"backup", "--json", "--verify", "rulesdb"}, args...)...)
	require.Equal(p.t, 0, r.code, r.stderr)
	var doc struct {
		Results []verify.Result `json:"results"`
	}
	require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	require.Len(p.t, doc.Results, 1)
	require.True(p.t, doc.Results[0].OK, "%v %s", doc.Results[0].Differences, doc.Results[0].Error)
	return doc.Results[0].File
}

// freshServer nukes the project's rulesdb and brings it up again: a new
// server, with none of the application's roles.
func (p *project) freshServer() string {
	p.t.Helper()
	for _, args := range [][]string{{"nuke", "--yes", "--no-backup"}, {"up", "rulesdb"}} {
		r := p.aidb(args...)
		require.Equal(p.t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	url := p.status()["rulesdb"].URL
	var n int
	require.NoError(p.t, connect(p.t, url).QueryRow(p.t.Context(), "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'app\\_%'").Scan(&n))
	require.Zero(p.t, n, "a new server has none of the application's roles")
	return url
}

func TestRolesOwnersAndPrivilegesTravelWithBackups(t *testing.T) {
	t.Parallel()
	p := newProject(t, "roles")
	p.backupDir()
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	url := p.status()["rulesdb"].URL
	_, err := connect(t, url).Exec(t.Context(), withRoles)
	require.NoError(t, err)
	source := accessOf(t, url)
	require.Equal(t, []string{"1:mine", "3:mine too"}, source.ReaderRows, "the policy shows app_reader its own rows")
	require.Equal(t, "42501", source.ReaderSecret, "app_reader may not read the column it was not granted")
	require.True(t, source.GroupReadsNew, "the default privileges give app_group new tables")
	require.Equal(t, []string{"app_group"}, source.WriterMemberOf)
	require.Equal(t, 3, source.ReaderConnLim)
	rows := contentByName(t, url)

	// Every kind verifies (the policy names app_reader, which the
	// throwaway server gets first; a data-only backup is verified on the
	// schema it carries, these hand-made tables and their grants included).
	full := p.verifiedBackup()
	schema := p.verifiedBackup("--schema-only")
	data := p.verifiedBackup("--data-only")

	m := readManifest(t, full)
	assert.Equal(t, 4, m.Format)
	assert.False(t, m.NoOwner)
	assert.Equal(t, []string{"app_group", "app_owner", "app_reader", "app_writer", "rules"}, roles.Names(m.Roles),
		"owners, grantees, the policy's role, the default privileges' grantee and app_writer's group; the bootstrap superuser; no pg_* role")
	byName := map[string]roles.Role{}
	for _, r := range m.Roles {
		byName[r.Name] = r
		assert.Empty(t, r.Password, "no password unless asked")
	}
	assert.Equal(t, roles.Role{Name: "app_reader", Login: true, Inherit: true, ConnLimit: 3}, byName["app_reader"])
	assert.Equal(t, []roles.Membership{{Role: "app_group"}}, byName["app_writer"].MemberOf)
	assert.True(t, byName["rules"].Bootstrap && byName["rules"].Superuser)
	assert.Contains(t, m.Privileges, "policy public.notes reader_sees_own permissive for r to app_reader using (owner_name = CURRENT_USER)")
	assert.Contains(t, m.Privileges, "owner relation public.audit app_owner")
	for _, kind := range []string{schema, data} {
		assert.Equal(t, roles.Names(m.Roles), roles.Names(readManifest(t, kind).Roles), "every kind records the roles: %s", kind)
	}
	raw := readAllPlain(t, full)
	assert.NotContains(t, raw, "PASSWORD")
	roleBlock, objects := strings.Index(raw, "CREATE ROLE \"app_reader\""), strings.Index(raw, "CREATE TABLE")
	assert.True(t, roleBlock > 0 && roleBlock < objects, "the roles come before any object")
	assert.NotContains(t, readAllPlain(t, data), "CREATE ROLE", "a data-only file holds data only")

	// Asked for, the password hashes travel too: in the file and the
	// manifest, which then hold secrets.
	withPw := p.backupJSON("--with-role-passwords", "rulesdb").Files[0].Path
	pm := readManifest(t, withPw)
	assert.True(t, pm.RolePasswords)
	for _, r := range pm.Roles {
		if r.Name == "app_reader" {
			assert.True(t, strings.HasPrefix(r.Password, "SCRAM-SHA-256$"), r.Password)
			assert.Contains(t, readAllPlain(t, withPw), "PASSWORD '"+r.Password+"'")
		}
	}
	require.NoError(t, os.Remove(withPw))
	require.NoError(t, os.Remove(withPw+".manifest.json"))

	// Without owners: verified on the grants it holds, not on owners.
	noOwner := p.verifiedBackup("--no-owner")
	assert.True(t, readManifest(t, noOwner).NoOwner)
	assert.NotContains(t, readAllPlain(t, noOwner), "OWNER TO")
	assert.Contains(t, readAllPlain(t, noOwner), "GRANT SELECT,INSERT,UPDATE ON TABLE public.notes TO app_writer;")

	// One GRANT taken out of the file (its checksum recomputed) is a
	// difference that names it.
	const grant = "GRANT SELECT,INSERT,UPDATE ON TABLE public.notes TO app_writer;\n"
	require.Contains(t, raw, grant)
	tampered := filepath.Join(filepath.Dir(full), "rulesdb-20200101-000000.sql")
	writeWithManifest(t, full, tampered, []byte(strings.Replace(raw, grant, "", 1)))
	code, results, stderr := p.verifyJSON(tampered)
	assert.Equal(t, 3, code, stderr)
	require.Len(t, results, 1)
	assert.Contains(t, strings.Join(results[0].Differences, "\n"), "app_writer:INSERT:rules", "the lost grant is named")
	require.NoError(t, os.Remove(tampered))
	require.NoError(t, os.Remove(tampered+".manifest.json"))

	// Plain psql of the full backup onto a fresh server (no aidb): the
	// same roles, owners, grants and policies.
	plain := newProject(t, "roles-plain")
	r := plain.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	pst := plain.status()["rulesdb"]
	psql := exec.CommandContext(t.Context(), "docker", "exec", "-i", pst.Container, "psql", "-U", "rules", "-d", "rulesdb", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-q")
	f, err := os.Open(full)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	psql.Stdin = f
	out, err := psql.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Equal(t, source, accessOf(t, pst.URL), "plain psql restores roles, owners and privileges")
	assert.Equal(t, rows, contentByName(t, pst.URL))

	// After nuke and up, a full restore creates the missing roles and
	// brings back rows, owners, grants and policies. A role the server has
	// is left as it is: app_reader, made with CONNECTION LIMIT 5, keeps it
	// though the backup says 3.
	url = p.freshServer()
	_, err = connect(t, url).Exec(t.Context(), "CREATE ROLE app_reader LOGIN CONNECTION LIMIT 5")
	require.NoError(t, err)
	code, res, stderr := p.restoreJSON("rulesdb", full)
	require.Equal(t, 0, code, stderr)
	require.Len(t, res, 1)
	assert.True(t, res[0].Verified)
	assert.Equal(t, []string{"app_group", "app_owner", "app_writer"}, res[0].RolesCreated)
	assert.Contains(t, stderr, "rulesdb: created the role(s) app_group, app_owner, app_writer")
	want := source
	want.ReaderConnLim = 5
	assert.Equal(t, want, accessOf(t, url))
	assert.Equal(t, rows, contentByName(t, url))

	// Schema restore, then data-only restore, onto another fresh server.
	url = p.freshServer()
	code, res, stderr = p.restoreJSON("rulesdb", schema)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, []string{"app_group", "app_owner", "app_reader", "app_writer"}, res[0].RolesCreated)
	code, res, stderr = p.restoreJSON("--data-only", "rulesdb", data)
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, []string{}, res[0].RolesCreated, "the schema restore created them")
	assert.Equal(t, source, accessOf(t, url))
	assert.Equal(t, rows, contentByName(t, url))
}

// A full restore that fails after its load (the file's content differs
// from its manifest) leaves the server as it was: the roles it created are
// dropped with the temporary database.
func TestRolesCreatedByAFailedRestoreAreDropped(t *testing.T) {
	t.Parallel()
	p := newProject(t, "roles-undo")
	p.backupDir()
	r := p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	url := p.status()["rulesdb"].URL
	_, err := connect(t, url).Exec(t.Context(), withRoles)
	require.NoError(t, err)
	full := p.backupJSON("rulesdb").Files[0].Path
	raw := readAllPlain(t, full)
	const row = "2\tsomeone\ttheirs\ts2\n"
	require.Contains(t, raw, row)
	tampered := filepath.Join(filepath.Dir(full), "rulesdb-20200101-000000.sql")
	writeWithManifest(t, full, tampered, []byte(strings.Replace(raw, row, "2\tsomeone\tchanged\ts2\n", 1)))

	url = p.freshServer()
	before := roleNames(t, url)
	code, _, stderr := p.restoreJSON("rulesdb", tampered)
	assert.Equal(t, 3, code, stderr)
	assert.Contains(t, stderr, "public.notes")
	assert.Equal(t, before, roleNames(t, url), "the roles the load created are gone again")
	assert.Empty(t, restoreLeftovers(t, url))
}

func roleNames(t *testing.T, url string) []string {
	t.Helper()
	rows, err := connect(t, url).Query(t.Context(), "SELECT rolname::text FROM pg_roles WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1")
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.True(t, slices.Contains(names, "rules"))
	return names
}
