package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// handMade are tables created outside the migrations, as in PostgreSQL's
// regression suite (a_star, b_star, c_star): children created before
// their parent gained a column, so their physical column order (class, a,
// b, z) is one pg_dump cannot recreate (it creates a child with the
// parent's columns first: class, a, z, b). And an aclitem value naming the
// source's superuser, which only a server with a role of that name takes.
const handMade = `
CREATE TABLE a_star (class char, a int4);
CREATE TABLE b_star (b text) INHERITS (a_star);
CREATE TABLE c_star (c name) INHERITS (a_star);
ALTER TABLE a_star ADD COLUMN z int;
INSERT INTO a_star (class, a, z) VALUES ('a', 1, 10), ('a', 2, NULL);
INSERT INTO b_star (class, a, b, z) VALUES ('b', 3, 'mumble', 30), ('b', 4, NULL, 40), ('b', NULL, 'bumble', NULL);
INSERT INTO c_star (class, a, c, z) VALUES ('c', 5, 'hi c', 50), ('c', 6, NULL, NULL);
CREATE TABLE grants_seen (id int PRIMARY KEY, acl aclitem NOT NULL);
INSERT INTO grants_seen VALUES (1, 'rules=UC/rules'), (2, 'rules=r/rules');
`

// contentByName is every user table's rows as the application reads them
// by column name (each row as a jsonb object: keys sorted, so the physical
// column order does not matter), sorted, by table.
func contentByName(t *testing.T, url string) map[string][]string {
	t.Helper()
	conn := connect(t, url)
	rows, err := conn.Query(t.Context(), `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	out := map[string][]string{}
	for _, tb := range tables {
		rows, err := conn.Query(t.Context(), "SELECT to_jsonb(t)::text FROM ONLY "+tb+" AS t")
		require.NoError(t, err)
		vals, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		slices.Sort(vals)
		out[tb] = vals
	}
	return out
}

// columnOrder is a table's columns in their physical order.
func columnOrder(t *testing.T, url, table string) []string {
	t.Helper()
	var cols []string
	require.NoError(t, connect(t, url).QueryRow(t.Context(), `SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, table).Scan(&cols))
	return cols
}

func TestFidelityInheritanceAndACLItems(t *testing.T) {
	t.Parallel()
	p := newProject(t, "fidelity")
	p.backupDir()
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	url := p.status()["rulesdb"].URL
	_, err := connect(t, url).Exec(t.Context(), handMade)
	require.NoError(t, err)
	require.Equal(t, []string{"class", "a", "b", "z"}, columnOrder(t, url, "b_star"), "the child's column order a dump cannot keep")
	source := contentByName(t, url)
	require.Len(t, source["public.b_star"], 3)
	require.Contains(t, source["public.grants_seen"], `{"id": 1, "acl": "rules=UC/rules"}`)

	// The backup proves itself restorable: its throwaway server has the
	// source's superuser, and the children's rows and schema compare equal.
	r := p.aidb("backup", "--json", "--verify", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	var doc struct {
		Results []verify.Result `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	require.Len(t, doc.Results, 1)
	assert.True(t, doc.Results[0].OK, "%v %s", doc.Results[0].Differences, doc.Results[0].Error)
	file := doc.Results[0].File
	var m struct {
		Superuser string `json:"superuser"`
	}
	b, err := os.ReadFile(file + ".manifest.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	assert.Equal(t, "rules", m.Superuser, "the source's superuser is recorded")

	// A full restore over changed rows brings back the same rows, read by
	// column name, though the children come back in another column order.
	_, err = connect(t, url).Exec(t.Context(), `DELETE FROM b_star WHERE a = 3; UPDATE c_star SET c = 'changed'; DELETE FROM grants_seen`)
	require.NoError(t, err)
	require.NotEqual(t, source, contentByName(t, url))
	r = p.aidb("restore", "--yes", "--no-backup", "rulesdb", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, source, contentByName(t, url), "the rows, by column name")
	assert.Equal(t, []string{"class", "a", "z", "b"}, columnOrder(t, url, "b_star"),
		"the restored child's columns are in pg_dump's order: the case this test is about")

	// A real difference still is one: one row of a child changed in the
	// file, its checksum recomputed in the manifest.
	raw := readAllPlain(t, file)
	i := strings.Index(raw, "COPY public.b_star ")
	require.Positive(t, i, "the dump holds b_star's rows")
	j := i + strings.Index(raw[i:], "\tmumble\t")
	require.Greater(t, j, i)
	edited := raw[:j] + "\tmumbles\t" + raw[j+len("\tmumble\t"):]
	tampered := filepath.Join(filepath.Dir(file), strings.Replace(filepath.Base(file), "rulesdb", "rulesdb-tampered", 1))
	writeWithManifest(t, file, tampered, []byte(edited))
	t.Cleanup(func() { _ = os.Remove(tampered); _ = os.Remove(tampered + ".manifest.json") })

	code, results, stderr := p.verifyJSON(tampered)
	assert.Equal(t, 3, code, stderr)
	require.Len(t, results, 1)
	assert.Contains(t, strings.Join(results[0].Differences, "\n"), "public.b_star", "the table is named")
	r = p.aidb("restore", "--yes", "--no-backup", "rulesdb", tampered)
	assert.Equal(t, 3, r.code, r.stderr)
	assert.Contains(t, r.stderr, "public.b_star")
	assert.Equal(t, source, contentByName(t, url), "the database is left as it was")

	// So is a real difference in a child's schema, though its column order
	// is no longer compared: another type for b_star.b, same rows.
	const ddl = "CREATE TABLE public.b_star (\n    b text\n)"
	require.Contains(t, raw, ddl)
	writeWithManifest(t, file, tampered, []byte(strings.Replace(raw, ddl, "CREATE TABLE public.b_star (\n    b character varying(20)\n)", 1)))
	code, results, stderr = p.verifyJSON(tampered)
	assert.Equal(t, 3, code, stderr)
	require.Len(t, results, 1)
	assert.Equal(t, []string{"schema"}, func() []string {
		var what []string
		for _, d := range results[0].Differences {
			what = append(what, strings.SplitN(d, ":", 2)[0])
		}
		return what
	}(), "the schema differs, the rows do not: %v", results[0].Differences)
}

// postDataKinds is a schema whose post-data only restores in the dump's own
// order: a partitioned table two levels deep whose primary key a foreign
// key of the same table refers to (the key is whole only once the
// partitions' indexes are attached), a foreign key from another table to
// it, a NOT VALID check, a commented index, a trigger, a rule, extended
// statistics and a policy.
const postDataKinds = `
CREATE TABLE nodes (id int NOT NULL, parent int, region text NOT NULL, at date NOT NULL) PARTITION BY LIST (region);
CREATE TABLE nodes_eu PARTITION OF nodes FOR VALUES IN ('eu') PARTITION BY RANGE (at);
CREATE TABLE nodes_eu_2025 PARTITION OF nodes_eu FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE nodes_eu_2026 PARTITION OF nodes_eu FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE nodes_us PARTITION OF nodes FOR VALUES IN ('us');
ALTER TABLE nodes ADD PRIMARY KEY (id, region, at);
ALTER TABLE nodes ADD FOREIGN KEY (parent, region, at) REFERENCES nodes (id, region, at);
CREATE INDEX nodes_parent ON nodes (parent);
COMMENT ON INDEX nodes_parent IS 'children of a node';
INSERT INTO nodes VALUES (1, NULL, 'eu', '2025-03-01'), (2, 1, 'eu', '2025-03-01'), (3, NULL, 'us', '2026-01-02'), (4, 3, 'us', '2026-01-02'), (5, NULL, 'eu', '2026-05-05');
CREATE TABLE visits (id int PRIMARY KEY, node int, region text, at date, hits int,
  FOREIGN KEY (node, region, at) REFERENCES nodes (id, region, at));
ALTER TABLE visits ADD CONSTRAINT hits_positive CHECK (hits > 0) NOT VALID;
INSERT INTO visits VALUES (1, 2, 'eu', '2025-03-01', 3), (2, 4, 'us', '2026-01-02', 1);
CREATE STATISTICS visits_stats (dependencies) ON node, region FROM visits;
CREATE FUNCTION visits_touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.hits := coalesce(NEW.hits, 1); RETURN NEW; END$$;
CREATE TRIGGER visits_touch BEFORE INSERT ON visits FOR EACH ROW EXECUTE FUNCTION visits_touch();
CREATE TABLE visits_log (id int);
CREATE RULE visits_logged AS ON DELETE TO visits DO ALSO INSERT INTO visits_log VALUES (OLD.id);
ALTER TABLE visits ENABLE ROW LEVEL SECURITY;
CREATE POLICY visits_all ON visits USING (true);
`

// A correct backup of a partitioned table that refers to its own key
// verifies and restores, in parallel and on one stream: the post-data
// runs in the dump's dependency order, not by a rule of kinds.
func TestFidelityPostDataInTheDumpsOrder(t *testing.T) {
	t.Parallel()
	p := newProject(t, "postdata")
	p.backupDir()
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	url := p.status()["rulesdb"].URL
	_, err := connect(t, url).Exec(t.Context(), postDataKinds)
	require.NoError(t, err)
	source := contentByName(t, url)
	require.Len(t, source["public.nodes_eu_2025"], 2)
	sourceFKs := foreignKeys(t, url)
	require.Greater(t, len(sourceFKs), 2, "the partitions hold copies of the foreign keys")

	r := p.aidb("backup", "--json", "--verify", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	var doc struct {
		Results []verify.Result `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	require.Len(t, doc.Results, 1)
	require.True(t, doc.Results[0].OK, "%v %s", doc.Results[0].Differences, doc.Results[0].Error)
	file := doc.Results[0].File

	for _, jobs := range []string{"4", "1"} {
		_, err = connect(t, url).Exec(t.Context(), `DELETE FROM visits; DELETE FROM nodes WHERE parent IS NOT NULL`)
		require.NoError(t, err)
		require.NotEqual(t, source, contentByName(t, url))
		r = p.aidb("restore", "--yes", "--no-backup", "--jobs", jobs, "rulesdb", file)
		require.Equal(t, 0, r.code, "--jobs %s: %s", jobs, r.stderr)
		assert.Equal(t, source, contentByName(t, url), "--jobs %s: the rows", jobs)
		var fks, comment string
		require.NoError(t, connect(t, url).QueryRow(t.Context(), `SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint
			WHERE contype = 'f' AND conparentid = 0 AND conrelid IN ('nodes'::regclass, 'visits'::regclass)`).Scan(&fks))
		assert.Equal(t, "nodes_parent_region_at_fkey,visits_node_region_at_fkey", fks, "--jobs %s: both foreign keys (their partitions' copies left out)", jobs)
		assert.Equal(t, sourceFKs, foreignKeys(t, url), "--jobs %s: every foreign key and its partitions' copies", jobs)
		require.NoError(t, connect(t, url).QueryRow(t.Context(), `SELECT obj_description('nodes_parent'::regclass, 'pg_class')`).Scan(&comment))
		assert.Equal(t, "children of a node", comment, "--jobs %s: the index's comment", jobs)
		_, err = connect(t, url).Exec(t.Context(), `INSERT INTO nodes VALUES (9, 42, 'us', '2026-01-02')`)
		assert.ErrorContains(t, err, "violates foreign key constraint", "--jobs %s: the self-reference holds", jobs)
	}
}

// foreignKeys describes every foreign key of the database, partitions'
// copies included (table, name, definition), sorted.
func foreignKeys(t *testing.T, url string) []string {
	t.Helper()
	rows, err := connect(t, url).Query(t.Context(), `SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE contype = 'f' ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// verify --amcheck proves what a row compare cannot see: an index that
// does not match its table. An expression index on a function declared
// IMMUTABLE that is not (it adds random()) restores with rows equal to
// the manifest, so plain verify says equal; pg_amcheck --heapallindexed
// recomputes each row's index entry, misses it, and verify exits 3 naming
// the index. Indexes pg_amcheck cannot check (a GIN one here) are named.
func TestVerifyAmcheckFindsAnIndexThatDoesNotMatchItsTable(t *testing.T) {
	t.Parallel()
	p := newProject(t, "amcheck")
	p.backupDir()
	r := p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	url := p.status()["rulesdb"].URL
	_, err := connect(t, url).Exec(t.Context(), `CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL, tags text[]);
		CREATE INDEX notes_body ON notes (body);
		CREATE INDEX notes_tags ON notes USING gin (tags);
		INSERT INTO notes SELECT g, 'note ' || g, ARRAY['t' || (g % 7)] FROM generate_series(1, 500) g`)
	require.NoError(t, err)

	verifyJSON := func(args ...string) (int, verify.Result) {
		t.Helper()
		r := p.aidb(append([]string{"verify", "--json"}, args...)...)
		var doc struct {
			Results []verify.Result `json:"results"`
		}
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), "stdout %q stderr %s", r.stdout, r.stderr)
		require.Len(t, doc.Results, 1)
		return r.code, doc.Results[0]
	}

	good := p.backupJSON("rulesdb").Files[0].Path
	code, res := verifyJSON("--amcheck", good)
	require.Equal(t, 0, code, "%v %s", res.Differences, res.Error)
	require.NotNil(t, res.Amcheck, "--amcheck ran")
	assert.Empty(t, res.Amcheck.Corruption)
	assert.Equal(t, []string{"public.notes_tags (gin)"}, res.Amcheck.NotChecked)

	_, err = connect(t, url).Exec(t.Context(), `CREATE FUNCTION jitter(int) RETURNS float8 IMMUTABLE LANGUAGE sql AS 'SELECT $1 + random()';
		CREATE INDEX notes_jitter ON notes (jitter(id))`)
	require.NoError(t, err)
	bad := p.backupJSON("rulesdb").Files[0].Path
	code, res = verifyJSON(bad)
	require.Equal(t, 0, code, "rows and schema are equal: %v %s", res.Differences, res.Error)
	assert.Nil(t, res.Amcheck, "no --amcheck, no check")

	code, res = verifyJSON("--amcheck", bad)
	assert.Equal(t, 3, code, "an index that does not match its table is a difference")
	assert.False(t, res.OK)
	require.NotNil(t, res.Amcheck)
	require.NotEmpty(t, res.Amcheck.Corruption)
	assert.Contains(t, strings.Join(res.Differences, "\n"), "amcheck: ")
	assert.Contains(t, strings.Join(res.Differences, "\n"), "notes_jitter", "the index is named")

	r = p.aidb("verify", "--amcheck", bad)
	assert.Equal(t, 3, r.code)
	assert.Contains(t, r.stdout+r.stderr, "notes_jitter")
}

// What belongs to the database rather than to its schema (ALTER DATABASE
// … SET, ALTER ROLE … IN DATABASE … SET, its comment, owner, connection
// limit and ACL: a REVOKE CONNECT … FROM PUBLIC) travels with a full
// backup: in the file, before its closing comment, and in the manifest. A
// full restore (parallel and --jobs 1) brings it back over a database
// that had lost it, verify compares it, and a file whose statement for a
// setting was taken out differs (exit 3), the setting named.
func TestDatabasePropertiesTravelWithFullBackups(t *testing.T) {
	t.Parallel()
	p := newProject(t, "dbprops")
	p.backupDir()
	r := p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	url := p.status()["rulesdb"].URL
	conn := connect(t, url)
	_, err := conn.Exec(t.Context(), `CREATE ROLE app_reader NOLOGIN; CREATE ROLE "App Owner" NOLOGIN;
		CREATE SCHEMA app; CREATE TABLE app.t (id int PRIMARY KEY); INSERT INTO app.t SELECT generate_series(1, 10);
		DO $$ DECLARE db text := quote_ident(current_database()); BEGIN
			EXECUTE 'ALTER DATABASE ' || db || ' SET search_path TO app, "$user", public';
			EXECUTE 'ALTER DATABASE ' || db || $q$ SET work_mem TO '8MB'$q$;
			EXECUTE 'ALTER ROLE app_reader IN DATABASE ' || db || $q$ SET statement_timeout TO '5s'$q$;
			EXECUTE 'COMMENT ON DATABASE ' || db || $q$ IS 'the rules, and what''s in them'$q$;
			EXECUTE 'REVOKE CONNECT, TEMPORARY ON DATABASE ' || db || ' FROM PUBLIC';
			EXECUTE 'GRANT CONNECT ON DATABASE ' || db || ' TO app_reader';
			EXECUTE 'ALTER DATABASE ' || db || ' CONNECTION LIMIT 50';
			EXECUTE 'ALTER DATABASE ' || db || ' OWNER TO "App Owner"';
		END $$`)
	require.NoError(t, err)
	source, err := fingerprint.ReadDatabase(t.Context(), conn, true)
	require.NoError(t, err)
	require.Equal(t, "App Owner", source.Owner)
	require.Contains(t, source.ACL, "app_reader CONNECT")
	require.NotContains(t, source.ACL, "PUBLIC CONNECT")
	require.Len(t, source.RoleSettings, 1)

	r = p.aidb("backup", "--json", "--verify", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	var doc struct {
		Results []verify.Result `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	require.Len(t, doc.Results, 1)
	require.True(t, doc.Results[0].OK, "%v %s", doc.Results[0].Differences, doc.Results[0].Error)
	file := doc.Results[0].File
	m := readManifest(t, file)
	require.NotNil(t, m.DatabaseProperties, "the manifest keeps them")
	assert.Equal(t, source, *m.DatabaseProperties)
	raw := readAllPlain(t, file)
	assert.Contains(t, raw, "Type: DATABASE PROPERTIES", "the file holds them")

	for _, jobs := range []string{"4", "1"} {
		_, err := connect(t, url).Exec(t.Context(), `DO $$ DECLARE db text := quote_ident(current_database()); BEGIN
			EXECUTE 'ALTER DATABASE ' || db || ' RESET ALL';
			EXECUTE 'ALTER ROLE app_reader IN DATABASE ' || db || ' RESET ALL';
			EXECUTE 'COMMENT ON DATABASE ' || db || ' IS NULL';
			EXECUTE 'GRANT CONNECT, TEMPORARY ON DATABASE ' || db || ' TO PUBLIC';
			EXECUTE 'ALTER DATABASE ' || db || ' CONNECTION LIMIT -1';
		END $$`)
		require.NoError(t, err)
		r := p.aidb("restore", "--yes", "--no-backup", "--jobs", jobs, "rulesdb", file)
		require.Equal(t, 0, r.code, "--jobs %s: %s", jobs, r.stderr)
		got, err := fingerprint.ReadDatabase(t.Context(), connect(t, url), true)
		require.NoError(t, err)
		assert.Equal(t, source, got, "--jobs %s: the database's own properties came back", jobs)
	}

	// The setting's statement taken out of the file, its manifest kept:
	// the restored database lacks it, and verify says which.
	line := "\tEXECUTE 'ALTER DATABASE ' || db || ' SET work_mem TO ''8MB''';\n"
	require.Contains(t, raw, line)
	edited := filepath.Join(filepath.Dir(file), strings.Replace(filepath.Base(file), "rulesdb", "rulesdb-edited", 1))
	writeWithManifest(t, file, edited, []byte(strings.Replace(raw, line, "", 1)))
	code, results, stderr := p.verifyJSON(edited)
	assert.Equal(t, 3, code, stderr)
	require.Len(t, results, 1)
	assert.Contains(t, strings.Join(results[0].Differences, "\n"), "database: setting work_mem=8MB: the backup has it, the restored database does not")
}

// up compares the collation versions recorded with the data with the
// running image's C library: data written under another glibc (Debian 12
// and 13 images differ) gets a warning naming the version and what to run;
// once reindexed and refreshed, none.
func TestUpWarnsOfCollationDrift(t *testing.T) {
	t.Parallel()
	p := newProject(t, "colldrift")
	r := p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "collation", "a fresh database matches its image")
	url := p.status()["rulesdb"].URL
	// An ICU collation records its version; as if another library had
	// written it, the recorded one is set to another.
	_, err := connect(t, url).Exec(t.Context(), `CREATE COLLATION drift_icu (provider = icu, locale = 'en-US');
		CREATE TABLE names (n text COLLATE drift_icu PRIMARY KEY);
		UPDATE pg_collation SET collversion = '0.1' WHERE collname = 'drift_icu'`)
	require.NoError(t, err)

	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: warning: the collation versions of its data do not match this image's C library")
	assert.Contains(t, r.stderr, "public.drift_icu was recorded at version 0.1")
	assert.Contains(t, r.stderr, "REINDEX DATABASE")
	assert.Contains(t, r.stderr, "REFRESH VERSION")

	conn := connect(t, url)
	var db string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT quote_ident(current_database())").Scan(&db))
	for _, stmt := range []string{"REINDEX DATABASE " + db, "ALTER COLLATION drift_icu REFRESH VERSION"} {
		_, err = conn.Exec(t.Context(), stmt)
		require.NoError(t, err, stmt)
	}
	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "collation", "reindexed and refreshed: no warning")
}
