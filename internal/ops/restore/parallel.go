package restore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/aidb/aidb/internal/postgres/dumpformat"
)

// partSize is how many bytes of a table's rows one COPY loads: a large
// table's block is cut into parts of about this size at row boundaries, so
// that every session takes a share of it. Each session holds one part, one
// waits for a free session and one is being cut: aidb holds (jobs+2) MiB
// of rows, and reads no further ahead of the server than that. A COPY
// costs the server about a millisecond more than rows sent in a larger one.
const partSize = 1 << 20

// jobs is how many sessions a full restore (and a verification) loads on:
// Request.Jobs, or by default the machine's cores, at least 2.
func (r Request) jobs() int {
	if r.Jobs > 0 {
		return r.Jobs
	}
	return max(2, runtime.NumCPU())
}

// parallelLoad loads a plain dump into one database on several sessions,
// as pg_restore -j does: the entries before the first table's rows (the
// pre-data: types, tables, functions, ...) in one session and one
// transaction; then the rows of every COPY block, cut into parts at row
// boundaries, each part a COPY of its own on whichever session is free;
// then, once the whole file was read (and matched its manifest), the
// post-data in dependency order (postData). The first failure in any
// session ends the whole: the caller drops the database, which no one else
// sees (it is the restore's temporary database or a throwaway's).
type parallelLoad struct {
	connString string
	jobs       int
	// first is session 0: the pre-data, and later a session of the pool.
	first *pgx.Conn
	// settings are the header's session settings (search path, encoding,
	// ...), which every other session runs first.
	settings []string
	// post holds the entries that come after the first rows, run by
	// postData once the rows are in: small (statements, no rows).
	post []dumpformat.Entry

	dataStarted bool
	g           *errgroup.Group
	gctx        context.Context
	parts       chan part
	mu          sync.Mutex
	conns       []*pgx.Conn // the other sessions, once started
	// onPost, if set, is called when the post-data starts.
	onPost func()
}

// part is a part of a table's rows and the COPY statement that loads it.
type part struct {
	table, sql string
	rows       []byte
}

// loadParallel runs r (a plain dump) into the database at connString on
// jobs sessions (see parallelLoad).
func loadParallel(ctx context.Context, connString string, jobs int, r io.Reader, onPost func()) error {
	l := &parallelLoad{connString: connString, jobs: jobs, onPost: onPost}
	defer l.close(ctx)
	first, err := l.connect(ctx)
	if err != nil {
		return err
	}
	l.first = first
	if _, err := first.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	err = dumpformat.Split(r, partSize, &loaderOf{l: l, ctx: ctx})
	if l.dataStarted {
		close(l.parts)
		// A session's failure is the cause; the reader's "context
		// canceled" only follows from it.
		if werr := l.g.Wait(); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	if !l.dataStarted {
		// No rows (a schema backup): everything ran in session 0's
		// transaction.
		_, err := first.Exec(ctx, "COMMIT")
		return err
	}
	if l.onPost != nil {
		l.onPost()
	}
	return l.postData(ctx)
}

// connect opens a session with the build settings (dumpformat.BuildSettings:
// the index builds' memory, the server's parallel workers) and
// synchronous_commit off: nothing is visible before the swap, whose own
// commit flushes the log of all that came before it, and a failure drops
// the database anyway.
func (l *parallelLoad) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(l.connString)
	if err != nil {
		return nil, err
	}
	for _, s := range dumpformat.BuildSettings() {
		cfg.RuntimeParams[s.Name] = s.Value
	}
	cfg.RuntimeParams["synchronous_commit"] = "off"
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open a loading session: %w", err)
	}
	return c, nil
}

func (l *parallelLoad) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if l.first != nil {
		_ = l.first.Close(ctx)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close(ctx)
	}
}

// loaderOf is a parallelLoad as dumpformat.Split's Loader, under ctx.
type loaderOf struct {
	l   *parallelLoad
	ctx context.Context
}

func (lo *loaderOf) Statements(e dumpformat.Entry) error {
	l := lo.l
	if e.Type == dumpformat.TypeHeader && l.settings == nil {
		l.settings = dumpformat.SessionSettings(e.SQL)
	}
	if l.dataStarted {
		if e.Type != dumpformat.TypeHeader && e.Type != dumpformat.TypeEnd {
			l.post = append(l.post, e)
		}
		return nil
	}
	if err := execEntry(lo.ctx, l.first, e); err != nil {
		return err
	}
	return nil
}

func (lo *loaderOf) Rows(e dumpformat.Entry, rows []byte) error {
	l := lo.l
	if !l.dataStarted {
		if err := l.startData(lo.ctx); err != nil {
			return err
		}
	}
	select {
	case l.parts <- part{table: e.Copy.Key(), sql: e.CopySQL, rows: rows}:
		return nil
	case <-l.gctx.Done():
		return l.gctx.Err()
	}
}

// startData commits the pre-data and starts the sessions that load the
// rows: session 0 and jobs-1 more.
func (l *parallelLoad) startData(ctx context.Context) error {
	if _, err := l.first.Exec(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit the pre-data: %w", err)
	}
	l.dataStarted = true
	l.g, l.gctx = errgroup.WithContext(ctx)
	l.parts = make(chan part, 1)
	l.g.Go(func() error { return l.loadParts(l.gctx, l.first) })
	for range l.jobs - 1 {
		l.g.Go(func() error {
			c, err := l.connect(l.gctx)
			if err != nil {
				return err
			}
			l.mu.Lock()
			l.conns = append(l.conns, c)
			l.mu.Unlock()
			if len(l.settings) > 0 {
				if err := c.PgConn().Exec(l.gctx, strings.Join(l.settings, "\n")).Close(); err != nil {
					return fmt.Errorf("set up a loading session: %w", err)
				}
			}
			return l.loadParts(l.gctx, c)
		})
	}
	return nil
}

// loadParts loads parts on conn until there are no more.
func (l *parallelLoad) loadParts(ctx context.Context, conn *pgx.Conn) error {
	for p := range l.parts {
		if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(p.rows), p.sql); err != nil {
			return fmt.Errorf("load the rows of table %s: %w", p.table, err)
		}
	}
	return nil
}

// execEntry runs an entry's statements on conn. An index build that finds
// /dev/shm too small for its parallel workers (pgvector's HNSW keeps its
// graph there) runs again serially, and the session builds serially from
// then on: the failure comes at the build's start, and a post-data entry
// runs outside a transaction, so nothing of it stays.
func execEntry(ctx context.Context, conn *pgx.Conn, e dumpformat.Entry) error {
	err := conn.PgConn().Exec(ctx, e.SQL).Close()
	if shmExhausted(err) && e.Type == "INDEX" {
		if _, serr := conn.Exec(ctx, "SET max_parallel_maintenance_workers = 0"); serr == nil {
			err = conn.PgConn().Exec(ctx, e.SQL).Close()
		}
	}
	if err != nil {
		return fmt.Errorf("run %s: %w", describe(e), err)
	}
	return nil
}

// shmExhausted says whether err is a parallel build's shared memory not
// fitting in /dev/shm.
func shmExhausted(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == dumpformat.ShmExhaustedState && strings.Contains(pe.Message, "shared memory")
}

// describe names an entry in an error: "the INDEX rules_body_idx (public)".
func describe(e dumpformat.Entry) string {
	switch {
	case e.Type == dumpformat.TypeHeader:
		return "the dump's session settings"
	case e.Type == "":
		return "the dump's statements"
	case e.Schema != "" && e.Schema != "-":
		return fmt.Sprintf("the %s %s (schema %s)", e.Type, e.Name, e.Schema)
	}
	return fmt.Sprintf("the %s %s", e.Type, e.Name)
}

// A postItem is a post-data entry (with the comments and security labels
// pg_dump writes right after it) and the tables it locks: the roots of
// their inheritance trees, so that no two items on one tree run at once
// (their locks would queue, or deadlock).
type postItem struct {
	e     dumpformat.Entry
	after []dumpformat.Entry
	keys  []string
	// shared says the item locks its tables in SHARE mode only (CREATE
	// INDEX): two such items may build on one table at once, as
	// pg_restore -j builds a table's indexes side by side; any other item
	// holds its tables alone.
	shared bool
}

// A postStep is a run of post-data items that may go in any order: items
// with keys run in parallel where they share no tree; a step of items
// without keys runs in file order on one session.
type postStep []postItem

// postKind sorts post-data entries for planPost: indexes and the keys of
// tables (primary, unique, check, exclusion) build in parallel, foreign
// keys too once the keys they refer to exist, and everything else keeps
// the file's order.
type postKind int

const (
	postSerial postKind = iota
	postIndex
	postFK
)

// planPost splits the post-data entries, in the file's order, into steps
// run one after another. pg_dump writes them in an order that already
// respects every dependency between them (its priorities: constraints,
// indexes, index attachments, extended statistics, rules, triggers,
// foreign keys, policies, publications, event triggers, ..., each after
// what it depends on), so the file's order is kept between steps and only
// a run of indexes and constraints, or a run of foreign keys, is
// reordered: within such a run no entry depends on another of a different
// table. Where pg_dump had to move an entry out of its priority's place
// (an index a foreign key of another table needs, a partitioned key that
// its partitions' ATTACH PARTITION entries complete), the step ends there,
// and so the entry waits for what comes before it. A comment or security
// label rides with the entry it follows.
func planPost(post []dumpformat.Entry, r roots) []postStep {
	var steps []postStep
	last := postKind(-1)
	for _, e := range post {
		if (e.Type == "COMMENT" || e.Type == "SECURITY LABEL") && len(steps) > 0 && last != postSerial {
			cur := steps[len(steps)-1]
			cur[len(cur)-1].after = append(cur[len(cur)-1].after, e)
			continue
		}
		kind, it := postSerial, postItem{e: e}
		if on, refs, ok := dumpformat.EntryTables(e); ok {
			switch e.Type {
			case "INDEX", "CONSTRAINT", "CHECK CONSTRAINT":
				// An INDEX entry that also alters its table (pg_dump puts
				// CLUSTER ON and REPLICA IDENTITY USING INDEX there) takes a
				// stronger lock in the same transaction: two of them on one
				// table would deadlock, so it holds its table alone.
				kind, it.keys = postIndex, r.of(on.Key())
				it.shared = e.Type == "INDEX" && !strings.Contains(e.SQL, "ALTER TABLE")
			case "FK CONSTRAINT":
				kind, it.keys = postFK, append(r.of(on.Key()), r.of(refs.Key())...)
			}
		}
		if kind != last || len(steps) == 0 {
			steps = append(steps, nil)
			last = kind
		}
		steps[len(steps)-1] = append(steps[len(steps)-1], it)
	}
	return steps
}

// postData runs the post-data entries step by step (planPost), as
// pg_restore -j orders them by the dump's dependencies: the indexes and
// constraints of different tables in parallel, the largest tables' first,
// and a table's plain indexes beside each other (ready); the foreign keys
// in parallel where they share no table; the rest in file order on one
// session. Within a table, entries keep the file's order, but for its
// indexes among themselves.
func (l *parallelLoad) postData(ctx context.Context) error {
	roots, err := rootTables(ctx, l.first)
	if err != nil {
		return err
	}
	steps := planPost(l.post, roots)
	// The largest tables' indexes first, as pg_restore orders them: the
	// longest build (an HNSW index, say) starts at once, and the others
	// fill the other sessions beside it. Within a tree the file's order
	// stays (a stable sort on the tree's size).
	sizes, err := treeSizes(ctx, l.first, roots)
	if err != nil {
		return err
	}
	sessions := []*pgx.Conn{l.first}
	l.mu.Lock()
	sessions = append(sessions, l.conns...)
	l.mu.Unlock()
	for _, step := range steps {
		n := len(sessions)
		if step[0].keys == nil {
			n = 1
		} else {
			slices.SortStableFunc(step, func(a, b postItem) int { return cmp.Compare(sizes[b.keys[0]], sizes[a.keys[0]]) })
		}
		if err := runItems(ctx, step, sessions[:n]); err != nil {
			return err
		}
	}
	return nil
}

// roots maps a table (schema.name) to the roots of its inheritance trees.
type roots map[string][]string

func (r roots) of(table string) []string {
	if rs, ok := r[table]; ok {
		return slices.Clone(rs)
	}
	return []string{table}
}

// rootTables reads, for every table with a parent (inheritance or
// partitions), the tables at the top of its trees.
func rootTables(ctx context.Context, conn *pgx.Conn) (roots, error) {
	rows, err := conn.Query(ctx, `
		WITH RECURSIVE up(relid, root) AS (
		  SELECT i.inhrelid, i.inhparent FROM pg_catalog.pg_inherits i
		  UNION
		  SELECT up.relid, i.inhparent FROM up JOIN pg_catalog.pg_inherits i ON i.inhrelid = up.root)
		SELECT n.nspname || '.' || c.relname, rn.nspname || '.' || r.relname
		FROM up
		JOIN pg_catalog.pg_class c ON c.oid = up.relid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_catalog.pg_class r ON r.oid = up.root JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
		WHERE c.relkind IN ('r', 'p', 'f', 'm')
		  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits p WHERE p.inhrelid = up.root)
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("read the tables' inheritance: %w", err)
	}
	out := roots{}
	var child, root string
	_, err = pgx.ForEachRow(rows, []any{&child, &root}, func() error {
		out[child] = append(out[child], root)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the tables' inheritance: %w", err)
	}
	return out, nil
}

// treeSizes is the size on disk of each table (schema.name), its
// inheritance or partition children's added to each of their roots.
func treeSizes(ctx context.Context, conn *pgx.Conn, r roots) (map[string]int64, error) {
	rows, err := conn.Query(ctx, `
		SELECT n.nspname || '.' || c.relname, pg_catalog.pg_relation_size(c.oid)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema')`)
	if err != nil {
		return nil, fmt.Errorf("read the tables' sizes: %w", err)
	}
	out := map[string]int64{}
	var name string
	var size int64
	_, err = pgx.ForEachRow(rows, []any{&name, &size}, func() error {
		for _, root := range r.of(name) {
			out[root] += size
		}
		if _, ok := r[name]; ok {
			out[name] += size
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the tables' sizes: %w", err)
	}
	return out, nil
}

// runItems runs items on sessions, the planner handing each free session
// the first item in file order that is ready: none of its tables is
// locked by a running item or by an earlier item still waiting. Items
// without keys run one at a time (one session is given). The first
// failure cancels the others and is returned.
func runItems(ctx context.Context, items []postItem, sessions []*pgx.Conn) error {
	if len(items) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type finished struct {
		it   postItem
		conn *pgx.Conn
		err  error
	}
	done := make(chan finished, len(sessions))
	idle := slices.Clone(sessions)
	busy := map[string]holds{}
	pending := items
	running := 0
	var firstErr error
	for (len(pending) > 0 && firstErr == nil) || running > 0 {
		for firstErr == nil && len(idle) > 0 {
			i := ready(pending, busy)
			if i < 0 {
				break
			}
			it := pending[i]
			pending = slices.Delete(slices.Clone(pending), i, i+1)
			conn := idle[len(idle)-1]
			idle = idle[:len(idle)-1]
			for _, k := range it.keys {
				busy[k] = busy[k].add(it.shared, 1)
			}
			running++
			go func() { done <- finished{it: it, conn: conn, err: execItem(ctx, conn, it)} }()
		}
		f := <-done
		running--
		idle = append(idle, f.conn)
		for _, k := range f.it.keys {
			busy[k] = busy[k].add(f.it.shared, -1)
		}
		if f.err != nil && firstErr == nil {
			firstErr = f.err
			cancel()
		}
	}
	return firstErr
}

// execItem runs an item's entry and then the comments and labels that
// ride with it, on one session.
func execItem(ctx context.Context, conn *pgx.Conn, it postItem) error {
	if err := execEntry(ctx, conn, it.e); err != nil {
		return err
	}
	for _, e := range it.after {
		if err := execEntry(ctx, conn, e); err != nil {
			return err
		}
	}
	return nil
}

// holds counts the running items that hold a table: alone, or shared
// (postItem.shared).
type holds struct{ alone, shared int }

func (h holds) add(shared bool, n int) holds {
	if shared {
		h.shared += n
	} else {
		h.alone += n
	}
	return h
}

// ready is the index of the first pending item whose tables it may take
// now; -1 if there is none. An item that holds its tables alone waits
// for every running item on them and for every earlier pending one; a
// shared one (CREATE INDEX) only for those that hold them alone, so a
// table's indexes build side by side but never overtake its constraints.
func ready(pending []postItem, busy map[string]holds) int {
	var earlier map[string]holds
	for i, it := range pending {
		ok := true
		for _, k := range it.keys {
			b, e := busy[k], earlier[k]
			if b.alone > 0 || e.alone > 0 || (!it.shared && (b.shared > 0 || e.shared > 0)) {
				ok = false
			}
		}
		if ok {
			return i
		}
		if earlier == nil {
			earlier = map[string]holds{}
		}
		for _, k := range it.keys {
			earlier[k] = earlier[k].add(it.shared, 1)
		}
	}
	return -1
}
