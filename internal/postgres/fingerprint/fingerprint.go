// Package fingerprint describes what a PostgreSQL database holds, in a form
// that survives a dump and a restore unchanged: the schema as one hash, and
// per table its columns, row count and an order-independent content hash.
//
// A backup records the fingerprint taken in the dump's own snapshot; a
// restore or verification takes it again and compares. It works on any
// schema: nothing here knows aidb's default tables.
package fingerprint

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/aidb/aidb/internal/postgres/dumpformat"
)

// Querier is what a fingerprint needs of a connection or transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Table is one table's part of a fingerprint.
type Table struct {
	Schema  string   `json:"schema"`
	Name    string   `json:"name"`
	Columns []string `json:"columns"`
	// Types are the columns' types, one per column in Columns' order, as
	// format_type writes them under the value settings' search path
	// (pg_catalog: every other schema's type is qualified, public.mood).
	// A data-only restore compares them with the target's. Absent in
	// manifests written before they were recorded.
	Types []string `json:"types,omitempty"`
	// Rows and Hash are the row count and the content hash; absent when the
	// data was not read (schema-only).
	Rows *int64 `json:"rows,omitempty"`
	Hash string `json:"hash,omitempty"`
}

// QualifiedName is schema.name, each part quoted where needed.
func (t Table) QualifiedName() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

// Key is schema.name unquoted, for messages and maps.
func (t Table) Key() string { return t.Schema + "." + t.Name }

// Extension is an installed extension.
type Extension struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Sequence is a sequence's current value as setval would restore it.
type Sequence struct {
	Name   string `json:"name"`
	Value  int64  `json:"value"`
	Called bool   `json:"called"`
}

// Fingerprint is what a database holds.
type Fingerprint struct {
	ServerVersion string `json:"server_version"`
	// Superuser is the name of the server's bootstrap superuser (the
	// official image's POSTGRES_USER): ACLs and aclitem values name it, so
	// a server the database is restored into needs a role of that name.
	Superuser        string      `json:"superuser,omitempty"`
	Extensions       []Extension `json:"extensions"`
	SchemaHash       string      `json:"schema_hash"`
	Tables           []Table     `json:"tables"`
	Sequences        []Sequence  `json:"sequences"`
	MigrationVersion int64       `json:"migration_version"`
	// Privileges are the lines of the schema's description that say who
	// owns what and who may do what (PrivilegeQueries), sorted: the schema
	// hash covers them, and a manifest keeps them so that a lost grant is
	// named. Empty unless Options.Privileges asks for them.
	Privileges []string `json:"privileges,omitempty"`
	// Database is what belongs to the database rather than to its schema
	// (ReadDatabase), when Options.Database asks for it.
	Database *Database `json:"database,omitempty"`
}

// Options says what to read.
type Options struct {
	// Data reads each table's row count and content hash; without it only
	// the schema is described.
	Data bool
	// Exclude lists tables (schema.name, unquoted) left out of Tables, as
	// the migration bookkeeping table is from data-only backups.
	Exclude []string
	// WholeRow hashes every column, generated ones included, as format 1
	// manifests did.
	WholeRow bool
	// MigrationTable is the migration bookkeeping table's name; its highest
	// version_id becomes MigrationVersion (0 when absent).
	MigrationTable string
	// DataOf lists tables (schema.name, unquoted) whose rows are read even
	// without Data: the bookkeeping table, whose rows a schema backup holds.
	DataOf []string
	// Columns gives, per table (schema.name, unquoted), the columns to hash
	// by name and in that order: a backup's, as its manifest records them.
	// A restore cannot always keep a table's physical column order (an
	// inheritance child whose parent gained a column comes back with its
	// columns in another order), so what is compared is what the
	// application sees by name. A table not named hashes its own columns
	// in their physical order, as a backup does.
	Columns map[string][]string
	// ChildColumnOrder makes the schema hash depend on the column order of
	// inheritance children too, as it did before manifest format 3. A dump
	// cannot keep that order, so it is left out since.
	ChildColumnOrder bool
	// Privileges says what the schema hash says of owners and privileges
	// (none before manifest format 4).
	Privileges PrivilegeForm
	// NoMaintain leaves the MAINTAIN privilege out of the ACLs the schema
	// hash describes (SchemaForm.NoMaintain): for a backup of a server
	// before PostgreSQL 17 restored on 17 or later.
	NoMaintain bool
	// Scanners are more sessions to the same database (each Prepared):
	// the tables' data scans are spread over them and q, the largest
	// first. They read no common snapshot, so use them only on a database
	// no one writes to (a restore's temporary database, a throwaway).
	Scanners []Querier
	// Database reads the database's own properties too (ReadDatabase,
	// with owners).
	Database bool
}

// Prepare sets the session settings a fingerprint depends on
// (dumpformat.ValueSettings: they make every value's text form independent of
// the server's and the client's configuration, so hashes compare across
// servers, and with a dump's stream). Call it once on the connection (or
// in the transaction) before Take.
func Prepare(ctx context.Context, q Querier) error {
	for _, s := range dumpformat.SetStatements(dumpformat.ValueSettings()) {
		if _, err := q.Exec(ctx, s); err != nil {
			return fmt.Errorf("fingerprint: %s: %w", s, err)
		}
	}
	return nil
}

// Take describes the database q reads. In a REPEATABLE READ transaction it
// describes exactly that transaction's snapshot. The data scan reads every
// row of every table once.
func Take(ctx context.Context, q Querier, opts Options) (Fingerprint, error) {
	var fp Fingerprint
	// OID 10 is the bootstrap superuser, whatever its name.
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version'), (SELECT rolname::text FROM pg_catalog.pg_roles WHERE oid = 10)").Scan(&fp.ServerVersion, &fp.Superuser); err != nil {
		return fp, fmt.Errorf("fingerprint: server version: %w", err)
	}
	var err error
	if fp.Extensions, err = extensions(ctx, q); err != nil {
		return fp, err
	}
	form := SchemaForm{ChildColumnOrder: opts.ChildColumnOrder, Privileges: opts.Privileges, NoMaintain: opts.NoMaintain}
	var dataColumns [][]string
	if fp.Tables, dataColumns, err = tables(ctx, q, opts.Exclude); err != nil {
		return fp, err
	}
	var todo []int
	for i := range fp.Tables {
		if opts.Data || slices.Contains(opts.DataOf, fp.Tables[i].Key()) {
			todo = append(todo, i)
		}
	}
	scanOne := func(ctx context.Context, q Querier, i int) error {
		cols := ColumnList(dataColumns[i])
		if names := opts.Columns[fp.Tables[i].Key()]; len(names) > 0 && !opts.WholeRow {
			if err := q.QueryRow(ctx, OrderedColumnsSQL, names, fp.Tables[i].QualifiedName()).Scan(&cols); err != nil {
				return fmt.Errorf("fingerprint: columns of %s: %w", fp.Tables[i].Key(), err)
			}
		}
		return scan(ctx, q, &fp.Tables[i], cols, opts.WholeRow)
	}
	schema := func(ctx context.Context) error {
		var err error
		fp.SchemaHash, fp.Privileges, err = schemaHash(ctx, q, form)
		return err
	}
	if len(opts.Scanners) == 0 {
		if err := schema(ctx); err != nil {
			return fp, err
		}
		for _, i := range todo {
			if err := scanOne(ctx, q, i); err != nil {
				return fp, err
			}
		}
	} else if err := scanAll(ctx, q, schema, opts.Scanners, fp.Tables, todo, scanOne); err != nil {
		return fp, err
	}
	if fp.Sequences, err = Sequences(ctx, q); err != nil {
		return fp, err
	}
	if opts.MigrationTable != "" {
		if fp.MigrationVersion, err = migrationVersion(ctx, q, opts.MigrationTable); err != nil {
			return fp, err
		}
	}
	if opts.Database {
		d, err := ReadDatabase(ctx, q, true)
		if err != nil {
			return fp, err
		}
		fp.Database = &d
	}
	return fp, nil
}

// scanAll scans the tables todo (indexes into tables) on the scanners at
// once, the largest (by the server's estimate) first, while q reads the
// schema (first, a run of small catalog queries that leaves the cores
// idle between them) and then joins the scanners; the first failure stops
// the others.
func scanAll(ctx context.Context, q Querier, first func(context.Context) error, scanners []Querier, tables []Table, todo []int, scanOne func(context.Context, Querier, int) error) error {
	sizes := map[int]int64{}
	for _, i := range todo {
		var n int64
		if err := q.QueryRow(ctx, "SELECT pg_catalog.pg_total_relation_size($1::regclass)", tables[i].QualifiedName()).Scan(&n); err != nil {
			return fmt.Errorf("fingerprint: size of %s: %w", tables[i].Key(), err)
		}
		sizes[i] = n
	}
	order := slices.Clone(todo)
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(sizes[b], sizes[a]) })
	next := make(chan int, len(order))
	for _, i := range order {
		next <- i
	}
	close(next)
	g, gctx := errgroup.WithContext(ctx)
	for k, s := range append([]Querier{q}, scanners...) {
		g.Go(func() error {
			if k == 0 {
				if err := first(gctx); err != nil {
					return err
				}
			}
			for i := range next {
				if err := scanOne(gctx, s, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func extensions(ctx context.Context, q Querier) ([]Extension, error) {
	rows, err := q.Query(ctx, "SELECT extname, extversion FROM pg_catalog.pg_extension ORDER BY extname")
	if err != nil {
		return nil, fmt.Errorf("fingerprint: extensions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Extension, error) {
		var e Extension
		err := r.Scan(&e.Name, &e.Version)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("fingerprint: extensions: %w", err)
	}
	return out, nil
}

// UserRelations is the SQL condition, over pg_class c and pg_namespace n,
// that selects the relations of user schemas that no extension owns.
const UserRelations = `
	n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
	AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`

// tables lists the user tables with their columns and the columns' types,
// and for each the columns a dump holds data of: all but the generated
// ones, whose values a restore computes again.
func tables(ctx context.Context, q Querier, exclude []string) ([]Table, [][]string, error) {
	rows, err := q.Query(ctx, `
		SELECT n.nspname, c.relname,
		       coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}'),
		       coalesce(array_agg(`+ColumnType+` ORDER BY a.attnum) FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}'),
		       coalesce(array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '{}')
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
		WHERE c.relkind = 'r' AND `+UserRelations+`
		GROUP BY n.nspname, c.relname
		ORDER BY n.nspname, c.relname`)
	if err != nil {
		return nil, nil, fmt.Errorf("fingerprint: tables: %w", err)
	}
	var out []Table
	var dataColumns [][]string
	var t Table
	var data []string
	_, err = pgx.ForEachRow(rows, []any{&t.Schema, &t.Name, &t.Columns, &t.Types, &data}, func() error {
		if !slices.Contains(exclude, t.Key()) {
			out = append(out, t)
			dataColumns = append(dataColumns, data)
		}
		t, data = Table{}, nil
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("fingerprint: tables: %w", err)
	}
	return out, dataColumns, nil
}

// ColumnType is the SQL expression, over pg_attribute a, that writes a
// column's type as Table.Types records it. Under the value settings
// (Prepare; search_path pg_catalog) a type outside pg_catalog is written
// with its schema, so the text does not depend on a session's path.
const ColumnType = `pg_catalog.format_type(a.atttypid, a.atttypmod)`

// OrderedColumnsSQL lists, as one text "t.a, t.b", the columns named in
// $1 (text[]) in that order that table $2 (a qualified name, text) has
// and a dump holds data of: generated ones and names the table lacks are
// left out. Restores and verification hash a backup's columns with it, by
// name in the manifest's order; a data-only restore runs it in its
// transaction (EXECUTE ... USING), a fingerprint over a connection.
const OrderedColumnsSQL = `SELECT coalesce(string_agg(format('t.%I', c.name), ', ' ORDER BY c.ord), '')
	FROM unnest($1::text[]) WITH ORDINALITY AS c(name, ord)
	JOIN pg_catalog.pg_attribute a ON a.attrelid = $2::text::regclass AND a.attname = c.name
	WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''`

// ColumnList is columns as OrderedColumnsSQL writes them: "t.a, t.b".
func ColumnList(columns []string) string {
	cols := make([]string, len(columns))
	for i, c := range columns {
		cols[i] = "t." + pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(cols, ", ")
}

// scan counts the table's rows and hashes its content (ContentHashSQL)
// over cols (ColumnList: the columns a dump holds, generated ones are
// computed again on restore). A sum does not depend on row order, so the
// physical order a restore produces does not matter; the hash of the text
// form is the same on every server version. RowHasher computes the same
// from a dump's stream.
func scan(ctx context.Context, q Querier, t *Table, cols string, wholeRow bool) error {
	hash := WholeRowHashSQL
	if !wholeRow {
		hash = fmt.Sprintf(ContentHashSQL, cols)
	}
	var n int64
	var sum string
	err := q.QueryRow(ctx, "SELECT count(*), "+hash+" FROM ONLY "+t.QualifiedName()+" AS t").Scan(&n, &sum)
	if err != nil {
		return fmt.Errorf("fingerprint: read table %s: %w", t.Key(), err)
	}
	t.Rows, t.Hash = &n, sum
	return nil
}

// ContentHashSQL is the content hash aggregate over rows of alias t, with
// %s the columns (t.a, t.b) a dump holds: the sum of the first 64 bits of
// sha256 of each row's record text, as signed numbers (manifest format 2).
const ContentHashSQL = `coalesce(sum(('x' || encode(substring(sha256(convert_to(ROW(%s)::text, current_setting('server_encoding'))) FROM 1 FOR 8), 'hex'))::bit(64)::bigint::numeric), 0)::text`

// WholeRowHashSQL is manifest format 1's content hash: md5 over every
// column, generated ones included.
const WholeRowHashSQL = `coalesce(sum(('x' || left(md5(t::text), 16))::bit(64)::bigint::numeric), 0)::text`

// Sequences reads every user sequence's state.
func Sequences(ctx context.Context, q Querier) ([]Sequence, error) {
	rows, err := q.Query(ctx, `
		SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'S' AND `+UserRelations+`
		ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("fingerprint: sequences: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("fingerprint: sequences: %w", err)
	}
	out := make([]Sequence, 0, len(names))
	for _, name := range names {
		s := Sequence{Name: name}
		// name is quoted by quote_ident above.
		if err := q.QueryRow(ctx, "SELECT last_value, is_called FROM "+name).Scan(&s.Value, &s.Called); err != nil {
			return nil, fmt.Errorf("fingerprint: sequence %s: %w", name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

func migrationVersion(ctx context.Context, q Querier, table string) (int64, error) {
	var reg *string
	if err := q.QueryRow(ctx, "SELECT to_regclass($1)::text", table).Scan(&reg); err != nil {
		return 0, fmt.Errorf("fingerprint: migration table: %w", err)
	}
	if reg == nil {
		return 0, nil
	}
	var v int64
	if err := q.QueryRow(ctx, "SELECT coalesce(max(version_id), 0) FROM "+*reg).Scan(&v); err != nil {
		return 0, fmt.Errorf("fingerprint: migration version: %w", err)
	}
	return v, nil
}

// columnPosition stands for a column's position in its schema line:
// replaced by childPosition or attnumPosition (schemaQueries).
const columnPosition = "/*position*/"

// childPosition is a column's position since manifest format 3: its attnum,
// except in an inheritance child (or partition), whose column order a dump
// cannot keep (pg_dump creates a child with the parent's columns first,
// so a column the parent gained after the child was created moves). The
// child's columns are still described by name, type, NOT NULL, identity,
// generation and default, and its parents by "inherits" lines.
const childPosition = `CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid) THEN 'inherited' ELSE a.attnum::text END`

// attnumPosition is a column's position before manifest format 3.
const attnumPosition = `a.attnum::text`

// inheritsQuery describes each inheritance link (format 3 on): child,
// parent and the parent's place in the child's INHERITS list.
const inheritsQuery = `SELECT 'inherits ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ' || quote_ident(pn.nspname) || '.' || quote_ident(pc.relname) || ' ' || i.inhseqno
	 FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
	 WHERE c.relkind IN ('r', 'p', 'f') AND ` + UserRelations

// SchemaQueries are the queries SchemaLines runs: schemaQueries with the
// column position of manifest format 3 on (childColumnOrder false), or of
// the formats before (true), which also had no "inherits" lines.
func SchemaQueries(childColumnOrder bool) []string {
	pos, extra := childPosition, []string{inheritsQuery}
	if childColumnOrder {
		pos, extra = attnumPosition, nil
	}
	out := make([]string, 0, len(schemaQueries)+len(extra))
	for _, q := range schemaQueries {
		out = append(out, strings.ReplaceAll(q, columnPosition, pos))
	}
	return append(out, extra...)
}

// schemaQueries each return one text column describing part of the schema:
// relations, columns, constraints, indexes, views, types, functions,
// triggers and sequences of user schemas, leaving out what extensions own.
// Names and definitions only: no OIDs, nothing a restore renumbers.
var schemaQueries = []string{
	// relations and their columns
	`SELECT 'relation ' || c.relkind::text || ' ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname)
	 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ` + UserRelations,
	`SELECT 'column ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ' || ` + columnPosition + ` || ' ' || quote_ident(a.attname)
	        || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
	        || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
	        || coalesce(' default ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '')
	 FROM pg_catalog.pg_attribute a
	 JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
	 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + UserRelations,
	`SELECT 'constraint ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ' || quote_ident(k.conname) || ' ' || pg_catalog.pg_get_constraintdef(k.oid)
	 FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_class c ON c.oid = k.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE ` + UserRelations,
	`SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
	 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE ` + UserRelations,
	`SELECT 'view ' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' ' || pg_catalog.pg_get_viewdef(c.oid)
	 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.relkind IN ('v', 'm') AND ` + UserRelations,
	`SELECT 'type ' || quote_ident(n.nspname) || '.' || quote_ident(t.typname) || ' ' || t.typtype::text
	        || coalesce(' ' || (SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '')
	        || CASE WHEN t.typtype = 'd' THEN ' ' || pg_catalog.format_type(t.typbasetype, t.typtypmod) ELSE '' END
	 FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
	 WHERE t.typtype IN ('e', 'd', 'r') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
	   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')`,
	`SELECT 'function ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ') ' || md5(pg_catalog.pg_get_functiondef(p.oid))
	 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	 WHERE p.prokind IN ('f', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
	   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`,
	`SELECT 'trigger ' || pg_catalog.pg_get_triggerdef(g.oid)
	 FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid = g.tgrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
	 WHERE NOT g.tgisinternal AND ` + UserRelations,
	`SELECT 'sequence ' || quote_ident(schemaname) || '.' || quote_ident(sequencename) || ' ' || data_type::text || ' ' || start_value || ' '
	        || min_value || ' ' || max_value || ' ' || increment_by || ' ' || cycle
	 FROM pg_catalog.pg_sequences WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`,
	`SELECT 'extension ' || extname FROM pg_catalog.pg_extension`,
}

// SchemaHash is a sha256 over the sorted description of the schema
// (SchemaLines) in form.
func SchemaHash(ctx context.Context, q Querier, form SchemaForm) (string, error) {
	h, _, err := schemaHash(ctx, q, form)
	return h, err
}

// schemaHash is SchemaHash, and the privilege lines of the description.
func schemaHash(ctx context.Context, q Querier, form SchemaForm) (string, []string, error) {
	structure, err := collect(ctx, q, SchemaQueries(form.ChildColumnOrder))
	if err != nil {
		return "", nil, err
	}
	privs, err := collect(ctx, q, withPrivilegeFilter(PrivilegeQueries(form.Privileges), form))
	if err != nil {
		return "", nil, err
	}
	h := sha256.New()
	for _, l := range sortLines(append(structure, privs...)) {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil)), sortLines(privs), nil
}

// SchemaLines is the sorted description SchemaHash hashes; comparing two
// of them shows what differs. form describes the schema as the manifests
// of a format did (SchemaQueries, PrivilegeQueries).
func SchemaLines(ctx context.Context, q Querier, form SchemaForm) ([]string, error) {
	lines, err := collect(ctx, q, append(SchemaQueries(form.ChildColumnOrder), withPrivilegeFilter(PrivilegeQueries(form.Privileges), form)...))
	if err != nil {
		return nil, err
	}
	return sortLines(lines), nil
}

// collect runs queries of one text column each and returns their lines.
func collect(ctx context.Context, q Querier, queries []string) ([]string, error) {
	lines := []string{}
	for _, sq := range queries {
		rows, err := q.Query(ctx, sq)
		if err != nil {
			return nil, fmt.Errorf("fingerprint: schema: %w", err)
		}
		part, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("fingerprint: schema: %w", err)
		}
		lines = append(lines, part...)
	}
	return lines, nil
}

// sortLines sorts lines, then makes each line's runs of white space one
// space (in this order, as the schema hash always did).
func sortLines(lines []string) []string {
	slices.Sort(lines)
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return lines
}
