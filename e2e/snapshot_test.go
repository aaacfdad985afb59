package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/aidbtest"
	"github.com/aidb/aidb/internal/ops/snapshot"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// rowsDigest is, per user table of the database conn reads, the number of
// rows and an md5 of every row's text in order: equal digests are
// row-for-row equal tables.
func rowsDigest(t *testing.T, conn *pgx.Conn) map[string]string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	out := map[string]string{}
	for _, tb := range tables {
		var n int64
		var sum *string
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*), md5(string_agg(x::text, E'\\n' ORDER BY x::text)) FROM "+tb+" x").Scan(&n, &sum))
		s := ""
		if sum != nil {
			s = *sum
		}
		out[tb] = fmt.Sprintf("%d rows %s", n, s)
	}
	return out
}

// serverDatabases lists the databases on the server conn is connected to,
// but template0/1 and postgres.
func serverDatabases(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.WithoutCancel(t.Context()), "SELECT datname FROM pg_database WHERE datname NOT IN ('template0', 'template1', 'postgres') ORDER BY 1")
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// adminURL is a status URL pointed at the maintenance database.
func adminURL(url string) string {
	i := strings.LastIndex(url, "/")
	q := strings.Index(url[i:], "?")
	return url[:i] + "/postgres" + url[i+q:]
}

// snapshotList runs aidb snapshot list --json.
func (p *project) snapshotList(dbs ...string) []snapshot.Copy {
	p.t.Helper()
	r := p.aidb(append([]string{"snapshot", "list", "--json"}, dbs...)...)
	require.Equal(p.t, 0, r.code, r.stderr)
	var doc struct {
		Snapshots []snapshot.Copy `json:"snapshots"`
	}
	require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	return doc.Snapshots
}

// assertHNSWUsed checks memorydb's HNSW index is valid and that a
// nearest-neighbour query uses it and finds a vector itself.
func assertHNSWUsed(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	var valid bool
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'memories_embedding_hnsw'::regclass").Scan(&valid))
	assert.True(t, valid, "the HNSW index is valid after the reset")
	var probe string
	var id int64
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT id, embedding::text FROM memories ORDER BY id LIMIT 1 OFFSET 6").Scan(&id, &probe))
	_, err := conn.Exec(t.Context(), "SET enable_seqscan = off")
	require.NoError(t, err)
	rows, err := conn.Query(t.Context(), "EXPLAIN SELECT id FROM memories ORDER BY embedding <=> $1::vector LIMIT 5", probe)
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Contains(t, strings.Join(plan, "\n"), "Index Scan using memories_embedding_hnsw on memories", "the KNN query uses the index")
	var nearest int64
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT id FROM memories ORDER BY embedding <=> $1::vector LIMIT 1", probe).Scan(&nearest))
	assert.Equal(t, id, nearest, "a vector's nearest neighbour is itself")
}

// A snapshot of both databases taken while a transaction is open holds
// what was committed; a reset brings every row back (and memorydb's HNSW
// index, valid and used), refusing while connections are open unless
// --yes; --undo goes back; snapshots survive down and up, are in no
// backup, and nuke says how many it removed.
func TestSnapshotAndReset(t *testing.T) {
	t.Parallel()
	p := newProject(t, "snap")
	p.backupDir()
	p.seeded("300")
	st := p.status()
	rules, mem := connect(t, st["rulesdb"].URL), connect(t, st["memorydb"].URL)
	wantRules, wantMem := rowsDigest(t, rules), rowsDigest(t, mem)

	// An open transaction refuses the snapshot (named), until --yes ends
	// it; its uncommitted row is not in the snapshot.
	tx, err := rules.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), "INSERT INTO projects (slug, name) VALUES ('uncommitted', 'never committed')")
	require.NoError(t, err)
	r := p.aidb("snapshot", "--name", "base")
	require.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "in a transaction")
	assert.Contains(t, r.stderr, "--yes")
	assert.Empty(t, p.snapshotList(), "a refused snapshot leaves none, of either database")
	r = p.aidb("snapshot", "--name", "base", "--yes", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "ended connection pid")
	var made struct {
		Snapshots []snapshot.CreateResult `json:"snapshots"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &made), r.stdout)
	require.Len(t, made.Snapshots, 2)
	for _, m := range made.Snapshots {
		assert.Contains(t, []string{snapshot.StrategyFileCopy, snapshot.StrategyWALLog}, m.Snapshot.Strategy, "--json reports the strategy")
		assert.Equal(t, int64(3), m.Snapshot.MigrationVersion)
	}
	require.Error(t, tx.Commit(t.Context()), "the snapshot ended the open transaction")

	// Changes, then a reset: refused while a connection is open.
	rules, mem = connect(t, st["rulesdb"].URL), connect(t, st["memorydb"].URL)
	_, err = rules.Exec(t.Context(), "DELETE FROM rule_tags; UPDATE rules SET body = 'changed'")
	require.NoError(t, err)
	_, err = mem.Exec(t.Context(), "DELETE FROM memories WHERE id % 2 = 0")
	require.NoError(t, err)
	changedRules := rowsDigest(t, rules)
	r = p.aidb("reset")
	require.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "connected")
	assert.Equal(t, changedRules, rowsDigest(t, rules), "a refused reset changes nothing")

	r = p.aidb("reset", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "equal to its fingerprint")
	rules, mem = connect(t, st["rulesdb"].URL), connect(t, st["memorydb"].URL)
	assert.Equal(t, wantRules, rowsDigest(t, rules), "rulesdb row for row as at the snapshot")
	assert.Equal(t, wantMem, rowsDigest(t, mem), "memorydb row for row as at the snapshot")
	var uncommitted int
	require.NoError(t, rules.QueryRow(t.Context(), "SELECT count(*) FROM projects WHERE slug = 'uncommitted'").Scan(&uncommitted))
	assert.Zero(t, uncommitted, "the open transaction's row is not in the snapshot")
	assertHNSWUsed(t, mem)
	_ = rules.Close(t.Context())
	_ = mem.Close(t.Context())

	// --undo brings back what the reset replaced.
	r = p.aidb("reset", "rulesdb", "--undo")
	require.Equal(t, 0, r.code, r.stderr)
	rules = connect(t, st["rulesdb"].URL)
	assert.Equal(t, changedRules, rowsDigest(t, rules), "--undo: the changes are back")
	_ = rules.Close(t.Context())

	// Down and up keep them; a backup holds only the application's data.
	require.Equal(t, 0, p.aidb("down").code)
	require.Equal(t, 0, p.aidb("up").code)
	snaps := p.snapshotList("rulesdb")
	var names []string
	for _, s := range snaps {
		names = append(names, s.Name)
	}
	assert.Contains(t, names, "base", "the snapshot survives down and up")
	require.Len(t, snaps, 3, "base and the two kept by reset and --undo: %v", names)
	r = p.aidb("status")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: 3 snapshots and 0 clones (aidb snapshot list, aidb clone list); aidb reset rulesdb goes back to base")
	res := p.backupJSON("rulesdb")
	body, err := readAll(openPlain(t, res.Files[0].Path))
	require.NoError(t, err)
	assert.NotContains(t, string(body), "_snap_", "no snapshot in the backup")
	assert.NotContains(t, string(body), "CREATE DATABASE")
	assert.Len(t, readManifest(t, res.Files[0].Path).Tables, len(wantRules), "the backup's tables are rulesdb's")
	r = p.aidb("verify", "--all")
	assert.Equal(t, 0, r.code, "verify --all with snapshots on the server: %s", r.stderr)

	// Both databases are reset, or neither: rulesdb's snapshot tampered
	// with, its copy differs (exit 3) after memorydb (the first) was
	// reset, and memorydb is put back as it was.
	mem = connect(t, st["memorydb"].URL)
	_, err = mem.Exec(t.Context(), "DELETE FROM memory_links")
	require.NoError(t, err)
	changedAgain := rowsDigest(t, mem)
	_ = mem.Close(t.Context())
	rulesAdmin := connect(t, adminURL(st["rulesdb"].URL))
	_, err = rulesAdmin.Exec(t.Context(), "ALTER DATABASE rulesdb_snap_base ALLOW_CONNECTIONS true")
	require.NoError(t, err)
	tampered := connect(t, strings.Replace(st["rulesdb"].URL, "/rulesdb?", "/rulesdb_snap_base?", 1))
	_, err = tampered.Exec(t.Context(), "UPDATE rules SET body = 'tampered' WHERE id = (SELECT min(id) FROM rules)")
	require.NoError(t, err)
	_ = tampered.Close(t.Context())
	_, err = rulesAdmin.Exec(t.Context(), "ALTER DATABASE rulesdb_snap_base ALLOW_CONNECTIONS false")
	require.NoError(t, err)
	r = p.aidb("reset", "--yes", "--to", "base")
	assert.Equal(t, 3, r.code, r.stderr)
	assert.Contains(t, r.stderr, "reset rulesdb: the copy of snapshot base differs from its fingerprint")
	assert.Contains(t, r.stderr, "memorydb: put back as it was before this reset")
	mem = connect(t, st["memorydb"].URL)
	assert.Equal(t, changedAgain, rowsDigest(t, mem), "memorydb is as before the reset that failed for rulesdb")
	_ = mem.Close(t.Context())
	// A refusal for one database (no such snapshot) changes neither.
	r = p.aidb("reset", "--yes", "--to", "nosuch")
	assert.Equal(t, 2, r.code, r.stderr)
	mem = connect(t, st["memorydb"].URL)
	assert.Equal(t, changedAgain, rowsDigest(t, mem), "a refused reset changes nothing")
	_ = mem.Close(t.Context())

	// Nuke says how many it removed with the data (memorydb: base and the
	// newest three kept by resets and the undo).
	r = p.aidb("nuke", "--yes", "--no-backup")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: removed 3 snapshots and 0 clones with its data")
	assert.Contains(t, r.stderr, "memorydb: removed 4 snapshots and 0 clones with its data")
}

// What a killed snapshot or reset leaves (a half-made snapshot, the copy
// a reset had not swapped in, the database a reset had swapped out, the
// database closed to connections) is repaired, and said, by the next
// snapshot; the database is whole throughout.
func TestResetRepairsKilledRun(t *testing.T) {
	t.Parallel()
	p := newProject(t, "snaprepair")
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}, {"seed", "rulesdb", "--rows", "100"}, {"snapshot", "rulesdb", "--name", "base"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	url := p.status()["rulesdb"].URL
	rules := connect(t, url)
	want := rowsDigest(t, rules)
	_ = rules.Close(t.Context())
	admin := connect(t, adminURL(url))
	// The states a kill leaves, made by hand, as each step leaves them.
	for _, sql := range []string{
		`CREATE DATABASE "rulesdb_aidb_snew_0000000a" TEMPLATE "rulesdb_snap_base"`,
		`CREATE DATABASE "rulesdb_aidb_rnew_0000000b" TEMPLATE "rulesdb_snap_base"`,
		`CREATE DATABASE "rulesdb_aidb_rold_0000000c" TEMPLATE "rulesdb_snap_base"`,
		`ALTER DATABASE "rulesdb_aidb_rold_0000000c" ALLOW_CONNECTIONS false`,
		`ALTER DATABASE rulesdb ALLOW_CONNECTIONS false`,
	} {
		_, err := admin.Exec(t.Context(), sql)
		require.NoError(t, err, sql)
	}
	r := p.aidb("snapshot", "rulesdb", "--name", "after")
	require.Equal(t, 0, r.code, r.stderr)
	for _, n := range []string{"rulesdb_aidb_snew_0000000a", "rulesdb_aidb_rnew_0000000b", "rulesdb_aidb_rold_0000000c"} {
		assert.Contains(t, r.stderr, "repaired what a killed aidb run left: dropped "+n)
	}
	assert.Contains(t, r.stderr, "opened rulesdb to connections again")
	assert.ElementsMatch(t, []string{"rulesdb", "rulesdb_snap_after", "rulesdb_snap_base"}, serverDatabases(t, admin), "only the database and its snapshots are left")
	rules = connect(t, url)
	assert.Equal(t, want, rowsDigest(t, rules), "the database was whole throughout")
	_ = rules.Close(t.Context())

	// A reset killed after its copy, before its swap: the next reset
	// drops the copy and goes ahead.
	_, err := admin.Exec(t.Context(), `CREATE DATABASE "rulesdb_aidb_rnew_0000000d" TEMPLATE "rulesdb_snap_base"`)
	require.NoError(t, err)
	r = p.aidb("reset", "rulesdb", "--yes", "--to", "after")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "dropped rulesdb_aidb_rnew_0000000d")
	rules = connect(t, url)
	assert.Equal(t, want, rowsDigest(t, rules))
	_ = rules.Close(t.Context())
	for _, n := range serverDatabases(t, admin) {
		assert.NotContains(t, n, "_aidb_", "no temporary database is left")
	}
}

// Clones for parallel tests: 8 made and dropped in a loop leave no
// database behind; aidbtest.Clone gives parallel subtests a clone each
// and removes it; the limit refuses clearly; expired clones are pruned;
// a major upgrade refuses while snapshots exist, changing nothing.
func TestCloneForTests(t *testing.T) {
	t.Parallel()
	p := newProject(t, "clone")
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}, {"seed", "rulesdb", "--rows", "50"}, {"snapshot", "rulesdb", "--name", "base"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	url := p.status()["rulesdb"].URL
	admin := connect(t, adminURL(url))
	before := serverDatabases(t, admin)
	rules := connect(t, url)
	want := rowsDigest(t, rules)
	_ = rules.Close(t.Context())

	for i := range 8 {
		r := p.aidb("clone", "rulesdb", "--name", "loop"+strconv.Itoa(i))
		require.Equal(t, 0, r.code, r.stderr)
		c := connect(t, strings.TrimSpace(r.stdout))
		assert.Equal(t, want, rowsDigest(t, c), "the clone holds the snapshot's rows")
		_ = c.Close(t.Context())
		r = p.aidb("clone", "rm", "loop"+strconv.Itoa(i))
		require.Equal(t, 0, r.code, r.stderr)
	}
	assert.Equal(t, before, serverDatabases(t, admin), "8 clones made and removed leave no database behind")

	env := append([]string{"AIDB_PROJECT=" + p.name, "RULESDB_PORT=" + strconv.Itoa(p.rulesPort), "MEMORYDB_PORT=" + strconv.Itoa(p.memPort),
		"AIDB_COMPOSE_FILE=", "AIDB_CONFIG="}, p.env...)
	var mu sync.Mutex
	seen := map[string]bool{}
	t.Run("parallel", func(t *testing.T) {
		for i := range 4 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				db := aidbtest.Clone(t, "rulesdb", aidbtest.Binary(aidbBin), aidbtest.Env(env...))
				c := connect(t, db.URL)
				_, err := c.Exec(t.Context(), "DELETE FROM rule_tags")
				require.NoError(t, err, "each test changes its own clone")
				mu.Lock()
				seen[db.Name] = true
				mu.Unlock()
			})
		}
	})
	assert.Len(t, seen, 4, "a clone per test")
	assert.Equal(t, before, serverDatabases(t, admin), "aidbtest's cleanups removed every clone")
	rules = connect(t, url)
	assert.Equal(t, want, rowsDigest(t, rules), "the clones' changes did not touch rulesdb")
	_ = rules.Close(t.Context())

	// The limit, and expired clones.
	r := p.aidb("clone", "rulesdb", "--name", "keep")
	require.Equal(t, 0, r.code, r.stderr)
	r = p.aidb("clone", "rulesdb", "--name", "two", "--max", "1")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "the limit")
	r = p.aidb("clone", "rulesdb", "--name", "one", "--ttl", "1ms")
	require.Equal(t, 0, r.code, r.stderr)
	r = p.aidb("clone", "prune")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "removed 1 clone whose --ttl ran out")
	r = p.aidb("clone", "rm", "keep")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, before, serverDatabases(t, admin))

	// A major upgrade refuses, before anything changes.
	image := p.status()["rulesdb"].Image
	r = p.aidb("upgrade", "rulesdb", "--image", "postgres:17")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "snapshot base")
	assert.Contains(t, r.stderr, "aidb snapshot rm")
	assert.Equal(t, image, p.status()["rulesdb"].Image, "still on its image")
}

// What belongs to the database itself and CREATE DATABASE … TEMPLATE does
// not copy (its settings, its roles' settings there, its ACL, comment and
// connection limit) comes back with a reset; a clone gets all of it but
// the comment (its metadata).
func TestResetCarriesTheDatabasesOwnProperties(t *testing.T) {
	t.Parallel()
	p := newProject(t, "snapprops")
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	url := p.status()["rulesdb"].URL
	admin := connect(t, adminURL(url))
	for _, sql := range []string{
		`CREATE ROLE reader LOGIN`,
		`ALTER DATABASE rulesdb SET work_mem = '7MB'`,
		`ALTER DATABASE rulesdb SET search_path = app, public`,
		`ALTER ROLE reader IN DATABASE rulesdb SET statement_timeout = '5s'`,
		`REVOKE TEMPORARY ON DATABASE rulesdb FROM PUBLIC`,
		`GRANT CONNECT ON DATABASE rulesdb TO reader WITH GRANT OPTION`,
		`COMMENT ON DATABASE rulesdb IS 'the rules'`,
		`ALTER DATABASE rulesdb CONNECTION LIMIT 50`,
	} {
		_, err := admin.Exec(t.Context(), sql)
		require.NoError(t, err, sql)
	}
	want, err := fingerprint.ReadDatabaseOf(t.Context(), admin, "rulesdb", true)
	require.NoError(t, err)
	require.Contains(t, want.Settings, "work_mem=7MB")
	require.Contains(t, want.ACL, "reader CONNECT WITH GRANT OPTION")
	require.Len(t, want.RoleSettings, 1)

	r := p.aidb("snapshot", "rulesdb", "--name", "base")
	require.Equal(t, 0, r.code, r.stderr)
	for _, sql := range []string{
		`ALTER DATABASE rulesdb RESET ALL`,
		`ALTER ROLE reader IN DATABASE rulesdb RESET ALL`,
		`REVOKE ALL ON DATABASE rulesdb FROM reader`,
		`GRANT TEMPORARY ON DATABASE rulesdb TO PUBLIC`,
		`COMMENT ON DATABASE rulesdb IS NULL`,
		`ALTER DATABASE rulesdb CONNECTION LIMIT -1`,
	} {
		_, err := admin.Exec(t.Context(), sql)
		require.NoError(t, err, sql)
	}
	before, err := fingerprint.ReadDatabaseOf(t.Context(), admin, "rulesdb", true)
	require.NoError(t, err)
	require.NotEqual(t, want, before)
	r = p.aidb("reset", "rulesdb", "--yes", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	got, err := fingerprint.ReadDatabaseOf(t.Context(), admin, "rulesdb", true)
	require.NoError(t, err)
	assert.Equal(t, want, got, "the reset database has the snapshot's own properties")
	// The replaced database itself is the snapshot --undo goes to: a
	// template nobody connects to, without the settings it had as the
	// database (they are in its metadata).
	var reset struct {
		Resets []snapshot.ResetResult `json:"resets"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &reset), r.stdout)
	require.Len(t, reset.Resets, 1)
	kept := reset.Resets[0].Kept
	assert.Equal(t, snapshot.StrategyRename, kept.Strategy)
	var template, allowConn bool
	var settings int
	require.NoError(t, admin.QueryRow(t.Context(), `SELECT datistemplate, datallowconn,
		(SELECT count(*) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0)
		FROM pg_database d WHERE datname = $1`, kept.DBName).Scan(&template, &allowConn, &settings))
	assert.True(t, template, "the kept snapshot is a template")
	assert.False(t, allowConn, "the kept snapshot takes no connections")
	assert.Zero(t, settings, "the kept snapshot holds no database settings")

	r = p.aidb("clone", "rulesdb", "--name", "c1")
	require.Equal(t, 0, r.code, r.stderr)
	clone, err := fingerprint.ReadDatabaseOf(t.Context(), admin, "rulesdb_clone_c1", true)
	require.NoError(t, err)
	assert.NotEqual(t, want.Comment, clone.Comment, "a clone's comment is its metadata")
	clone.Comment = want.Comment
	assert.Equal(t, want, clone, "the clone has the snapshot's properties")
	r = p.aidb("clone", "rm", "c1")
	require.Equal(t, 0, r.code, r.stderr)

	r = p.aidb("reset", "rulesdb", "--undo", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	got, err = fingerprint.ReadDatabaseOf(t.Context(), admin, "rulesdb", true)
	require.NoError(t, err)
	assert.Equal(t, before, got, "--undo: the properties it had before the reset are back")
}
