package e2e

import (
	"maps"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/postgres/migrations"
)

// everyKind creates one of each kind of object PostgreSQL 15 and 17 can
// create in a database without C code of its own (the list of CREATE
// commands in the documentation's SQL reference: access method, aggregate,
// cast, collation, conversion, domain, event trigger, extension, foreign
// data wrapper, server, user mapping, foreign table, function, procedure,
// index of each access method, materialized view, operator, operator
// class and family, policy, publication, rule, schema, sequence, extended
// statistics, subscription (disabled, without a slot), table (partitioned
// several levels, inheritance, generated and identity columns, unlogged),
// text search configuration and dictionary, trigger and constraint
// trigger, type (enum, composite, range and its multirange), view (with
// check option, recursive), large object, comments), with rows in types a
// row hash must get right.
const everyKind = `
CREATE EXTENSION IF NOT EXISTS citext;
CREATE SCHEMA kinds;
SET search_path = kinds, public;
CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;
CREATE COLLATION kinds.c_coll (locale = 'C');
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE pair AS (a int, b text);
CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE DOMAIN posint AS int CHECK (VALUE > 0) NOT NULL;
CREATE DOMAIN email AS citext CHECK (VALUE ~ '@');
CREATE FUNCTION mood_text(mood) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT $1::text';
CREATE CAST (mood AS int) WITH INOUT AS ASSIGNMENT;
CREATE CONVERSION kinds.my_conv FOR 'UTF8' TO 'LATIN1' FROM utf8_to_iso8859_1;
CREATE FUNCTION add_one(int) RETURNS int LANGUAGE sql IMMUTABLE STRICT AS 'SELECT $1 + 1';
CREATE PROCEDURE bump(n int) LANGUAGE plpgsql AS $$ BEGIN UPDATE counters SET n = n + bump.n; END $$;
CREATE FUNCTION sum_sfunc(int, int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT coalesce($1, 0) + coalesce($2, 0)';
CREATE AGGREGATE my_sum(int) (SFUNC = sum_sfunc, STYPE = int, INITCOND = '0');
CREATE FUNCTION int_eq(int, int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = int_eq, COMMUTATOR = ===);
CREATE FUNCTION int_rev_cmp(int, int) RETURNS int LANGUAGE sql IMMUTABLE STRICT AS 'SELECT btint4cmp($2, $1)';
CREATE OPERATOR FAMILY int_fam USING btree;
CREATE OPERATOR CLASS int_rev_ops FOR TYPE int USING btree FAMILY int_fam AS
	OPERATOR 1 > , OPERATOR 2 >= , OPERATOR 3 = , OPERATOR 4 <= , OPERATOR 5 < , FUNCTION 1 int_rev_cmp(int, int);
CREATE TEXT SEARCH DICTIONARY simple_dict (TEMPLATE = pg_catalog.simple, STOPWORDS = english);
CREATE TEXT SEARCH CONFIGURATION my_ts (COPY = pg_catalog.english);
ALTER TEXT SEARCH CONFIGURATION my_ts ALTER MAPPING FOR asciiword WITH simple_dict;
CREATE FOREIGN DATA WRAPPER dummy_fdw;
CREATE SERVER dummy_srv FOREIGN DATA WRAPPER dummy_fdw OPTIONS (host 'nowhere');
CREATE USER MAPPING FOR CURRENT_USER SERVER dummy_srv OPTIONS (user 'x');
CREATE FOREIGN TABLE far (id int, note text) SERVER dummy_srv OPTIONS (table_name 'far');
CREATE SEQUENCE ticket_seq START 100 INCREMENT 7 CACHE 1;

CREATE TABLE counters (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
CREATE TABLE things (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text COLLATE kinds.c_coll NOT NULL,
	tag email,
	qty posint,
	m mood,
	p pair,
	r floatrange,
	mr floatmultirange,
	price money,
	span interval,
	doc jsonb,
	x xml,
	bits bit varying(16),
	addr inet,
	net cidr,
	mac macaddr,
	u uuid,
	pt point,
	poly polygon,
	tsv tsvector,
	arr pair[],
	created timestamptz NOT NULL,
	name_len int GENERATED ALWAYS AS (length(name)) STORED,
	ticket int DEFAULT nextval('ticket_seq'),
	CONSTRAINT things_name_uq UNIQUE (name),
	CONSTRAINT things_qty_ck CHECK (qty < 1000000)
);
ALTER TABLE things ALTER COLUMN doc SET STORAGE EXTERNAL, ALTER COLUMN name SET STATISTICS 500;
ALTER TABLE things REPLICA IDENTITY FULL;
CREATE UNLOGGED TABLE scratch (k text PRIMARY KEY, v text);
CREATE TABLE other_am (id int) USING heap2;
CREATE TABLE base (id int PRIMARY KEY, kind text NOT NULL);
CREATE TABLE child_a (a_only text) INHERITS (base);
CREATE TABLE child_b (b_only int DEFAULT 3) INHERITS (base);

-- Partitions three levels deep, by range, then list, then hash; a key
-- referenced by a foreign key of the same tree.
CREATE TABLE events (id int, at date, region text, bucket int, body text, parent int,
	PRIMARY KEY (id, at, region, bucket)) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY LIST (region);
CREATE TABLE events_2025_eu PARTITION OF events_2025 FOR VALUES IN ('eu') PARTITION BY HASH (bucket);
CREATE TABLE events_2025_eu_0 PARTITION OF events_2025_eu FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE events_2025_eu_1 PARTITION OF events_2025_eu FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE events_2025_other PARTITION OF events_2025 DEFAULT;
CREATE TABLE events_rest PARTITION OF events DEFAULT;
CREATE INDEX events_body ON events (body);
CREATE TABLE event_refs (id int PRIMARY KEY, e_id int, e_at date, e_region text, e_bucket int,
	FOREIGN KEY (e_id, e_at, e_region, e_bucket) REFERENCES events);

CREATE INDEX things_doc_gin ON things USING gin (doc jsonb_path_ops);
CREATE INDEX things_tsv_gin ON things USING gin (tsv);
CREATE INDEX things_r_gist ON things USING gist (r);
CREATE INDEX things_created_brin ON things USING brin (created);
CREATE INDEX things_u_hash ON things USING hash (u);
CREATE INDEX things_lower_name ON things (lower(name)) INCLUDE (qty) WHERE qty > 1;
CREATE INDEX counters_rev ON counters (n int_rev_ops);
CREATE STATISTICS things_stats (dependencies, ndistinct, mcv) ON qty, m FROM things;

CREATE VIEW happy_things AS SELECT id, name FROM things WHERE m = 'happy' WITH CHECK OPTION;
CREATE RECURSIVE VIEW upto (n) AS SELECT 1 UNION ALL SELECT n + 1 FROM upto WHERE n < 5;
CREATE MATERIALIZED VIEW thing_counts AS SELECT m, count(*) AS c FROM things GROUP BY m;
CREATE UNIQUE INDEX thing_counts_m ON thing_counts (m);
CREATE RULE scratch_no_delete AS ON DELETE TO scratch WHERE old.k = 'keep' DO INSTEAD NOTHING;

CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.n := NEW.n; RETURN NEW; END $$;
CREATE TRIGGER counters_touch BEFORE UPDATE ON counters FOR EACH ROW EXECUTE FUNCTION touch();
CREATE FUNCTION check_qty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER things_qty_later AFTER INSERT OR UPDATE ON things DEFERRABLE INITIALLY DEFERRED
	FOR EACH ROW EXECUTE FUNCTION check_qty();
CREATE FUNCTION on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER kinds_ddl ON ddl_command_end EXECUTE FUNCTION on_ddl();
ALTER EVENT TRIGGER kinds_ddl DISABLE;

ALTER TABLE scratch ENABLE ROW LEVEL SECURITY;
CREATE POLICY scratch_own ON scratch USING (k <> 'secret');
CREATE PUBLICATION kinds_pub FOR TABLE counters, things;
CREATE SUBSCRIPTION kinds_sub CONNECTION 'host=nowhere dbname=none' PUBLICATION kinds_pub
	WITH (connect = false, enabled = false, create_slot = false, slot_name = NONE);

COMMENT ON TABLE things IS 'one of everything';
COMMENT ON COLUMN things.name IS 'unique, C collation';
COMMENT ON FUNCTION add_one(int) IS 'adds one';
COMMENT ON TYPE mood IS 'how it feels';
COMMENT ON SCHEMA kinds IS 'object kinds';

INSERT INTO counters VALUES (1, 10), (2, 20);
INSERT INTO things (name, tag, qty, m, p, r, mr, price, span, doc, x, bits, addr, net, mac, u, pt, poly, tsv, arr, created)
SELECT 'thing ' || g, 'user' || g || '@example.org', g, (ARRAY['sad','ok','happy'])[1 + g % 3]::mood,
	ROW(g, 'p' || g)::pair, floatrange(g, g + 0.5), floatmultirange(floatrange(g, g + 1), floatrange(g + 2, g + 3)),
	(g * 1.25)::numeric::money, make_interval(days => g, secs => g * 1.5),
	jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g), 'f', g / 3.0),
	xmlparse(content '<t n="' || g || '">x &amp; y</t>'), (g % 65536)::bit(16)::varbit,
	('10.0.' || (g % 256) || '.1')::inet, ('10.' || (g % 256) || '.0.0/16')::cidr,
	('08:00:2b:01:02:' || lpad(to_hex(g % 256), 2, '0'))::macaddr,
	md5(g::text)::uuid, point(g, -g), polygon(box(point(0, 0), point(g, g))),
	to_tsvector('english', 'the quick brown fox ' || g), ARRAY[ROW(g, 'a')::pair, ROW(-g, E'b\tc')::pair],
	'2025-03-01 10:00:00+00'::timestamptz + g * interval '1 hour'
FROM generate_series(1, 300) g;
INSERT INTO scratch VALUES ('keep', 'stays'), ('secret', 's'), ('plain', E'line\nbreak \\ back');
INSERT INTO other_am SELECT generate_series(1, 20);
INSERT INTO child_a VALUES (1, 'a', 'x'), (2, 'a', 'y');
INSERT INTO child_b VALUES (3, 'b', 5);
INSERT INTO base VALUES (4, 'base');
INSERT INTO events SELECT g, DATE '2025-01-01' + (g % 400), (ARRAY['eu','us','ap'])[1 + g % 3], g % 5, 'event ' || g, NULL
FROM generate_series(1, 500) g;
INSERT INTO event_refs SELECT id, id, at, region, bucket FROM events WHERE id % 10 = 0;
SELECT lo_from_bytea(0, convert_to('a large object', 'UTF8'));
REFRESH MATERIALIZED VIEW thing_counts;
RESET search_path;
`

// objectKinds counts the database's objects of each kind, from the
// catalogs (the system's own left out): what a restore must bring back
// besides the rows.
func objectKinds(t *testing.T, url string) map[string]int {
	t.Helper()
	conn := connect(t, url)
	q := `SELECT kind, count FROM (
		SELECT 'relkind ' || relkind::text AS kind, count(*) AS count FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') GROUP BY relkind
		UNION ALL SELECT 'proc ' || prokind::text, count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') GROUP BY prokind
		UNION ALL SELECT 'type ' || typtype::text, count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
			WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') GROUP BY typtype
		UNION ALL SELECT 'constraint ' || contype::text, count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
			WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') GROUP BY contype
		UNION ALL SELECT 'trigger', count(*) FROM pg_trigger WHERE NOT tgisinternal
		UNION ALL SELECT 'event trigger', count(*) FROM pg_event_trigger
		UNION ALL SELECT 'publication', count(*) FROM pg_publication
		UNION ALL SELECT 'publication table', count(*) FROM pg_publication_rel
		UNION ALL SELECT 'subscription', count(*) FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		UNION ALL SELECT 'statistics', count(*) FROM pg_statistic_ext
		UNION ALL SELECT 'rule', count(*) FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class WHERE r.rulename <> '_RETURN'
		UNION ALL SELECT 'policy', count(*) FROM pg_policy
		UNION ALL SELECT 'ts config', count(*) FROM pg_ts_config WHERE oid >= 16384
		UNION ALL SELECT 'ts dict', count(*) FROM pg_ts_dict WHERE oid >= 16384
		UNION ALL SELECT 'collation', count(*) FROM pg_collation WHERE oid >= 16384
		UNION ALL SELECT 'conversion', count(*) FROM pg_conversion WHERE oid >= 16384
		UNION ALL SELECT 'cast', count(*) FROM pg_cast WHERE oid >= 16384
		UNION ALL SELECT 'operator', count(*) FROM pg_operator WHERE oid >= 16384
		UNION ALL SELECT 'opclass', count(*) FROM pg_opclass WHERE oid >= 16384
		UNION ALL SELECT 'opfamily', count(*) FROM pg_opfamily WHERE oid >= 16384
		UNION ALL SELECT 'access method', count(*) FROM pg_am WHERE oid >= 16384
		UNION ALL SELECT 'fdw', count(*) FROM pg_foreign_data_wrapper
		UNION ALL SELECT 'server', count(*) FROM pg_foreign_server
		UNION ALL SELECT 'user mapping', count(*) FROM pg_user_mapping
		UNION ALL SELECT 'extension', count(*) FROM pg_extension
		UNION ALL SELECT 'large object', count(*) FROM pg_largeobject_metadata
		UNION ALL SELECT 'comment', count(*) FROM pg_description WHERE objoid >= 16384
		UNION ALL SELECT 'inherits', count(*) FROM pg_inherits
		UNION ALL SELECT 'index ' || a.amname, count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') GROUP BY a.amname
		UNION ALL SELECT 'enabled ' || evtenabled::text, count(*) FROM pg_event_trigger GROUP BY evtenabled
	) k WHERE count > 0`
	rows, err := conn.Query(t.Context(), q)
	require.NoError(t, err)
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		require.NoError(t, rows.Scan(&k, &n))
		out[k] = n
	}
	require.NoError(t, rows.Err())
	var lo string
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT convert_from(lo_get((SELECT min(oid) FROM pg_largeobject_metadata)), 'UTF8')`).Scan(&lo))
	out["large object text: "+lo] = 1
	return out
}

// One of each kind of object, on PostgreSQL 15 (rulesdb) and 17
// (memorydb): a full backup verifies, so do a schema-only and a data-only
// one; a full restore (in parallel and with --jobs 1) over changed rows and
// a data-only restore bring back every row and every object kind.
func TestEveryObjectKindRoundTrips(t *testing.T) {
	t.Parallel()
	p := newProject(t, "kinds")
	p.backupDir()
	r := p.aidb("up")
	require.Equal(t, 0, r.code, r.stderr)
	st := p.status()
	for _, db := range []string{"rulesdb", "memorydb"} {
		t.Run(db, func(t *testing.T) {
			url := st[db].URL
			_, err := connect(t, url).Exec(t.Context(), everyKind)
			require.NoError(t, err)
			rows, kinds := content(t, url), objectKinds(t, url)
			require.Greater(t, len(kinds), 30, "the kinds were made: %v", kinds)

			var files []string
			for _, kind := range []string{"", "--schema-only", "--data-only"} {
				args := []string{db}
				if kind != "" {
					args = append(args, kind)
				}
				files = append(files, p.backupJSON(args...).Files[0].Path)
			}
			code, results, stderr := p.verifyJSON(files...)
			require.Equal(t, 0, code, stderr)
			for _, res := range results {
				assert.True(t, res.OK, "%s: %v %s", res.File, res.Differences, res.Error)
			}

			change := func() {
				t.Helper()
				_, err := connect(t, url).Exec(t.Context(), `UPDATE kinds.counters SET n = -1; DELETE FROM kinds.event_refs;
					DELETE FROM kinds.events WHERE id % 2 = 0; UPDATE kinds.things SET doc = '{}'`)
				require.NoError(t, err)
				require.NotEqual(t, rows, content(t, url))
			}
			for _, jobs := range []string{"0", "1"} {
				change()
				r := p.aidb("restore", "--yes", "--no-backup", "--jobs", jobs, db, files[0])
				require.Equal(t, 0, r.code, "--jobs %s: %s", jobs, r.stderr)
				assert.Equal(t, rows, content(t, url), "--jobs %s: the rows", jobs)
				assert.Equal(t, kinds, objectKinds(t, url), "--jobs %s: every kind of object", jobs)
				assert.Empty(t, restoreLeftovers(t, url), "--jobs %s: the database swapped out is gone, subscription and all", jobs)
			}
			change()
			r := p.aidb("restore", "--yes", "--no-backup", "--data-only", db, files[2])
			require.Equal(t, 0, r.code, r.stderr)
			assert.Equal(t, dataContentOf(rows), dataContent(t, url), "data-only: the rows")
			assert.Equal(t, kinds, objectKinds(t, url), "data-only: the objects untouched")
		})
	}
}

// dataContentOf is content as dataContent reads it: without the migration
// bookkeeping table.
func dataContentOf(c map[string][]string) map[string][]string {
	out := maps.Clone(c)
	delete(out, "public."+migrations.Table)
	return out
}
