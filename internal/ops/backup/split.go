package backup

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/internal/postgres/dumpformat"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/pgtools"
)

// DefaultSplitOver is the table size from which a backup reads a table's
// rows in parts, at the same time (see splitTable).
const DefaultSplitOver = 32 << 20

// A splitTable is a table whose rows a backup reads in parts, by ranges of
// pages, each part by a connection of its own in the dump's snapshot, so
// that one large table's COPY (the server's text conversion of every
// value: most of a dump's time) takes every core. pg_dump writes the rest
// of the file, leaving out this table's data, and the parts are put where
// pg_dump puts table data, in page order, as one COPY block: the file is
// one pg_dump would write, and restores with plain psql.
type splitTable struct {
	Schema, Name string
	// Qualified is the quoted name; Columns the quoted columns a dump
	// holds (all but generated ones), as pg_dump lists them.
	Qualified, Columns string
	// Owner is the table's owner as pg_dump's comment names it; "" in a
	// dump without owners (--no-owner).
	Owner string
	// Pages is the table's size in pages when the snapshot's transaction
	// locked it. The last part has no upper bound, so the parts hold every
	// row the snapshot sees whatever the size.
	Pages int64
	Parts int
}

// largeTables lists the tables the dump holds data of that are at least
// minBytes large by the server's estimate. With fkFree (data-only dumps,
// which psql loads into a schema with its foreign keys in place, in the
// order pg_dump gives) tables in a foreign key, as either side, or whose
// ancestors are, are left whole: their rows must stay where pg_dump puts
// them, while the parts go last. The estimate is pg_class.relpages, kept by
// VACUUM and ANALYZE: reading it takes no lock, so a table another session
// holds locked does not stop the backup here, only pg_dump, as before.
// Largest first. Each is then locked in the snapshot's transaction (ACCESS
// SHARE, as pg_dump does) and its real size read. A server before 14 (no
// TID range scans, so a part would read the whole table) gets none.
func largeTables(ctx context.Context, q fingerprint.Querier, minBytes int64, exclude []string, parts int, fkFree bool) ([]splitTable, error) {
	var version int
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return nil, fmt.Errorf("read the server version: %w", err)
	}
	if version < 140000 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `
		SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname),
		       coalesce((SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
		                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), ''),
		       pg_catalog.pg_get_userbyid(c.relowner)::text
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_catalog.pg_class toast ON toast.oid = c.reltoastrelid
		WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND `+fingerprint.UserRelations+`
		  AND (c.relpages::bigint + coalesce(toast.relpages, 0)) * current_setting('block_size')::bigint >= $1
		  AND NOT ($2 AND EXISTS (
		        SELECT 1 FROM pg_catalog.pg_constraint f
		        WHERE f.contype = 'f' AND (f.conrelid = c.oid OR f.confrelid = c.oid
		          OR f.conrelid IN (SELECT relid FROM pg_catalog.pg_partition_ancestors(c.oid))
		          OR f.confrelid IN (SELECT relid FROM pg_catalog.pg_partition_ancestors(c.oid)))))
		ORDER BY c.relpages::bigint + coalesce(toast.relpages, 0) DESC, n.nspname, c.relname`, minBytes, fkFree)
	if err != nil {
		return nil, fmt.Errorf("list the large tables: %w", err)
	}
	var out []splitTable
	var t splitTable
	if _, err := pgx.ForEachRow(rows, []any{&t.Schema, &t.Name, &t.Qualified, &t.Columns, &t.Owner}, func() error {
		if t.Columns != "" && !slices.Contains(exclude, t.Schema+"."+t.Name) {
			out = append(out, t)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list the large tables: %w", err)
	}
	var kept []splitTable
	for _, t := range out {
		if _, err := q.Exec(ctx, "LOCK TABLE ONLY "+t.Qualified+" IN ACCESS SHARE MODE"); err != nil {
			return nil, fmt.Errorf("lock table %s.%s: %w", t.Schema, t.Name, err)
		}
		if err := q.QueryRow(ctx, "SELECT pg_catalog.pg_relation_size($1::regclass) / current_setting('block_size')::bigint", t.Qualified).Scan(&t.Pages); err != nil {
			return nil, fmt.Errorf("read the size of table %s.%s: %w", t.Schema, t.Name, err)
		}
		if t.Parts = int(min(int64(parts), t.Pages)); t.Parts >= 2 {
			kept = append(kept, t)
		}
	}
	return kept, nil
}

// splitLanes is how many parts of a database's tables are read at the
// same time when dbs databases are backed up at once: the cores shared
// among them, two at least (measured here on 2 cores, two databases each
// reading its large table in two parts finish sooner than with one part
// each: the larger dump, alone at the end, would leave a core idle), four
// at most. One core splits nothing.
func splitLanes(dbs int) int {
	cores := runtime.NumCPU()
	if cores < 2 {
		return 1
	}
	return min(4, max(2, cores/max(1, dbs)))
}

// header is what pg_dump writes before a table's rows.
func (t splitTable) header() []byte {
	return dumpformat.DataHeader(t.Schema, t.Name, t.Owner, t.Qualified, t.Columns)
}

// partQuery is the COPY of part k (from 0) of the table's n parts.
func (t splitTable) partQuery(k int) string {
	lo := t.Pages * int64(k) / int64(t.Parts)
	where := fmt.Sprintf("ctid >= '(%d,0)'::tid", lo)
	if k < t.Parts-1 {
		where += fmt.Sprintf(" AND ctid < '(%d,0)'::tid", t.Pages*int64(k+1)/int64(t.Parts))
	}
	return fmt.Sprintf("COPY (SELECT %s FROM ONLY %s WHERE %s) TO STDOUT", t.Columns, t.Qualified, where)
}

// excludePattern is pg_dump's pattern for exactly this table: inside
// double quotes nothing is a wildcard.
func (t splitTable) excludePattern() string {
	q := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
	return q(t.Schema) + "." + q(t.Name)
}

// helperDump writes a backup to w through a started helper container
// (pgtools.Runner.StartStreams): pg_dump with args, and with tables read in
// parts. Then pg_dump (with the tables' data left out) writes everything
// up to its closing comment, the parts follow table by table, then that
// comment; a full backup's indexes, constraints and triggers come after,
// from a second pg_dump of the post-data section (in the same snapshot),
// so a restore loads the rows before it builds them. The output of each
// pg_dump of then (args each) follows, whole, in the order given. The
// pg_dumps of schema (a data-only backup's schema part) run beside the
// rest, each in a lane of its own, and their output goes to schemaTo, in
// the order given.
func helperDump(ctx context.Context, s *pgtools.Streams, args []string, then, schema [][]string, schemaTo io.Writer, full bool, snapshot, encoding string, tables []splitTable, lanes int, w io.Writer) error {
	if len(tables) == 0 {
		full = false // one pg_dump writes the whole file
	}
	main := append([]string{}, args...)
	if full {
		main = append(main, "--section=pre-data", "--section=data")
	}
	for _, t := range tables {
		main = append(main, "--exclude-table-data="+t.excludePattern())
	}
	runs := []pgtools.ToolRun{{Name: "pg_dump", Tool: "pg_dump", Args: main, Env: dumpformat.DumpEnv()}}
	lane := 0
	for _, t := range tables {
		for k := range t.Parts {
			runs = append(runs, pgtools.ToolRun{
				Name: fmt.Sprintf("psql (%s.%s, part %d of %d)", t.Schema, t.Name, k+1, t.Parts),
				Tool: "psql",
				Args: []string{"--no-psqlrc", "--quiet", "--set=ON_ERROR_STOP=1",
					"--command=BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
					"--command=SET TRANSACTION SNAPSHOT '" + snapshot + "'",
					"--command=" + t.partQuery(k), "--command=COMMIT"},
				Env:  dumpformat.CopyEnv(encoding),
				Lane: 1 + lane%lanes,
			})
			lane++
		}
	}
	if full {
		post := append(append([]string{}, args...), "--section=post-data")
		runs = append(runs, pgtools.ToolRun{Name: "pg_dump (post-data)", Tool: "pg_dump", Args: post, Env: dumpformat.DumpEnv()})
	}
	for k, a := range then {
		runs = append(runs, pgtools.ToolRun{Name: fmt.Sprintf("pg_dump (%d of %d)", k+2, len(then)+1), Tool: "pg_dump", Args: a, Env: dumpformat.DumpEnv()})
	}
	for k, a := range schema {
		// Each in a lane of its own: they start with the data's pg_dump
		// rather than after it (a small database's schema dump takes about
		// as long as its data dump).
		runs = append(runs, pgtools.ToolRun{Name: fmt.Sprintf("pg_dump (schema part, %d of %d)", k+1, len(schema)), Tool: "pg_dump", Args: a, Env: dumpformat.DumpEnv(), Lane: lanes + 1 + k})
	}

	if err := s.Run(ctx, runs); err != nil {
		return err
	}
	stream := func(i int) func(context.Context) (io.ReadCloser, error) {
		return func(ctx context.Context) (io.ReadCloser, error) { return s.Stream(ctx, i) }
	}
	text := func(b []byte) segment { return segment{text: func() ([]byte, error) { return b, nil }} }
	if len(tables) == 0 && len(then) == 0 && len(schema) == 0 {
		return writeAll(ctx, s, w)
	}
	var segs []segment
	i := 1
	if len(tables) == 0 {
		segs = append(segs, segment{open: stream(0)})
	} else {
		segs, i = splitSegments(tables, stream, text, full, w)
	}
	for range then {
		segs = append(segs, segment{open: stream(i)})
		i++
	}
	for range schema {
		// Last in turn: the small schema part waits (in a spill file)
		// rather than the file's bytes.
		segs = append(segs, segment{open: stream(i), to: schemaTo})
		i++
	}
	if err := writeInOrder(ctx, w, s.Dir(), segs); err != nil {
		return abort(ctx, s, err)
	}
	return s.Wait(ctx)
}

// splitSegments are the pieces of a dump whose tables are read in parts:
// pg_dump's output but its closing comment, each table's parts, the
// closing comment, and a full backup's post-data. It returns the index of
// the next stream.
func splitSegments(tables []splitTable, stream func(int) func(context.Context) (io.ReadCloser, error), text func([]byte) segment, full bool, w io.Writer) ([]segment, int) {
	hb := dumpformat.NewHoldback(w)
	segs := []segment{{open: stream(0), to: hb, end: hb.Finish}}
	i := 1
	for _, t := range tables {
		segs = append(segs, text(t.header()))
		var parts []func(context.Context) (io.ReadCloser, error)
		for range t.Parts {
			parts = append(parts, stream(i))
			i++
		}
		segs = append(segs, segment{rows: parts}, text([]byte(dumpformat.CopyTrailer)))
	}
	segs = append(segs, segment{text: func() ([]byte, error) { return hb.Trailer(), nil }})
	if full {
		segs = append(segs, segment{open: stream(i)})
		i++
	}
	return segs, i
}

// abort stops the runs after the reading failed with err, and says why:
// Ctrl-C, else a run that had failed (the likelier cause), else err.
func abort(ctx context.Context, s *pgtools.Streams, err error) error {
	runErr := s.Abort(context.WithoutCancel(ctx))
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if runErr != nil {
		return runErr
	}
	return err
}

// writeAll copies the one stream of s to w.
func writeAll(ctx context.Context, s *pgtools.Streams, w io.Writer) error {
	r, err := s.Stream(ctx, 0)
	if err == nil {
		// Closing the stream ends a read that waits for pg_dump.
		stop := context.AfterFunc(ctx, func() { _ = r.Close() })
		_, err = io.CopyBuffer(onlyWriter{w}, r, make([]byte, drainBuffer))
		stop()
	}
	if err != nil {
		return abort(ctx, s, err)
	}
	return s.Wait(ctx)
}
