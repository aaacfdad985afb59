package snapshot

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/migrations"
)

// The CREATE DATABASE strategies (PostgreSQL 15 and later; before 15 every
// copy is a file copy and no strategy is named).
const (
	// StrategyAuto lets aidb choose (ChooseStrategy).
	StrategyAuto = ""
	// StrategyFileCopy copies the template's files, with a checkpoint
	// before and after.
	StrategyFileCopy = "FILE_COPY"
	// StrategyWALLog copies block by block through the WAL.
	StrategyWALLog = "WAL_LOG"
	// StrategyRename is no copy: the snapshot a reset keeps is the
	// database it replaced, renamed (Meta.Strategy only).
	StrategyRename = "RENAME"
)

// ParseStrategy reads --strategy: auto, file_copy or wal_log.
func ParseStrategy(s string) (string, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return StrategyAuto, nil
	case "file_copy", "file-copy":
		return StrategyFileCopy, nil
	case "wal_log", "wal-log":
		return StrategyWALLog, nil
	}
	return "", fmt.Errorf("strategy %q: give auto, file_copy or wal_log", s)
}

// fileCopyFrom is the size from which ChooseStrategy picks FILE_COPY.
const fileCopyFrom = 32 << 20

// ChooseStrategy is the strategy aidb copies a database of size bytes
// with on a server of version (server_version_num), when none is asked
// for: before PostgreSQL 15 there is no choice (""); from 15 on,
// FILE_COPY from 32 MB, WAL_LOG below. Measured on PostgreSQL 15 and 17
// here (docs/reference.md, "Snapshots and resets"): FILE_COPY was about
// 1.5-2x faster at 68 MB and 2x at 1 GB, since WAL_LOG writes every block
// twice (WAL and data file); below a few tens of MB, FILE_COPY's two
// checkpoints are the larger part. PostgreSQL 18's file_copy_method=clone
// (a reflink copy where the filesystem has them) would make FILE_COPY
// nearly free; 15 and 17 do not have it.
func ChooseStrategy(version int, size int64) string {
	if version < 150000 {
		return ""
	}
	if size >= fileCopyFrom {
		return StrategyFileCopy
	}
	return StrategyWALLog
}

// strategyFor is the strategy for copying database name: asked, or
// chosen (ChooseStrategy); "" before PostgreSQL 15.
func (s *server) strategyFor(ctx context.Context, name, asked string) (string, error) {
	var version int
	var size int64
	err := s.conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, pg_catalog.pg_database_size(d.oid)
		FROM pg_catalog.pg_database d WHERE d.datname = $1`, name).Scan(&version, &size)
	if err != nil {
		return "", fmt.Errorf("read the size of database %s: %w", name, err)
	}
	if version < 150000 {
		return "", nil
	}
	if asked != StrategyAuto {
		return asked, nil
	}
	return ChooseStrategy(version, size), nil
}

// CreateRequest asks for a snapshot of a database.
type CreateRequest struct {
	Target Target
	// Name is the snapshot's name; empty: the time (YYYYMMDD-HHMMSS, UTC).
	Name string
	// Yes ends connections that are in a transaction (rolling their work
	// back); without it such connections refuse the snapshot. Idle ones
	// are always ended (and named in the result).
	Yes bool
	// Strategy is StrategyAuto, StrategyFileCopy or StrategyWALLog.
	Strategy string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// CreateResult is a snapshot made.
type CreateResult struct {
	Snapshot Copy `json:"snapshot"`
	// Ended are the connections the snapshot ended.
	Ended []Session `json:"ended"`
	// Took is how long the copy took (the database was closed for it).
	Took    time.Duration `json:"copy_ms"`
	Repairs []string      `json:"repairs"`
}

// SessionsError refuses an operation that would end connections that
// were not allowed to be ended.
type SessionsError struct {
	Database string
	Op       string
	Sessions []Session
	// InTransaction: only connections in a transaction refused it.
	InTransaction bool
}

func (e *SessionsError) Error() string {
	what := "connected"
	if e.InTransaction {
		what = "in a transaction"
	}
	lines := make([]string, len(e.Sessions))
	for i, x := range e.Sessions {
		lines[i] = "  " + x.String()
	}
	return fmt.Sprintf("%s ends the connections to %s, and %d %s (nothing was changed):\n%s", e.Op, e.Database, len(e.Sessions), what, strings.Join(lines, "\n"))
}

// Kind makes it bad input: nothing changed, a flag lets it go ahead.
func (e *SessionsError) Kind() fault.Kind { return fault.Invalid }

// Create takes a snapshot of the database: its connections are ended
// (refused when one is in a transaction, unless Yes), new ones are
// refused while CREATE DATABASE … TEMPLATE copies it, and it is open
// again as soon as the copy is made (also after Ctrl-C). The copy is then
// fingerprinted, marked a template that takes no connections, given its
// metadata and renamed to its name: a run killed before that leaves a
// temporary database that the next operation drops.
func Create(ctx context.Context, req CreateRequest) (CreateResult, error) {
	var res CreateResult
	s, repairs, err := connectRepaired(ctx, req.Target)
	res.Repairs = repairs
	if err != nil {
		return res, err
	}
	defer s.close(ctx)
	now := clock(req.Now)
	name := req.Name
	if name == "" {
		name = now.UTC().Format("20060102-150405")
	}
	if err := s.freeName(ctx, KindSnapshot, name); err != nil {
		return res, err
	}
	sessions, err := s.sessions(ctx, s.source)
	if err != nil {
		return res, err
	}
	if busy := inTransaction(sessions); len(busy) > 0 && !req.Yes {
		return res, &SessionsError{Database: req.Target.Name, Op: "a snapshot", Sessions: busy, InTransaction: true}
	}
	res.Snapshot, res.Took, err = s.snapshot(ctx, name, "", req.Strategy, now)
	res.Ended = sessions
	return res, err
}

// snapshot closes the database to new connections, copies it into
// snapshot name (copy) and opens it again.
func (s *server) snapshot(ctx context.Context, name, auto, strategy string, now time.Time) (Copy, time.Duration, error) {
	reopen, err := s.closeDB(ctx, s.source)
	if err != nil {
		return Copy{}, 0, err
	}
	c, took, err := s.copy(ctx, s.source, Meta{Kind: KindSnapshot, Name: name, Source: s.source, Created: now.UTC(), Auto: auto}, strategy, reopen)
	reopen()
	return c, took, err
}

// freeName refuses a name that is invalid or taken.
func (s *server) freeName(ctx context.Context, kind Kind, name string) error {
	if err := ValidateName(kind, s.source, name); err != nil {
		return fault.BadInput(fmt.Errorf("%s of %s: %w", kind, s.t.Name, err))
	}
	taken, err := s.exists(ctx, dbName(kind, s.source, name))
	if err != nil {
		return err
	}
	if taken {
		return fault.BadInput(fmt.Errorf("%s %s of %s exists: choose another --name, or remove it first (aidb %s rm %s)", kind, name, s.t.Name, kind, name))
	}
	return nil
}

func inTransaction(ss []Session) []Session {
	var out []Session
	for _, x := range ss {
		if x.InTransaction() {
			out = append(out, x)
		}
	}
	return out
}

func clock(now func() time.Time) time.Time {
	if now == nil {
		return time.Now()
	}
	return now()
}

// copy makes database dbName(m.Kind, source, m.Name) from template: under
// a temporary name first (CREATE DATABASE … TEMPLATE, ending the
// template's connections until it succeeds), then copied is called (the
// template is no longer needed), the copy is fingerprinted (snapshots;
// a clone takes its snapshot's fingerprint from m, and is given its
// properties but the comment), given m as its comment, made a template
// that takes no connections (snapshots), and renamed. Any failure drops
// the temporary database. It returns how long CREATE DATABASE took.
func (s *server) copy(ctx context.Context, template string, m Meta, strategy string, copied func()) (_ Copy, took time.Duration, retErr error) {
	p, took, err := s.startCopy(ctx, template, m, strategy)
	if err != nil {
		return Copy{}, took, err
	}
	copied()
	defer func() {
		if retErr != nil {
			_ = s.dropDB(ctx, p.tmp)
		}
	}()
	if p.m.Kind == KindSnapshot {
		fp, err := takeFingerprint(ctx, s.urlOf(p.tmp))
		if err != nil {
			return Copy{}, took, fmt.Errorf("fingerprint the snapshot of %s: %w", s.t.Name, err)
		}
		p.fingerprinted(fp)
	} else if err := s.giveProps(ctx, p.tmp, p.m.Props, false); err != nil {
		return Copy{}, took, err
	}
	c, err := s.finishCopy(ctx, p)
	return c, took, err
}

// pendingCopy is a copy made under its temporary name, not yet finished.
type pendingCopy struct {
	tmp string
	m   Meta
}

// fingerprinted records the copy's fingerprint (and so its migration
// version) in its metadata.
func (p *pendingCopy) fingerprinted(fp fingerprint.Fingerprint) {
	p.m.Fingerprint, p.m.MigrationVersion = fp, fp.MigrationVersion
}

// startCopy is copy's first part: the strategy chosen, a snapshot's
// properties read from template, and the copy made under a temporary
// name. It returns how long CREATE DATABASE took.
func (s *server) startCopy(ctx context.Context, template string, m Meta, strategy string) (pendingCopy, time.Duration, error) {
	var err error
	if m.Strategy, err = s.strategyFor(ctx, template, strategy); err != nil {
		return pendingCopy{}, 0, err
	}
	if m.Kind == KindSnapshot {
		if m.Props, err = s.props(ctx, template); err != nil {
			return pendingCopy{}, 0, err
		}
	}
	tmp := tempName(s.source, infixNew)
	start := time.Now()
	if err := s.createFrom(ctx, tmp, template, m.Strategy, m.Props.Owner); err != nil {
		return pendingCopy{}, 0, err
	}
	return pendingCopy{tmp: tmp, m: m}, time.Since(start), nil
}

// finishCopy is copy's last part: the metadata written as the comment,
// a snapshot made a template that takes no connections, and the copy
// renamed to its name. The caller drops p.tmp when it fails.
func (s *server) finishCopy(ctx context.Context, p pendingCopy) (Copy, error) {
	if err := s.setComment(ctx, p.tmp, p.m); err != nil {
		return Copy{}, err
	}
	if p.m.Kind == KindSnapshot {
		// A template nobody can connect to: nothing changes it, and no
		// session blocks a reset or clone from it.
		if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+ident(p.tmp)+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
			return Copy{}, fmt.Errorf("make the snapshot of %s a template: %w", s.t.Name, err)
		}
	}
	final := dbName(p.m.Kind, s.source, p.m.Name)
	if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+ident(p.tmp)+" RENAME TO "+ident(final)); err != nil {
		return Copy{}, fmt.Errorf("name the %s %s of %s: %w", p.m.Kind, p.m.Name, s.t.Name, err)
	}
	var size int64
	_ = s.conn.QueryRow(ctx, "SELECT pg_catalog.pg_database_size($1)", final).Scan(&size)
	return Copy{Database: s.t.Name, DBName: final, Size: size, Meta: p.m}, nil
}

// createFrom runs CREATE DATABASE name TEMPLATE template [STRATEGY]
// [OWNER], ending the template's connections until it is let (up to 10
// s). It is not cancelled mid-way: a copy the server finishes after the
// client gave up is a leftover the next run drops, not a half copy.
func (s *server) createFrom(ctx context.Context, name, template, strategy, owner string) error {
	sql := "CREATE DATABASE " + ident(name) + " TEMPLATE " + ident(template)
	if strategy != "" {
		sql += " STRATEGY " + strategy // one of two constants
	}
	if owner != "" {
		sql += " OWNER " + ident(owner)
	}
	err := s.retryInUse(ctx, template, func() error {
		_, err := s.conn.Exec(context.WithoutCancel(ctx), sql)
		return err
	})
	if err != nil {
		return fmt.Errorf("copy database %s: %w", template, err)
	}
	return nil
}

// setComment writes m as database name's comment (quoted by the server's
// format(), never by Go).
func (s *server) setComment(ctx context.Context, name string, m Meta) error {
	text, err := m.encode()
	if err != nil {
		return err
	}
	return s.comment(ctx, name, text)
}

// comment sets database name's comment; "" removes it.
func (s *server) comment(ctx context.Context, name, text string) error {
	var sql string
	if err := s.conn.QueryRow(ctx, "SELECT format('COMMENT ON DATABASE %I IS %L', $1::text, nullif($2::text, ''))", name, text).Scan(&sql); err != nil {
		return fmt.Errorf("write the comment of database %s: %w", name, err)
	}
	if _, err := s.conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("write the comment of database %s: %w", name, err)
	}
	return nil
}

// takeFingerprint describes the database at url as backup manifests do
// (fingerprintOn).
func takeFingerprint(ctx context.Context, url string) (fingerprint.Fingerprint, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fingerprint.Fingerprint{}, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return fingerprintOn(ctx, conn)
}

// fingerprintOn describes the database conn is connected to as backup
// manifests do: schema (with owners and privileges), every table's rows
// and content hash, sequences and the migration version, in one
// read-only snapshot.
func fingerprintOn(ctx context.Context, conn *pgx.Conn) (fingerprint.Fingerprint, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fingerprint.Fingerprint{}, err
	}
	// Read-only: the rollback only ends the snapshot of the read.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fingerprint.Prepare(ctx, tx); err != nil {
		return fingerprint.Fingerprint{}, err
	}
	table, err := migrations.FindTable(ctx, tx)
	if err != nil {
		return fingerprint.Fingerprint{}, err
	}
	return fingerprint.Take(ctx, tx, fingerprint.Options{Data: true, MigrationTable: table, Privileges: fingerprint.WithOwners})
}
