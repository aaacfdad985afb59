package e2e

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/orchestrator"
)

// verifyJSON runs aidb verify --json with args.
func (p *project) verifyJSON(args ...string) (int, []verify.Result, string) {
	p.t.Helper()
	r := p.aidb(append([]string{"verify", "--json"}, args...)...)
	var doc struct {
		Results []verify.Result `json:"results"`
	}
	if r.stdout != "" {
		require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	}
	return r.code, doc.Results, r.stderr
}

// throwaways counts the project's verify containers.
func throwaways(t *testing.T, p *project) int {
	t.Helper()
	cs, err := docker.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: make(client.Filters).
		Add("label", orchestrator.LabelProject+"="+p.name).Add("label", orchestrator.LabelRole+"="+orchestrator.RoleVerify)})
	require.NoError(t, err)
	return len(cs.Items)
}

func TestVerifyEveryKindAndCompression(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vfmatrix")
	p.backupDir()
	p.seeded("120")
	st := p.status()
	source := map[string]map[string][]string{"rulesdb": content(t, st["rulesdb"].URL), "memorydb": content(t, st["memorydb"].URL)}

	fulls := map[string]string{}
	for _, kind := range []string{"", "--schema-only", "--data-only"} {
		for _, comp := range []string{"none", "gzip", "zstd"} {
			args := []string{"--compress", comp}
			if kind != "" {
				args = append(args, kind)
			}
			for _, f := range p.backupJSON(args...).Files {
				if kind == "" && comp == "zstd" {
					fulls[f.Database] = f.Path
				}
			}
		}
	}
	junit := filepath.Join(p.dir, "verify.xml")
	code, results, stderr := p.verifyJSON("--all", "--jobs", "3", "--junit", junit)
	require.Equal(t, 0, code, stderr)
	require.Len(t, results, 18, "2 databases x 3 kinds x 3 compressions")
	for _, r := range results {
		assert.True(t, r.OK, "%s: %v %s", r.File, r.Differences, r.Error)
		if r.Kind != "schema" {
			assert.Positive(t, r.Rows, r.File)
		}
	}
	var report struct {
		Suites []struct {
			Tests    int `xml:"tests,attr"`
			Failures int `xml:"failures,attr"`
			Errors   int `xml:"errors,attr"`
		} `xml:"testsuite"`
	}
	b, err := os.ReadFile(junit)
	require.NoError(t, err)
	require.NoError(t, xml.Unmarshal(b, &report))
	require.Len(t, report.Suites, 1)
	assert.Equal(t, 18, report.Suites[0].Tests)
	assert.Zero(t, report.Suites[0].Failures+report.Suites[0].Errors)
	assert.Zero(t, throwaways(t, p), "every throwaway container is removed")

	// An independent reading: the full backups, restored with plain psql
	// into fresh containers, hold exactly the source's rows and sequences.
	for db, f := range fulls {
		conn, ctr := restoreWithPlainPsqlIn(t, p.name, f)
		url := conn.Config().ConnString()
		assert.Equal(t, source[db], content(t, url), "%s restored from %s", db, filepath.Base(f))
		// And the schema, as pg_dump sees it on both sides.
		c, u, d := st[db].Container, map[string]string{"rulesdb": "rules", "memorydb": "memory"}[db], db
		want, err := execIn(t, c, "pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-U", u, "-d", d)
		require.NoError(t, err)
		got, err := execIn(t, ctr, "pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-U", "postgres", "-d", "restored")
		require.NoError(t, err)
		assert.Equal(t, schemaText(want), schemaText(got), "%s: the same schema dump", db)
	}
}

func TestVerifyCatchesTamperedContentWithValidChecksum(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vftamper")
	p.backupDir()
	p.seeded("50", "rulesdb")
	for _, kind := range []string{"", "--data-only"} {
		args := []string{"rulesdb"}
		if kind != "" {
			args = append(args, kind)
		}
		f := p.backupJSON(args...).Files[0].Path
		raw := readAllPlain(t, f)
		// One changed name in the rules data: the row count stays, and
		// nothing else (keys, constraints) notices.
		i := strings.Index(raw, "COPY public.rules ")
		require.Positive(t, i)
		j := i + strings.Index(raw[i:], "\trule-2\t")
		require.Greater(t, j, i)
		edited := raw[:j] + "\trule-X\t" + raw[j+len("\trule-2\t"):]
		tampered := filepath.Join(filepath.Dir(f), strings.Replace(filepath.Base(f), "rulesdb", "rulesdb-tampered", 1))
		writeWithManifest(t, f, tampered, []byte(edited))

		code, results, stderr := p.verifyJSON(tampered)
		assert.Equal(t, 3, code, stderr)
		require.Len(t, results, 1)
		assert.False(t, results[0].OK)
		assert.Contains(t, strings.Join(results[0].Differences, "\n"), "public.rules", "the table is named")
		require.NoError(t, os.Remove(tampered))
		require.NoError(t, os.Remove(tampered+".manifest.json"))
	}

	// A flipped bit: the checksum no longer matches, a difference too.
	f := p.backupJSON("rulesdb").Files[0].Path
	raw, err := os.ReadFile(f)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0x01
	require.NoError(t, os.WriteFile(f, raw, 0o600))
	code, results, stderr := p.verifyJSON(f)
	assert.Equal(t, 3, code, stderr)
	require.Len(t, results, 1)
	assert.Contains(t, strings.Join(results[0].Differences, "\n"), "sha256")
	assert.Zero(t, throwaways(t, p))
}

func TestVerifyFaults(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vffault")
	p.backupDir()
	p.seeded("2000", "memorydb")
	f := p.backupJSON("memorydb").Files[0].Path

	// Two verifies at once: each has its own container and port.
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Go(func() { codes[i], _, _ = p.verifyJSON(f) })
	}
	wg.Wait()
	assert.Equal(t, []int{0, 0}, codes)

	// Ctrl-C: no throwaway container remains.
	cmd := p.command(t.Context(), "verify", f)
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, time.Minute, func() bool { return throwaways(t, p) > 0 })
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	_ = cmd.Wait()
	assert.Equal(t, 130, cmd.ProcessState.ExitCode(), stderr.String())
	waitFor(t, 30*time.Second, func() bool { return throwaways(t, p) == 0 })

	// An image that is neither present nor pullable nor buildable.
	m := readManifest(t, f)
	m.Image = "aidb-missing/postgres"
	b, err := json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f+".manifest.json", b, 0o600))
	code, results, stderr2 := p.verifyJSON(f)
	assert.Equal(t, 1, code, stderr2)
	require.Len(t, results, 1)
	assert.Contains(t, results[0].Error, "aidb-missing/postgres")

	code, _, _ = p.verifyJSON(filepath.Join(p.dir, "nope.sql"))
	assert.Equal(t, 2, code)
}

// hardSchema exercises what breaks naive dump and restore paths.
const hardSchema = `-- +goose Up
CREATE EXTENSION IF NOT EXISTS citext;
CREATE SCHEMA "Sales Data";
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE "Sales Data"."Customer" (
    "Id" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "E-mail" citext UNIQUE,
    name text,
    mood mood,
    photo bytea,
    tags text[],
    doc jsonb,
    price numeric(12, 2),
    price_with_tax numeric GENERATED ALWAYS AS (price * 1.2) STORED
);
CREATE TABLE measurements (at date NOT NULL, value double precision) PARTITION BY RANGE (at);
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE a (id int PRIMARY KEY, b_id int);
CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));
ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b (id);
CREATE TABLE log_lines (line text, at timestamptz);
-- +goose Down
DROP SCHEMA "Sales Data" CASCADE;
`

const hardData = `
INSERT INTO "Sales Data"."Customer" ("E-mail", name, mood, photo, tags, doc, price) VALUES
  ('A@Example.com', NULL, 'happy', '\x00ff10'::bytea, ARRAY['x', NULL, 'y"z'], '{"k": [1, null, "\\n"]}', 10.50),
  ('b@example.com', '', 'sad', NULL, '{}', 'null', NULL),
  ('c@example.com', E'tab\there\nnewline \\ backslash '' quote', NULL, decode(repeat('ab', 100000), 'hex'), NULL, '{}', 0),
  ('d@example.com', repeat('long ', 50000), 'ok', '', ARRAY[]::text[], '[]', -1);
INSERT INTO measurements VALUES ('2024-03-01', 1.5), ('2025-07-04', 'NaN'), ('2025-07-05', '-Infinity');
INSERT INTO a VALUES (1, NULL), (2, NULL);
INSERT INTO b VALUES (10, 1), (20, 2);
UPDATE a SET b_id = 10 WHERE id = 1;
UPDATE a SET b_id = 20 WHERE id = 2;
INSERT INTO log_lines VALUES ('same', '2025-01-01'), ('same', '2025-01-01'), (NULL, NULL);
`

func TestHardSchemaRoundTrip(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vfhard")
	p.backupDir()
	userMigrations(t, p, map[string]string{"00001_hard.sql": hardSchema})
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	require.Equal(t, 0, p.aidb("migrate", "rulesdb").code)
	url := p.status()["rulesdb"].URL
	_, err := connect(t, url).Exec(t.Context(), hardData)
	require.NoError(t, err)
	source := content(t, url)
	sourceData := dataContent(t, url)

	var files []string
	for _, kind := range []string{"", "--schema-only", "--data-only"} {
		args := []string{"rulesdb", "--compress", "zstd"}
		if kind != "" {
			args = append(args, kind)
		}
		files = append(files, p.backupJSON(args...).Files[0].Path)
	}
	code, results, stderr := p.verifyJSON(files...)
	require.Equal(t, 0, code, stderr)
	for _, r := range results {
		assert.True(t, r.OK, "%s: %v %s", r.File, r.Differences, r.Error)
	}

	// Full restore over changed data, then data-only over changed data.
	_, err = connect(t, url).Exec(t.Context(), `DELETE FROM log_lines; UPDATE "Sales Data"."Customer" SET name = 'x'`)
	require.NoError(t, err)
	r := p.aidb("restore", "--yes", "--no-backup", "rulesdb", files[0])
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, source, content(t, url))
	_, err = connect(t, url).Exec(t.Context(), `DELETE FROM measurements; UPDATE a SET b_id = NULL`)
	require.NoError(t, err)
	r = p.aidb("restore", "--yes", "--no-backup", "--data-only", "rulesdb", files[2])
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, sourceData, dataContent(t, url))

	// A format 1 manifest hashed every column (the generated one too) with
	// md5: such backups still verify and restore, and are read so.
	wholeRow := func(table string) string {
		var h string
		require.NoError(t, connect(t, url).QueryRow(t.Context(), `SELECT coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0)::text FROM ONLY `+table+` AS t`).Scan(&h))
		return h
	}
	mpath := files[2] + ".manifest.json"
	raw, err := os.ReadFile(mpath)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	writeManifest := func() {
		b, err := json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(mpath, b, 0o600))
	}
	m["format"] = 1
	// A format 1 manifest predates data-only backups carrying their
	// schema: it has no schema part, and is verified on the migrations.
	delete(m, "schema")
	writeManifest()
	code, _, stderr = p.verifyJSON(files[2])
	assert.Equal(t, 3, code, "format 2 hashes under format 1 differ: %s", stderr)
	for _, tb := range m["tables"].([]any) {
		tb := tb.(map[string]any)
		tb["hash"] = wholeRow(pgx.Identifier{tb["schema"].(string), tb["name"].(string)}.Sanitize())
	}
	writeManifest()
	code, _, stderr = p.verifyJSON(files[2])
	assert.Equal(t, 0, code, stderr)
	r = p.aidb("restore", "--yes", "--no-backup", "--data-only", "rulesdb", files[2])
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, sourceData, dataContent(t, url))
}

// schemaText is a schema dump without what differs between any two dumps:
// comments, blank lines and the random \restrict key.
func schemaText(dump []byte) string {
	var keep []string
	for _, l := range strings.Split(string(dump), "\n") {
		if l == "" || strings.HasPrefix(l, "--") || strings.HasPrefix(l, `\restrict`) || strings.HasPrefix(l, `\unrestrict`) {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// A throwaway serves the next file of the same image and database, put
// back as it started: the roles an earlier file's restore made are gone
// (the next file that needs one creates it again), and nothing of the
// earlier file's database is left to make a later one look equal.
func TestVerifyReusesAThrowawayWithoutLeakingState(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vfwarm")
	p.backupDir()
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	url := p.status()["rulesdb"].URL
	conn := connect(t, url)
	exec := func(sqls ...string) {
		t.Helper()
		for _, sql := range sqls {
			_, err := conn.Exec(t.Context(), sql)
			require.NoError(t, err, sql)
		}
	}
	exec(`CREATE ROLE warm_reader NOLOGIN`, `GRANT SELECT ON rules TO warm_reader`,
		`ALTER DATABASE rulesdb SET work_mem = '3MB'`,
		`INSERT INTO projects (slug, name) VALUES ('warm', 'only in the first backup')`)
	first := p.backupJSON("rulesdb").Files[0].Path
	exec(`REVOKE SELECT ON rules FROM warm_reader`, `DROP ROLE warm_reader`, `ALTER DATABASE rulesdb RESET ALL`,
		`DELETE FROM projects WHERE slug = 'warm'`)
	second := p.backupJSON("rulesdb").Files[0].Path
	exec(`CREATE ROLE warm_reader NOLOGIN`, `GRANT SELECT ON rules TO warm_reader`)
	third := p.backupJSON("rulesdb").Files[0].Path

	code, results, stderr := p.verifyJSON("--jobs", "1", "--", first, second, third)
	require.Equal(t, 0, code, stderr)
	require.Len(t, results, 3)
	for i, r := range results {
		assert.True(t, r.OK, "%s: %v %s", r.File, r.Differences, r.Error)
		assert.Equal(t, i > 0, r.ReusedThrowaway, "file %d: the first starts a throwaway, the others reuse it", i)
	}
	assert.Contains(t, results[0].RolesCreated, "warm_reader")
	assert.NotContains(t, results[1].RolesCreated, "warm_reader", "the second backup refers to no such role")
	assert.Contains(t, results[2].RolesCreated, "warm_reader",
		"the role the first file's restore made was dropped before the third file: it is made again")
	assert.Zero(t, throwaways(t, p), "every throwaway container is removed")

	// The same file twice: its restore into the reused throwaway is
	// checked as the first was, its role made again.
	code, results, stderr = p.verifyJSON("--jobs", "1", "--", first, first)
	require.Equal(t, 0, code, stderr)
	require.Len(t, results, 2)
	assert.True(t, results[1].OK, "%v %s", results[1].Differences, results[1].Error)
	assert.True(t, results[1].ReusedThrowaway)
	assert.Contains(t, results[1].RolesCreated, "warm_reader", "the same file again: its role is made again")
	assert.Zero(t, throwaways(t, p), "every throwaway container is removed")
}
