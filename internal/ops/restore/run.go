package restore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/bulkindex"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
	"github.com/aidb/aidb/internal/postgres/roles"
)

// script is the SQL psql runs: BEGIN, the load settings (dumpformat.LoadSettings:
// the index builds' memory), what comes before the file, the file's
// content, what comes after, COMMIT. The COMMIT is only sent once
// the whole file was read and matched its manifest; a failure before that
// ends psql's input without it, and the transaction rolls back.
func (p Plan) script(ctx context.Context, before, after string, afterPhase Phase) (io.Reader, func() error, error) {
	ct, err := p.content(ctx)
	if err != nil {
		return nil, nil, err
	}
	var tail io.Reader = strings.NewReader("\n" + after + "\nCOMMIT;\n")
	if afterPhase != "" {
		// What follows the file (a data-only restore's index builds and
		// check) is told as its phase when the file has been read.
		tail = &firstRead{r: tail, f: func() { p.phase(afterPhase) }}
	}
	r := io.MultiReader(strings.NewReader("BEGIN;\n"+dumpformat.SetLocal(dumpformat.LoadSettings())+before+"\n"), ct, tail)
	return r, ct.Close, nil
}

// content streams the file's plain SQL (from the folder, or from the
// repository's object, never copied whole), checked against its manifest
// at its end.
func (p Plan) content(ctx context.Context) (*content, error) {
	progress := func(n int64) {
		if p.Progress != nil {
			p.Progress(n, p.Size)
		}
	}
	if p.Object != nil {
		f, err := p.Object.Open(ctx)
		if err != nil {
			return nil, err
		}
		return readContent(f, p.Path, p.Compression, p.Manifest, p.Keys, progress)
	}
	return openContent(p.Path, p.Compression, p.Manifest, p.Keys, progress)
}

// firstRead calls f when r is first read: psql has been sent everything
// before r.
type firstRead struct {
	r io.Reader
	f func()
}

func (fr *firstRead) Read(b []byte) (int, error) {
	if fr.f != nil {
		fr.f()
		fr.f = nil
	}
	return fr.r.Read(b)
}

// Full restores a full (or schema) backup: into a new temporary database on
// the same server, verified there against the manifest, then swapped in by
// rename; the old database is dropped after the swap. Until the swap, the
// target is untouched; a failure, a difference or Ctrl-C drops the
// temporary database and leaves the target as it was.
func Full(ctx context.Context, e Server, p Plan) (Result, error) {
	s, err := stage(ctx, e, p)
	if err != nil {
		return Result{}, err
	}
	p.phase(PhaseSwap)
	old, err := s.swap(ctx)
	if err != nil {
		s.drop(ctx)
		return Result{}, err
	}
	s.dropOld(ctx, old)
	return s.result, nil
}

// All restores several full backups all or nothing: each into its
// temporary database and verified first; the swaps happen only when every
// one succeeded, and if a later swap fails the earlier ones are swapped
// back.
func All(ctx context.Context, e Server, plans []Plan) ([]Result, error) {
	staged := make([]*staging, len(plans))
	g, gctx := errgroup.WithContext(ctx)
	for i, p := range plans {
		g.Go(func() error {
			s, err := stage(gctx, e, p)
			staged[i] = s
			return err
		})
	}
	if err := g.Wait(); err != nil {
		for _, s := range staged {
			if s != nil {
				s.drop(ctx)
			}
		}
		return nil, err
	}
	olds := make([]string, len(staged))
	for i, s := range staged {
		s.p.phase(PhaseSwap)
		old, err := s.swap(ctx)
		if err != nil {
			s.drop(ctx)
			var errs []error
			for j := i - 1; j >= 0; j-- {
				if uerr := staged[j].unswap(ctx, olds[j]); uerr != nil {
					errs = append(errs, uerr)
				}
			}
			for _, t := range staged[i+1:] {
				t.drop(ctx)
			}
			if len(errs) > 0 {
				return nil, fmt.Errorf("%w; and swapping back the databases already restored failed: %w", err, errors.Join(errs...))
			}
			return nil, fmt.Errorf("%w; the databases already swapped were swapped back: nothing changed", err)
		}
		olds[i] = old
	}
	results := make([]Result, len(staged))
	for i, s := range staged {
		s.dropOld(ctx, olds[i])
		results[i] = s.result
	}
	return results, nil
}

// staging is a backup loaded and verified in a temporary database.
type staging struct {
	e      Server
	p      Plan
	admin  string // conn string of the maintenance database
	target string
	temp   string
	result Result
	// dropped lists leftovers of earlier restores this one removed.
	dropped []string
	// created lists the roles the load created (missing on the server,
	// named by the manifest), once the load committed: a failure after
	// it (a difference, a failed swap) drops them again with the
	// temporary database.
	created []string
}

// stage creates the temporary database, loads the file and verifies it,
// in steps: leftovers of interrupted restores dropped, the temporary
// database created, the file loaded, the result checked against the
// manifest. It returns the staged database, ready to swap in; on failure
// (or Ctrl-C) the temporary database is dropped and the target untouched.
func stage(ctx context.Context, e Server, p Plan) (_ *staging, retErr error) {
	s := newStaging(e, p)
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return nil, fmt.Errorf("connect to %s's server: %w", p.DB.Name, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if err := s.dropLeftovers(ctx, conn); err != nil {
		return nil, err
	}
	if err := s.createTemp(ctx, conn); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			s.drop(ctx)
		}
	}()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	missing, err := missingRoles(ctx, conn, p.Manifest)
	if err != nil {
		return nil, err
	}
	if p.jobs() > 1 && len(missing) > 0 {
		// Several sessions share no transaction: the roles are created
		// first, in one of their own, and dropped again (drop) if the
		// restore fails.
		if _, err := conn.Exec(ctx, rolesScript(p.Manifest)); err != nil {
			return nil, fmt.Errorf("create the roles %s names: %w", p.File, err)
		}
		s.created = missing
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	s.created = missing
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// missingRoles are the roles of the manifest (the roles the backup's
// database refers to) that the server q is connected to lacks: those the
// restore creates, and reports. None without a manifest.
func missingRoles(ctx context.Context, q roles.Querier, m *manifest.Manifest) ([]string, error) {
	if m == nil {
		return []string{}, nil
	}
	missing, err := roles.Missing(ctx, q, m.Roles)
	if missing == nil {
		missing = []string{}
	}
	return missing, err
}

// rolesScript is what creates the roles of the manifest that the server
// lacks (never altering one it has), at the start of the restore's
// transaction: a failed load rolls the roles back with everything else.
// A full backup's file holds the same at its start (for plain psql); a
// data-only file does not.
func rolesScript(m *manifest.Manifest) string {
	if m == nil {
		return ""
	}
	return roles.SQL(m.Roles)
}

// newStaging names the restore's databases: the target, the maintenance
// database the swap runs from (postgres, or template1 when the target is
// postgres), and a new temporary database's name.
func newStaging(e Server, p Plan) *staging {
	s := &staging{e: e, p: p, target: p.DB.DBName}
	maint := "postgres"
	if s.target == maint {
		maint = "template1"
	}
	s.admin = withDatabase(e.ConnString(p.DB), maint)
	s.temp = shortName(s.target, "_aidb_restore_")
	return s
}

// createTemp creates the temporary database with the target's encoding
// and locale, over conn (to the maintenance database).
func (s *staging) createTemp(ctx context.Context, conn *pgx.Conn) error {
	var create string
	err := conn.QueryRow(ctx, `
		SELECT format('CREATE DATABASE %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L',
		              $1::text, pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype)
		FROM pg_catalog.pg_database WHERE datname = $2`, s.temp, s.target).Scan(&create)
	if err != nil {
		return fmt.Errorf("read the settings of database %s: %w", s.target, err)
	}
	// Not cancelled mid-way: a create the server finishes after the client
	// gave up would leave a temporary database nobody drops.
	if _, err := conn.Exec(context.WithoutCancel(ctx), create); err != nil {
		return fmt.Errorf("create temporary database %s: %w", s.temp, err)
	}
	return nil
}

// load runs the file through psql into the temporary database, in one
// transaction that commits only once the whole file was read and matched
// its manifest (see Plan.script).
func (s *staging) load(ctx context.Context) error {
	p := s.p
	if p.jobs() > 1 {
		return s.loadParallel(ctx)
	}
	script, closeScript, err := p.script(ctx, rolesScript(p.Manifest), "", "")
	if err != nil {
		return err
	}
	p.phase(PhaseLoad)
	err = s.e.Psql(ctx, p.DB, s.temp, p.Transport, p.WorkDir, script)
	_ = closeScript()
	if err != nil {
		return fmt.Errorf("restore %s into a temporary database (the target was not touched): %w", p.File, err)
	}
	return nil
}

// loadParallel loads the file into the temporary database on p.jobs()
// sessions (see parallelLoad), streaming it from the file (through its
// decryption and decompression) once: the file is read once, never held
// whole, and its size and sha256 are checked against the manifest at its
// end, before the post-data runs.
func (s *staging) loadParallel(ctx context.Context) error {
	p := s.p
	ct, err := p.content(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = ct.Close() }()
	explain := func(err error) error { return err }
	if w, ok := s.e.(loadWatcher); ok {
		if explain, err = w.WatchLoad(ctx, p.DB); err != nil {
			return err
		}
	}
	p.phase(PhaseLoad)
	err = explain(loadParallel(ctx, withDatabase(s.e.ConnString(p.DB), s.temp), p.jobs(), ct, func() { p.phase(PhasePostData) }))
	if errors.Is(err, dumpformat.ErrMetaCommand) {
		err = fmt.Errorf("%w: restore it with --jobs 1 (one psql stream)", err)
	}
	if err != nil {
		return fmt.Errorf("restore %s into a temporary database (the target was not touched): %w", p.File, err)
	}
	return nil
}

// loadWatcher is an engine that can say that a load failed because its
// server's container stopped under it (pgrun.Runner, pgrun.Throwaway),
// as psql's failures are explained.
type loadWatcher interface {
	WatchLoad(ctx context.Context, db compose.Database) (func(error) error, error)
}

func (s *staging) swap(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	old := shortName(s.target, "_aidb_old_")
	// No new sessions while the target is swapped out; its old sessions
	// are ended (applications reconnect to the restored database).
	if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS false", ident(s.target))); err != nil {
		return "", fmt.Errorf("close database %s to new connections: %w", s.target, err)
	}
	reopen := func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true", ident(s.target)))
	}
	var lastErr error
	for range 10 {
		if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()", s.target); err != nil {
			reopen()
			return "", fmt.Errorf("end the connections to %s: %w", s.target, err)
		}
		lastErr = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", ident(s.target), ident(old))); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", ident(s.temp), ident(s.target)))
			return err
		})
		// A session that came back between the terminate and the rename
		// makes it fail with object_in_use: end it and try again.
		var pg *pgconn.PgError
		if lastErr == nil || !errors.As(lastErr, &pg) || pg.Code != pgerrcode.ObjectInUse {
			break
		}
		select {
		case <-ctx.Done():
			reopen()
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if lastErr != nil {
		reopen()
		return "", fmt.Errorf("swap the restored database in for %s: %w", s.target, lastErr)
	}
	return old, nil
}

// unswap puts the old database back in place of the restored one.
func (s *staging) unswap(ctx context.Context, old string) error {
	ctx = context.WithoutCancel(ctx)
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	_, _ = conn.Exec(ctx, "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()", s.target)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", ident(s.target), ident(s.temp))); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", ident(old), ident(s.target))); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true", ident(s.target)))
		return err
	})
	if err != nil {
		return fmt.Errorf("swap %s back: %w (the previous database is kept as %s)", s.target, err, old)
	}
	s.drop(ctx)
	return nil
}

// drop removes the temporary database, also after Ctrl-C, and then the
// roles its load created: the server is left as it was. A role something
// else came to depend on meanwhile stays (DROP ROLE refuses).
func (s *staging) drop(ctx context.Context) {
	s.dropDB(ctx, s.temp)
	if len(s.created) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close(ctx) }()
	if roles.Drop(ctx, conn, s.created) == nil {
		s.created = nil
	}
}

// dropOld removes the database the swap replaced.
func (s *staging) dropOld(ctx context.Context, old string) {
	s.dropDB(ctx, old)
}

// dropDB drops the database name, also after Ctrl-C, waiting up to a
// minute; a failure is ignored (the next restore drops its leftovers).
func (s *staging) dropDB(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close(ctx) }()
	_ = s.dropDatabase(ctx, conn, name)
}

// dropDatabase drops database name over conn (to the maintenance
// database), its subscriptions first: PostgreSQL refuses to drop a
// database that has one ("is being used by logical replication
// subscription"), and a restored database has those its backup had
// (disabled, without a slot, as pg_dump writes them). A subscription is
// dropped from within its database: connections are let in again for it
// (a swapped-out database had them closed).
func (s *staging) dropDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	var subs int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_subscription s
		JOIN pg_catalog.pg_database d ON d.oid = s.subdbid WHERE d.datname = $1`, name).Scan(&subs); err != nil {
		return err
	}
	if subs > 0 {
		if _, err := conn.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true", ident(name))); err != nil {
			return err
		}
		in, err := pgx.Connect(ctx, withDatabase(s.e.ConnString(s.p.DB), name))
		if err != nil {
			return fmt.Errorf("connect to %s to drop its subscriptions: %w", name, err)
		}
		_, err = in.Exec(ctx, `DO $$ DECLARE s text; BEGIN
			FOR s IN SELECT quote_ident(subname) FROM pg_catalog.pg_subscription
				WHERE subdbid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) LOOP
				EXECUTE 'ALTER SUBSCRIPTION ' || s || ' DISABLE';
				EXECUTE 'ALTER SUBSCRIPTION ' || s || ' SET (slot_name = NONE)';
				EXECUTE 'DROP SUBSCRIPTION ' || s;
			END LOOP; END $$`)
		_ = in.Close(ctx)
		if err != nil {
			return fmt.Errorf("drop the subscriptions of %s: %w", name, err)
		}
	}
	_, err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident(name)))
	return err
}

// DataOnly restores a data-only backup onto the target's schema in one
// transaction: truncate the tables the file holds, load them with triggers
// and foreign-key checks off (session_replication_role = replica), set the
// sequences the file sets and raise every sequence owned by a loaded column
// to at least its maximum, check every table's row count and content hash
// against the manifest, and commit only if all of it succeeded. Running it
// twice gives the same database; a duplicate key cannot happen.
func DataOnly(ctx context.Context, e Server, p Plan) (Result, error) {
	res := Result{Database: p.DB.Name, File: p.Path, Kind: backupfile.Data, Tables: len(p.Tables)}
	names := make([]string, len(p.Tables))
	for i, t := range p.Tables {
		names[i] = t.QualifiedName()
		if t.Rows != nil {
			res.Rows += *t.Rows
		}
	}
	if err := e.RequireReady(ctx, p.DB); err != nil {
		return res, err
	}
	conn, err := pgx.Connect(ctx, e.ConnString(p.DB))
	if err != nil {
		return res, fmt.Errorf("connect to %s: %w", p.DB.Name, err)
	}
	created, err := missingRoles(ctx, conn, p.Manifest)
	var indexes []bulkindex.Index
	if err == nil {
		indexes, err = bulkindex.Read(ctx, conn, names)
	}
	_ = conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return res, err
	}
	before := rolesScript(p.Manifest) + "SET LOCAL session_replication_role = replica;\n"
	if len(names) > 0 {
		before += "TRUNCATE TABLE " + strings.Join(names, ", ") + ";\n" + bulkindex.DropSQL(indexes)
	}
	if p.LargeObjects {
		// The file creates its large objects by their OIDs: the target's
		// go first, as its rows do (a pg_dump --data-only carries every
		// large object of the database).
		before += "SELECT count(pg_catalog.lo_unlink(oid)) FROM pg_catalog.pg_largeobject_metadata;\n"
	}
	after := bulkindex.BuildSQL(indexes) + "SET LOCAL session_replication_role = origin;\n" + raiseSequences(names)
	if p.Manifest != nil {
		check, err := checkContent(p.DB.Name, p.Tables, p.Manifest.WholeRowHash())
		if err != nil {
			return res, err
		}
		after += check
	}
	// psql reads ahead of the server: the phase after the file is told
	// once, when the file has been read. With indexes to build, that is
	// the longer part.
	tailPhase := PhaseCheck
	if len(indexes) > 0 {
		tailPhase = PhasePostData
	}
	script, closeScript, err := p.script(ctx, before, after, tailPhase)
	if err != nil {
		return res, err
	}
	defer func() { _ = closeScript() }()
	p.phase(PhaseLoad)
	if err := e.Psql(ctx, p.DB, p.DB.DBName, p.Transport, p.WorkDir, script); err != nil {
		// psql reports the check's exception as text on its stderr (no
		// SQLSTATE reaches aidb), so the check's own marker is matched.
		if strings.Contains(err.Error(), "aidb: content differs") {
			return res, differs(p.DB.Name, contentDiffs(err.Error()))
		}
		return res, fmt.Errorf("restore the data of %s (rolled back: nothing changed): %w", p.File, err)
	}
	res.Verified = p.Manifest != nil
	res.RolesCreated = created
	return res, nil
}

// raiseSequences sets each sequence owned by a column of the loaded tables
// to at least the column's maximum, so the application's next insert does
// not collide with a restored row.
func raiseSequences(tables []string) string {
	if len(tables) == 0 {
		return ""
	}
	regs := make([]string, len(tables))
	for i, t := range tables {
		regs[i] = literal(t) + "::regclass"
	}
	return `DO $aidb$
DECLARE r record; m numeric; cur numeric; called boolean;
BEGIN
  FOR r IN
    SELECT d.objid::regclass AS seq, a.attname, d.refobjid::regclass AS tbl
    FROM pg_catalog.pg_depend d
    JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
      AND d.refobjid = ANY (ARRAY[` + strings.Join(regs, ", ") + `])
  LOOP
    EXECUTE format('SELECT max(%I)::numeric FROM %s', r.attname, r.tbl) INTO m;
    EXECUTE format('SELECT last_value::numeric, is_called FROM %s', r.seq) INTO cur, called;
    IF m IS NOT NULL AND (m > cur OR (m = cur AND NOT called)) THEN
      PERFORM pg_catalog.setval(r.seq, m::bigint, true);
    END IF;
  END LOOP;
END
$aidb$;
`
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// shortName is base+infix+random, within PostgreSQL's 63-byte names.
func shortName(base, infix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	suffix := infix + hex.EncodeToString(b)
	if len(base)+len(suffix) > 63 {
		base = base[:63-len(suffix)]
	}
	return base + suffix
}

// dropLeftovers removes what an earlier restore of the same database left
// when its server died mid-way (a crash cannot run the cleanup): temporary
// databases never swapped in, and old databases a completed swap replaced.
// The caller holds the database's operation lock, so no restore is using
// them.
func (s *staging) dropLeftovers(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_catalog.pg_database
		WHERE starts_with(datname, $1 || '_aidb_restore_') OR starts_with(datname, $1 || '_aidb_old_')`, s.target)
	if err != nil {
		return fmt.Errorf("look for leftovers of earlier restores: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := s.dropDatabase(ctx, conn, n); err != nil {
			return fmt.Errorf("drop %s, left by an interrupted restore: %w", n, err)
		}
		s.dropped = append(s.dropped, n)
	}
	return nil
}
