package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Target is an application database as aidb reaches it.
type Target struct {
	// Name is the database's name in aidb.yaml (the compose service).
	Name string
	// URL is its postgres:// URL from this host (with the password: never
	// shown).
	URL string
}

// dbname is the database's name on its server (POSTGRES_DB).
func (t Target) dbname() (string, error) {
	cfg, err := pgx.ParseConfig(t.URL)
	if err != nil {
		return "", fmt.Errorf("read the URL of %s: %w", t.Name, err)
	}
	return cfg.Database, nil
}

// withDatabase is url u pointing at database name.
func withDatabase(u, name string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.Path = "/" + name
	return p.String()
}

// server is a connection to the maintenance database of a target's
// server (postgres, or template1 when the target is postgres): copies are
// made, renamed and dropped from there, never from the database itself.
type server struct {
	t      Target
	conn   *pgx.Conn
	source string // the application database's name
}

// connect opens the maintenance connection of t's server.
func connect(ctx context.Context, t Target) (*server, error) {
	source, err := t.dbname()
	if err != nil {
		return nil, err
	}
	maint := "postgres"
	if source == maint {
		maint = "template1"
	}
	conn, err := pgx.Connect(ctx, withDatabase(t.URL, maint))
	if err != nil {
		return nil, fmt.Errorf("connect to %s's server: %w", t.Name, err)
	}
	return &server{t: t, conn: conn, source: source}, nil
}

// connectRepaired is connect, then repair: every operation here first
// clears what killed runs of the database left. It returns the repairs
// made, one line each, also with an error.
func connectRepaired(ctx context.Context, t Target) (*server, []string, error) {
	s, err := connect(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	repairs, err := s.repair(ctx)
	if err != nil {
		s.close(ctx)
		return nil, repairs, err
	}
	return s, repairs, nil
}

func (s *server) close(ctx context.Context) { _ = s.conn.Close(context.WithoutCancel(ctx)) }

// urlOf is the URL of database name on this server.
func (s *server) urlOf(name string) string { return withDatabase(s.t.URL, name) }

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// Copy is a snapshot or clone found on a server.
type Copy struct {
	// Database is the application database's name in aidb.yaml.
	Database string `json:"database"`
	// DBName is the copy's own database name on the server.
	DBName string `json:"dbname"`
	Size   int64  `json:"size_bytes"`
	Meta
}

// copies lists the snapshots and clones of kind (empty: both) of the
// application database on this server, oldest first.
func (s *server) copies(ctx context.Context, kind Kind) ([]Copy, error) {
	rows, err := s.conn.Query(ctx, `SELECT d.datname, pg_catalog.shobj_description(d.oid, 'pg_database'), pg_catalog.pg_database_size(d.oid)
		FROM pg_catalog.pg_database d WHERE pg_catalog.shobj_description(d.oid, 'pg_database') LIKE '{"aidb_snapshot":%'`)
	if err != nil {
		return nil, fmt.Errorf("list the snapshots of %s: %w", s.t.Name, err)
	}
	var out []Copy
	var name, comment string
	var size int64
	_, err = pgx.ForEachRow(rows, []any{&name, &comment, &size}, func() error {
		m, err := decode(comment)
		if err != nil || m.Source != s.source || (kind != "" && m.Kind != kind) {
			return nil // another database's, or not aidb's
		}
		out = append(out, Copy{Database: s.t.Name, DBName: name, Size: size, Meta: m})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the snapshots of %s: %w", s.t.Name, err)
	}
	slices.SortStableFunc(out, func(a, b Copy) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// exists says whether database name is on the server.
func (s *server) exists(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)", name).Scan(&ok)
	return ok, err
}

// props reads database name's own properties (fingerprint.Database).
func (s *server) props(ctx context.Context, name string) (Props, error) {
	p, err := fingerprint.ReadDatabaseOf(ctx, s.conn, name, true)
	if err != nil {
		return p, fmt.Errorf("read the properties of database %s: %w", name, err)
	}
	return p, nil
}

// Session is a connection to a database, as pg_stat_activity shows it.
type Session struct {
	PID         int        `json:"pid"`
	User        string     `json:"user"`
	Application string     `json:"application"`
	Client      string     `json:"client"`
	State       string     `json:"state"`
	XactStart   *time.Time `json:"transaction_start,omitempty"`
}

// String names the session for a person.
func (s Session) String() string {
	out := fmt.Sprintf("pid %d (%s", s.PID, s.User)
	if s.Application != "" {
		out += ", " + s.Application
	}
	if s.Client != "" {
		out += ", from " + s.Client
	}
	out += ", " + s.State
	if s.XactStart != nil {
		out += fmt.Sprintf(", in a transaction since %s", s.XactStart.UTC().Format(time.RFC3339))
	}
	return out + ")"
}

// InTransaction says whether the session has work a termination rolls
// back.
func (s Session) InTransaction() bool { return s.XactStart != nil }

// sessions lists the connections to database name, but this one. An
// autovacuum worker and a parallel worker (of a listed session) are not
// listed: they refuse nothing, and the copy ends them as it ends every
// other.
func (s *server) sessions(ctx context.Context, name string) ([]Session, error) {
	rows, err := s.conn.Query(ctx, `SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''), coalesce(host(client_addr), ''),
		coalesce(state, ''), xact_start
		FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()
		AND backend_type NOT IN ('autovacuum worker', 'parallel worker') ORDER BY pid`, name)
	if err != nil {
		return nil, fmt.Errorf("list the connections to %s: %w", name, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) {
		var x Session
		err := r.Scan(&x.PID, &x.User, &x.Application, &x.Client, &x.State, &x.XactStart)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list the connections to %s: %w", name, err)
	}
	return out, nil
}

// closeDB stops new connections to database name (ALLOW_CONNECTIONS
// false) and returns what opens it again, which runs even after Ctrl-C.
func (s *server) closeDB(ctx context.Context, name string) (func(), error) {
	if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+ident(name)+" ALLOW_CONNECTIONS false"); err != nil {
		return nil, fmt.Errorf("close database %s to new connections: %w", name, err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_, _ = s.conn.Exec(ctx, "ALTER DATABASE "+ident(name)+" ALLOW_CONNECTIONS true")
	}, nil
}

// holdAlone opens a connection to database name, closes the database to
// new connections and ends every other connection to it, waiting until
// they are gone (up to 10 s, polling every 100 ms): until the connection
// is closed, what it reads is all the database holds. It returns the
// connection and what opens the database again (which runs even after
// Ctrl-C); on an error the database is open again.
func (s *server) holdAlone(ctx context.Context, name string) (*pgx.Conn, func(), error) {
	conn, err := pgx.Connect(ctx, s.urlOf(name))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to database %s: %w", name, err)
	}
	reopen, err := s.closeDB(ctx, name)
	if err == nil {
		err = s.endOthers(ctx, name, conn.PgConn().PID())
	}
	if err != nil {
		if reopen != nil {
			reopen()
		}
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return conn, reopen, nil
}

// endOthers ends every connection to database name but this one and
// pid's, and waits until they are gone (up to 10 s, polling every 100
// ms): a terminated backend takes a moment to leave, and one that is
// committing may still commit.
func (s *server) endOthers(ctx context.Context, name string, pid uint32) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left int
		err := s.conn.QueryRow(ctx, `SELECT count(pg_catalog.pg_terminate_backend(pid)) FROM pg_catalog.pg_stat_activity
			WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid() AND pid <> $2`, name, int64(pid)).Scan(&left)
		if err != nil {
			return fmt.Errorf("end the connections to %s: %w", name, err)
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("end the connections to %s: %d still there after 10 s", name, left)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// terminate ends every connection to database name but this one.
func (s *server) terminate(ctx context.Context, name string) error {
	_, err := s.conn.Exec(ctx, "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()", name)
	if err != nil {
		return fmt.Errorf("end the connections to %s: %w", name, err)
	}
	return nil
}

// inUse says whether err is PostgreSQL's "being accessed by other users"
// (a session ended a moment ago is still leaving).
func inUse(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == pgerrcode.ObjectInUse
}

// retryInUse runs f, ending the connections to name and running it again
// while it fails because name is in use: a terminated backend takes a
// moment to leave. It waits up to 10 seconds, polling every 100 ms.
func (s *server) retryInUse(ctx context.Context, name string, f func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := s.terminate(ctx, name); err != nil {
			return err
		}
		err := f()
		if err == nil || !inUse(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// dropDB drops database name (a template too), ending its connections,
// also after Ctrl-C, waiting up to a minute.
func (s *server) dropDB(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+ident(name)+" IS_TEMPLATE false"); err != nil {
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == pgerrcode.InvalidCatalogName {
			return nil // gone already
		}
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// tempName is database source's temporary name for a step (infix),
// within 63 bytes: tempPrefix(source, infix) and 8 random hex digits.
func tempName(source, infix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return tempPrefix(source, infix) + hex.EncodeToString(b)
}

// tempPrefix is what every temporary name of source's step infix starts
// with (source cut to fit, as tempName cuts it).
func tempPrefix(source, infix string) string {
	if len(source)+len(infix)+8 > maxIdent {
		source = source[:maxIdent-len(infix)-8]
	}
	return source + infix
}

// The temporary names' infixes. They are not restore's (_aidb_restore_,
// _aidb_old_), whose leftovers a restore drops.
const (
	// infixNew is a copy being made (a snapshot or clone before its
	// metadata is written and it is renamed to its name).
	infixNew = "_aidb_snew_"
	// infixResetNew is a reset's copy of the snapshot, before the swap.
	infixResetNew = "_aidb_rnew_"
	// infixResetOld is the database a reset replaced, before it was
	// dropped, by an aidb before 2026-12 (planRepair).
	infixResetOld = "_aidb_rold_"
)
