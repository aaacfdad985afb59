package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// composeWithMemoryImage is the default compose file with memorydb on image.
func composeWithMemoryImage(t *testing.T, image string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "compose", "docker-compose.yaml"))
	require.NoError(t, err)
	const def = "image: pgvector/pgvector:pg17"
	require.Equal(t, 1, strings.Count(string(b), def), "memorydb's default image")
	return strings.Replace(string(b), def, "image: "+image, 1)
}

// embeddings is the digest of every memory's embedding in its text form,
// in id order, and the number of memories.
func embeddings(t *testing.T, conn *pgx.Conn) (string, int64) {
	t.Helper()
	var sum string
	var n int64
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT md5(string_agg(id::text || ' ' || embedding::text, ';' ORDER BY id)), count(*) FROM memories").Scan(&sum, &n))
	return sum, n
}

// The default memorydb keeps pgvector embeddings; a verified backup
// restored into a fresh database brings every vector back exactly and the
// HNSW index valid and used by a nearest-neighbour query.
func TestPgvectorRoundTrip(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vector")
	p.backupDir()
	for _, args := range [][]string{{"up", "memorydb"}, {"migrate", "memorydb"}, {"seed", "memorydb", "--rows", "400"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	conn := connect(t, p.status()["memorydb"].URL)
	var typ string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'memories'::regclass AND attname = 'embedding'").Scan(&typ))
	assert.Equal(t, "vector(384)", typ)
	before, n := embeddings(t, conn)
	assert.Equal(t, int64(400), n)
	// The text form a content hash reads does not depend on the session's
	// float settings: pgvector writes the shortest exact decimal.
	_, err := conn.Exec(t.Context(), "SET extra_float_digits = 0")
	require.NoError(t, err)
	same, _ := embeddings(t, conn)
	assert.Equal(t, before, same, "vector text under extra_float_digits 0 and pg_dump's 3")

	res := p.backupJSON("memorydb")
	require.Len(t, res.Files, 1)
	file := res.Files[0].Path
	r := p.aidb("verify", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "equal")
	m := readManifest(t, file)
	assert.Contains(t, m.Image, "pgvector")
	var exts []string
	for _, x := range m.Extensions {
		exts = append(exts, x.Name)
	}
	assert.Contains(t, exts, "vector")

	r = p.aidb("nuke", "--yes", "--no-backup", "memorydb")
	require.Equal(t, 0, r.code, r.stderr)
	r = p.aidb("up", "memorydb")
	require.Equal(t, 0, r.code, r.stderr)
	r = p.aidb("restore", "--yes", "--no-backup", "memorydb", file)
	require.Equal(t, 0, r.code, r.stderr)

	conn = connect(t, p.status()["memorydb"].URL)
	after, n := embeddings(t, conn)
	assert.Equal(t, int64(400), n)
	assert.Equal(t, before, after, "every vector back exactly")
	var valid bool
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'memories_embedding_hnsw'::regclass").Scan(&valid))
	assert.True(t, valid, "the HNSW index is valid after the restore")
	var probe string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT embedding::text FROM memories WHERE id = 7").Scan(&probe))
	_, err = conn.Exec(t.Context(), "SET enable_seqscan = off")
	require.NoError(t, err)
	rows, err := conn.Query(t.Context(), "EXPLAIN SELECT id FROM memories ORDER BY embedding <=> $1::vector LIMIT 5", probe)
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Contains(t, strings.Join(plan, "\n"), "Index Scan using memories_embedding_hnsw on memories", "the KNN query uses the index")
	var nearest int64
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT id FROM memories ORDER BY embedding <=> $1::vector LIMIT 1", probe).Scan(&nearest))
	assert.Equal(t, int64(7), nearest, "a vector's nearest neighbour is itself")
}

// A memorydb backup (it needs pgvector's extension) restored into a server
// without pgvector is refused before anything changes, naming an image
// that has it: a full and a data-only restore.
func TestRestoreWithoutPgvectorIsRefused(t *testing.T) {
	t.Parallel()
	src := newProject(t, "vecsrc")
	src.backupDir()
	for _, args := range [][]string{{"up", "memorydb"}, {"migrate", "memorydb"}, {"seed", "memorydb", "--rows", "30"}} {
		r := src.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	full := src.backupJSON("memorydb").Files[0].Path
	data := src.backupJSON("memorydb", "--data-only").Files[0].Path

	dst := newProject(t, "vecdst")
	dst.writeCompose(composeWithMemoryImage(t, "postgres:15"))
	dst.backupDir()
	r := dst.aidb("up", "memorydb")
	require.Equal(t, 0, r.code, r.stderr)
	conn := connect(t, dst.status()["memorydb"].URL)
	_, err := conn.Exec(t.Context(), "CREATE TABLE memories (id bigint PRIMARY KEY, note text); INSERT INTO memories VALUES (1, 'kept')")
	require.NoError(t, err)
	databases := func() []string {
		rows, err := conn.Query(t.Context(), "SELECT datname FROM pg_database ORDER BY datname")
		require.NoError(t, err)
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return names
	}
	dbsBefore := databases()

	for _, args := range [][]string{{"restore", "--yes", "memorydb", full}, {"restore", "--yes", "--data-only", "memorydb", data}} {
		r := dst.aidb(args...)
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, "needs the extension vector, which memorydb's server (image postgres:15) does not have")
		assert.Contains(t, r.stderr, "pgvector/pgvector:pg17 has vector")
		assert.Contains(t, r.stderr, "nothing was changed")
		assert.Contains(t, r.stderr, "run memorydb on pgvector/pgvector:pg17")
	}
	var note string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT note FROM memories WHERE id = 1").Scan(&note))
	assert.Equal(t, "kept", note)
	assert.Equal(t, dbsBefore, databases(), "no temporary database made")
	files, err := filepath.Glob(filepath.Join(dst.dir, "backups", "*.sql*"))
	require.NoError(t, err)
	assert.Empty(t, files, "no safety backup taken for a refused restore")
}

// A volume of PostgreSQL 15 data under a compose file switched to a 17
// image: up refuses before touching the container, which runs on with its
// data.
func TestUpRefusesAnImageOfAnotherMajorThanTheData(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vecmajor")
	p.writeCompose(composeWithMemoryImage(t, "postgres:15"))
	r := p.aidb("up", "memorydb")
	require.Equal(t, 0, r.code, r.stderr)
	before := p.status()["memorydb"]
	conn := connect(t, before.URL)
	_, err := conn.Exec(t.Context(), "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'on 15')")
	require.NoError(t, err)
	labelled := p.labelled(t.Context())
	idBefore := containerID(t, before.Container)

	p.writeCompose(composeWithMemoryImage(t, "pgvector/pgvector:pg17"))
	r = p.aidb("up", "memorydb")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "names image pgvector/pgvector:pg17, PostgreSQL 17, but volume "+p.name+"_memorydb-data holds the data of PostgreSQL 15")
	assert.Contains(t, r.stderr, "nothing was changed")
	assert.Contains(t, r.stderr, "aidb upgrade memorydb --image pgvector/pgvector:pg17", "the command that moves the data is named")
	assert.NotContains(t, r.stderr, "ai-db-upgrade", "run directly, the advice names aidb commands, not make targets")

	after := p.status()["memorydb"]
	assert.Equal(t, idBefore, containerID(t, after.Container), "the container was not replaced")
	assert.Equal(t, "running", after.State)
	assert.Equal(t, labelled, p.labelled(t.Context()), "nothing made, nothing left (the volume's reader is gone)")
	var body string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT body FROM notes WHERE id = 1").Scan(&body))
	assert.Equal(t, "on 15", body)
	var version string
	require.NoError(t, conn.QueryRow(t.Context(), "SHOW server_version_num").Scan(&version))
	assert.True(t, strings.HasPrefix(version, "15"), version)
}

// indexState is what a data-only restore must keep of memorydb's indexes:
// each index's definition, comment, CLUSTER ON and REPLICA IDENTITY flags
// and column statistics targets, by name; and each index's OID (a rebuilt
// index has a new one).
func indexState(t *testing.T, conn *pgx.Conn) (map[string]string, map[string]uint32) {
	t.Helper()
	rows, err := conn.Query(t.Context(), `
		SELECT c.relname, c.oid,
		       pg_get_indexdef(i.indexrelid) || ' comment=' || coalesce(obj_description(i.indexrelid, 'pg_class'), '-')
		       || ' clustered=' || i.indisclustered || ' replident=' || i.indisreplident || ' valid=' || i.indisvalid
		       || ' stats=' || coalesce((SELECT string_agg(a.attnum || ':' || a.attstattarget, ',' ORDER BY a.attnum)
		                                FROM pg_attribute a WHERE a.attrelid = i.indexrelid AND coalesce(a.attstattarget::int, -1) >= 0), '-')
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public'`)
	require.NoError(t, err)
	defs, oids := map[string]string{}, map[string]uint32{}
	for rows.Next() {
		var name, def string
		var oid uint32
		require.NoError(t, rows.Scan(&name, &oid, &def))
		defs[name], oids[name] = def, oid
	}
	require.NoError(t, rows.Err())
	return defs, oids
}

// A data-only restore into memorydb drops the tables' own indexes (the
// HNSW index among them) after its TRUNCATE and builds them again before
// its COMMIT, with what each carried (comment, CLUSTER ON, REPLICA
// IDENTITY, statistics targets); the indexes of constraints, and a unique
// index a foreign key depends on, stay and are kept row by row. The schema
// is the same as before, every vector is back, and the rebuilt HNSW index
// serves a nearest-neighbour query.
func TestDataOnlyRestoreRebuildsIndexes(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vecdata")
	p.backupDir()
	for _, args := range [][]string{{"up", "memorydb"}, {"migrate", "memorydb"}, {"seed", "memorydb", "--rows", "300"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	conn := connect(t, p.status()["memorydb"].URL)
	_, err := conn.Exec(t.Context(), `
		COMMENT ON INDEX memories_embedding_hnsw IS 'nearest memories; it''s HNSW';
		CREATE INDEX memories_lower_kind ON memories (lower(kind)) WHERE id > 10;
		ALTER INDEX memories_lower_kind ALTER COLUMN 1 SET STATISTICS 321;
		ALTER TABLE memories CLUSTER ON memories_session;
		CREATE TABLE tags (tag text NOT NULL, memory_id bigint NOT NULL);
		CREATE UNIQUE INDEX tags_tag ON tags (tag);
		CREATE TABLE tag_uses (tag text REFERENCES tags (tag));
		ALTER TABLE tags REPLICA IDENTITY USING INDEX tags_tag;
		CREATE INDEX tags_memory ON tags (memory_id);
		INSERT INTO tags SELECT 'tag' || id, id FROM memories;
		INSERT INTO tag_uses SELECT 'tag' || id FROM memories WHERE id % 3 = 0;`)
	require.NoError(t, err)
	defs, oids := indexState(t, conn)
	before, n := embeddings(t, conn)
	require.Equal(t, int64(300), n)
	full := p.backupJSON("memorydb")
	require.Len(t, full.Files, 1)
	data := p.backupJSON("--data-only", "memorydb")
	require.Len(t, data.Files, 1)

	// Different rows in every table, so the restore has something to do.
	_, err = conn.Exec(t.Context(), "DELETE FROM tag_uses; DELETE FROM tags WHERE memory_id % 2 = 0; DELETE FROM memories WHERE id % 5 = 0")
	require.NoError(t, err)
	_ = conn.Close(t.Context())

	r := p.aidb("restore", "--yes", "--no-backup", "--data-only", "memorydb", data.Files[0].Path)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "memorydb: building indexes and constraints", "the index builds are the phase after the file")

	conn = connect(t, p.status()["memorydb"].URL)
	after, n := embeddings(t, conn)
	assert.Equal(t, int64(300), n)
	assert.Equal(t, before, after, "every vector back exactly")
	gotDefs, gotOIDs := indexState(t, conn)
	assert.Equal(t, defs, gotDefs, "every index as it was: definition, comment, flags, statistics")
	for _, rebuilt := range []string{"memories_embedding_hnsw", "memories_content_trgm", "memories_session", "memories_lower_kind", "tags_memory"} {
		assert.NotEqual(t, oids[rebuilt], gotOIDs[rebuilt], "%s was dropped and built again", rebuilt)
	}
	for _, kept := range []string{"memories_pkey", "tags_tag"} {
		assert.Equal(t, oids[kept], gotOIDs[kept], "%s (a key, or one a foreign key depends on) stayed", kept)
	}
	var probe string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT embedding::text FROM memories WHERE id = 10").Scan(&probe))
	var nearest int64
	tx, err := conn.Begin(t.Context())
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(t.Context()) }()
	_, err = tx.Exec(t.Context(), "SET LOCAL enable_seqscan = off")
	require.NoError(t, err)
	rows, err := tx.Query(t.Context(), "EXPLAIN SELECT id FROM memories ORDER BY embedding <=> $1::vector LIMIT 1", probe)
	require.NoError(t, err)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	assert.Contains(t, strings.Join(plan, "\n"), "Index Scan using memories_embedding_hnsw", "the KNN query uses the rebuilt index")
	require.NoError(t, tx.QueryRow(t.Context(), "SELECT id FROM memories ORDER BY embedding <=> $1::vector LIMIT 1", probe).Scan(&nearest))
	assert.Equal(t, int64(10), nearest, "a vector's nearest neighbour is itself")
	require.NoError(t, tx.Rollback(t.Context()))

	// The schema is the backup's: a schema-only backup now has the full
	// backup's schema hash.
	schema := p.backupJSON("--schema-only", "memorydb")
	require.Len(t, schema.Files, 1)
	assert.Equal(t, readManifest(t, full.Files[0].Path).SchemaHash, readManifest(t, schema.Files[0].Path).SchemaHash)
}

// Where /dev/shm cannot hold a parallel HNSW build (a compose file without
// shm_size: Docker's 64 MB), the builds aidb runs itself fail at their
// start and run again serially: a data-only restore's rebuild and a full
// restore's parallel post-data both succeed, with the index valid. The
// server is made to plan parallel builds even for this small table
// (min_parallel_table_scan_size = 0), and the test first shows that such a
// build does fail there.
func TestIndexBuildsFallBackToSerialWhereShmIsSmall(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vecshm")
	p.backupDir()
	b, err := os.ReadFile(filepath.Join("..", "compose", "docker-compose.yaml"))
	require.NoError(t, err)
	const shm = "    shm_size: 1gb\n"
	require.Equal(t, 2, strings.Count(string(b), shm), "both databases set shm_size")
	i := strings.LastIndex(string(b), shm)
	p.writeCompose(string(b[:i]) + "    command: [\"postgres\", \"-c\", \"min_parallel_table_scan_size=0\"]\n" + string(b[i+len(shm):]))
	for _, args := range [][]string{{"up", "memorydb"}, {"migrate", "memorydb"}, {"seed", "memorydb", "--rows", "300"}} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	out, err := execIn(t, p.name+"-memorydb", "df", "-k", "--output=size", "/dev/shm")
	require.NoError(t, err, string(out))
	fields := strings.Fields(string(out))
	require.Len(t, fields, 2, string(out))
	assert.Equal(t, "65536", fields[1], "Docker's default /dev/shm of 64 MB")

	url := p.status()["memorydb"].URL
	conn := connect(t, url)
	_, err = conn.Exec(t.Context(), "SET maintenance_work_mem = '256MB'; SET max_parallel_maintenance_workers = 2")
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), "CREATE INDEX probe_hnsw ON memories USING hnsw (embedding vector_cosine_ops)")
	require.Error(t, err, "a parallel HNSW build cannot fit in this /dev/shm")
	assert.Contains(t, err.Error(), "53100")
	before, _ := embeddings(t, conn)
	_ = conn.Close(t.Context())

	full := p.backupJSON("memorydb").Files[0].Path
	data := p.backupJSON("--data-only", "memorydb").Files[0].Path
	for _, args := range [][]string{
		{"restore", "--yes", "--no-backup", "--data-only", "memorydb", data},
		{"restore", "--yes", "--no-backup", "memorydb", full},
	} {
		r := p.aidb(args...)
		require.Equal(t, 0, r.code, "aidb %v: %s", args, r.stderr)
		conn := connect(t, url)
		after, n := embeddings(t, conn)
		assert.Equal(t, int64(300), n)
		assert.Equal(t, before, after, "every vector back exactly after %v", args)
		var valid bool
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT indisvalid FROM pg_index WHERE indexrelid = 'memories_embedding_hnsw'::regclass").Scan(&valid))
		assert.True(t, valid, "the HNSW index is valid after %v", args)
		_ = conn.Close(t.Context())
	}
}
