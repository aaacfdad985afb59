package snapshot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/internal/fault"
)

// DefaultKeepAuto is how many of the snapshots resets keep of what they
// replaced stay per database (the newest); older ones are removed after a
// reset.
const DefaultKeepAuto = 3

// ResetRequest asks to replace a database with a snapshot.
type ResetRequest struct {
	Target Target
	// To names the snapshot; empty: the newest one that was asked for
	// (not kept by a reset).
	To string
	// Undo resets to the newest snapshot a reset kept (what the last
	// reset replaced). To and Undo exclude each other.
	Undo bool
	// Yes ends the database's connections; without it any connection
	// refuses the reset.
	Yes bool
	// Strategy is StrategyAuto, StrategyFileCopy or StrategyWALLog.
	Strategy string
	// KeepAuto is how many snapshots kept by resets stay (0:
	// DefaultKeepAuto).
	KeepAuto int
	Now      func() time.Time
}

// ResetResult is a reset done.
type ResetResult struct {
	Database string `json:"database"`
	// Snapshot is what the database is now.
	Snapshot Copy `json:"snapshot"`
	// Kept is the snapshot of what it was (aidb reset --undo).
	Kept     Copy      `json:"kept"`
	Ended    []Session `json:"ended"`
	Strategy string    `json:"strategy"`
	// Removed are older snapshots kept by resets, removed (KeepAuto).
	Removed []string      `json:"removed"`
	Took    time.Duration `json:"took_ms"`
	Repairs []string      `json:"repairs"`
}

// DiffersError is a reset whose copy did not match its snapshot's
// fingerprint: nothing was replaced.
type DiffersError struct {
	Database, Snapshot string
	Diffs              []string
}

func (e *DiffersError) Error() string {
	return fmt.Sprintf("the copy of snapshot %s differs from its fingerprint (%s was not replaced):\n  %s",
		e.Snapshot, e.Database, strings.Join(e.Diffs, "\n  "))
}

// Kind is a found difference (exit 3).
func (e *DiffersError) Kind() fault.Kind { return fault.Differs }

// Reset replaces the database with a snapshot, in steps, each of which a
// kill leaves whole:
//  1. its connections are listed (refused without Yes), it is closed to
//     new ones and every other connection is ended, but one of aidb's
//     own, which fingerprints what it holds (the state --undo goes back
//     to) while
//  2. the snapshot is copied under a temporary name, given what the
//     snapshot's database had of its own (Props), and its fingerprint
//     compared with the snapshot's: a difference drops the copy and
//     stops (DiffersError), the database untouched;
//  3. in one transaction, the database is renamed to the snapshot the
//     reset keeps (auto-…, made a template that takes no connections,
//     with its metadata) and the copy renamed in.
//
// The replaced database itself is the kept snapshot: nothing is copied
// but the snapshot reset to. Any failure before step 3 opens the
// database again as it was.
func Reset(ctx context.Context, req ResetRequest) (ResetResult, error) {
	start := time.Now()
	s, snaps, res, err := openChecked(ctx, req)
	if err != nil {
		return res, err
	}
	defer s.close(ctx)
	to := res.Snapshot
	now := clock(req.Now)
	keep := pendingCopy{m: Meta{Kind: KindSnapshot, Name: autoName(now, func(n string) bool { return hasName(snaps, n) }),
		Source: s.source, Created: now.UTC(), Auto: AutoReset, Strategy: StrategyRename}}
	if keep.m.Props, err = s.props(ctx, s.source); err != nil {
		return res, err
	}
	alone, reopen, err := s.holdAlone(ctx, s.source)
	if err != nil {
		return res, err
	}
	swapped := false
	defer func() {
		if !swapped {
			reopen()
		}
	}()
	// The replaced database is fingerprinted on the one connection left to
	// it while the snapshot is copied in and checked: the two scans share
	// the cores.
	fpDone := make(chan error, 1)
	go func() {
		fp, err := fingerprintOn(ctx, alone)
		if err == nil {
			keep.fingerprinted(fp)
		}
		fpDone <- err
	}()
	tmp, err := s.prepare(ctx, to, req.Strategy, &res)
	if fpErr := <-fpDone; err == nil && fpErr != nil {
		err = fmt.Errorf("keep %s as it is before the reset: fingerprint: %w", req.Target.Name, fpErr)
	}
	_ = alone.Close(context.WithoutCancel(ctx))
	if err != nil {
		// Nothing was replaced: nothing to undo.
		if tmp != "" {
			_ = s.dropDB(ctx, tmp)
		}
		return res, err
	}
	if res.Kept, err = s.swap(ctx, tmp, keep.m); err != nil {
		_ = s.dropDB(ctx, tmp)
		return res, fmt.Errorf("swap snapshot %s in for %s: %w", to.Name, s.t.Name, err)
	}
	swapped = true
	res.Removed = s.pruneAuto(ctx, req.KeepAuto)
	res.Took = time.Since(start)
	return res, nil
}

// check chooses the snapshot to reset to among snaps (res.Snapshot) and
// lists the database's connections (res.Ended): any refuses the reset
// without req.Yes.
func (s *server) check(ctx context.Context, req ResetRequest, snaps []Copy, res *ResetResult) error {
	var err error
	if res.Snapshot, err = pick(snaps, req.To, req.Undo, req.Target.Name); err != nil {
		return err
	}
	if res.Ended, err = s.sessions(ctx, s.source); err != nil {
		return err
	}
	if len(res.Ended) > 0 && !req.Yes {
		return &SessionsError{Database: req.Target.Name, Op: "a reset", Sessions: res.Ended}
	}
	return nil
}

// pick chooses the snapshot to reset to among snaps (oldest first).
func pick(snaps []Copy, to string, undo bool, db string) (Copy, error) {
	if to != "" && undo {
		return Copy{}, fault.BadInput(errors.New("give --to NAME or --undo, not both"))
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		c := snaps[i]
		switch {
		case to != "" && c.Name == to:
			return c, nil
		case to == "" && undo && c.Auto == AutoReset:
			return c, nil
		case to == "" && !undo && c.Auto == "":
			return c, nil
		}
	}
	switch {
	case to != "":
		return Copy{}, fault.BadInput(fmt.Errorf("%s has no snapshot %s: aidb snapshot list %s shows those it has", db, to, db))
	case undo:
		return Copy{}, fault.BadInput(fmt.Errorf("%s has no reset to undo: no snapshot kept by a reset", db))
	}
	return Copy{}, fault.BadInput(fmt.Errorf("%s has no snapshot: take one with aidb snapshot %s", db, db))
}

func hasName(cs []Copy, name string) bool {
	for _, c := range cs {
		if c.Name == name {
			return true
		}
	}
	return false
}

// prepare copies snapshot to under a temporary name, gives it the
// snapshot's properties and checks it against the snapshot's fingerprint
// (DiffersError); it returns the copy's name, "" when none was made, for
// the caller to swap in or drop.
func (s *server) prepare(ctx context.Context, to Copy, strategy string, res *ResetResult) (string, error) {
	var err error
	if res.Strategy, err = s.strategyFor(ctx, to.DBName, strategy); err != nil {
		return "", err
	}
	tmp := tempName(s.source, infixResetNew)
	if err := s.createFrom(ctx, tmp, to.DBName, res.Strategy, to.Props.Owner); err != nil {
		return "", err
	}
	if err := s.giveProps(ctx, tmp, to.Props, true); err != nil {
		return tmp, err
	}
	got, err := takeFingerprint(ctx, s.urlOf(tmp))
	if err != nil {
		return tmp, fmt.Errorf("fingerprint the copy of snapshot %s: %w", to.Name, err)
	}
	gotProps, err := s.props(ctx, tmp)
	if err != nil {
		return tmp, err
	}
	if diffs := Compare(to.Meta, got, gotProps); len(diffs) > 0 {
		return tmp, &DiffersError{Database: s.t.Name, Snapshot: to.Name, Diffs: diffs}
	}
	return tmp, nil
}

// swap, in one transaction, renames the (closed) database to the
// snapshot m describes (given m as its comment and made a template that
// takes no connections) and database tmp in its place. It returns the
// snapshot.
func (s *server) swap(ctx context.Context, tmp string, m Meta) (Copy, error) {
	kept := dbName(KindSnapshot, s.source, m.Name)
	text, err := m.encode()
	if err != nil {
		return Copy{}, err
	}
	// Not cancelled: a swap the server commits after the client gave up
	// would be taken for a failed one. It takes milliseconds; retryInUse
	// bounds it to 10 s.
	swapCtx := context.WithoutCancel(ctx)
	err = s.retryInUse(swapCtx, s.source, func() error {
		return pgx.BeginFunc(swapCtx, s.conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(swapCtx, "ALTER DATABASE "+ident(s.source)+" RENAME TO "+ident(kept)); err != nil {
				return err
			}
			if _, err := tx.Exec(swapCtx, "ALTER DATABASE "+ident(tmp)+" RENAME TO "+ident(s.source)); err != nil {
				return err
			}
			// A template nobody can connect to, as every snapshot; the
			// settings it had as the database are in m.Props, and would
			// only be noise on a template.
			if _, err := tx.Exec(swapCtx, "ALTER DATABASE "+ident(kept)+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
				return err
			}
			if _, err := tx.Exec(swapCtx, "ALTER DATABASE "+ident(kept)+" RESET ALL"); err != nil {
				return err
			}
			var sql string
			if err := tx.QueryRow(swapCtx, "SELECT format('COMMENT ON DATABASE %I IS %L', $1::text, $2::text)", kept, text).Scan(&sql); err != nil {
				return err
			}
			_, err := tx.Exec(swapCtx, sql)
			return err
		})
	})
	if err != nil {
		return Copy{}, err
	}
	var size int64
	_ = s.conn.QueryRow(ctx, "SELECT pg_catalog.pg_database_size($1)", kept).Scan(&size)
	return Copy{Database: s.t.Name, DBName: kept, Size: size, Meta: m}, nil
}

// giveProps gives database name the properties p holds (its
// Alterations), the comment too unless withComment is false (a clone's
// comment is its metadata).
func (s *server) giveProps(ctx context.Context, name string, p Props, withComment bool) error {
	for _, a := range p.Alterations() {
		if !withComment && strings.HasPrefix(a.Head, "COMMENT ON") {
			continue
		}
		if _, err := s.conn.Exec(ctx, a.For(name)); err != nil {
			return fmt.Errorf("give database %s the snapshot's properties (%s): %w", name, a.For(name), err)
		}
	}
	return nil
}

// pruneAuto removes the snapshots kept by resets beyond the newest keep
// (0: DefaultKeepAuto); it returns their names. Failures are left for
// the next reset.
func (s *server) pruneAuto(ctx context.Context, keep int) []string {
	if keep <= 0 {
		keep = DefaultKeepAuto
	}
	snaps, err := s.copies(ctx, KindSnapshot)
	if err != nil {
		return nil
	}
	var removed []string
	for _, c := range autoBeyond(snaps, keep) {
		if s.dropDB(ctx, c.DBName) == nil {
			removed = append(removed, c.Name)
		}
	}
	return removed
}

// autoBeyond is what of snaps (oldest first) resets kept beyond the
// newest keep of them.
func autoBeyond(snaps []Copy, keep int) []Copy {
	var autos []Copy
	for _, c := range snaps {
		if c.Auto == AutoReset {
			autos = append(autos, c)
		}
	}
	if len(autos) <= keep {
		return nil
	}
	return autos[:len(autos)-keep]
}

// ResetAllResult is a reset of several databases.
type ResetAllResult struct {
	// Resets are the resets made, in the targets' order; a reset that
	// failed is there too, for the repairs it made first.
	Resets []ResetResult
	// Undone are the databases reset and then put back (to the snapshot
	// their reset kept) because a later one failed.
	Undone []string
}

// ResetAll resets each of targets as req asks, all or none. Every target
// is checked first (its snapshot chosen, its connections listed), so a
// refusal for one changes none; when a reset fails after others were
// made, those are undone (each reset to the snapshot it kept, even after
// Ctrl-C), the latest first. The error names the failed reset and any
// undo that failed too.
func ResetAll(ctx context.Context, req ResetRequest, targets []Target) (ResetAllResult, error) {
	var out ResetAllResult
	for _, t := range targets {
		r := req
		r.Target = t
		res, err := checkReset(ctx, r)
		if err != nil {
			out.Resets = append(out.Resets, res)
			return out, fmt.Errorf("reset %s: %w", t.Name, err)
		}
	}
	for i, t := range targets {
		r := req
		r.Target = t
		res, err := Reset(ctx, r)
		out.Resets = append(out.Resets, res)
		if err == nil {
			continue
		}
		errs := []error{fmt.Errorf("reset %s: %w", t.Name, err)}
		undo := ResetRequest{Undo: true, Yes: true, Strategy: req.Strategy, KeepAuto: req.KeepAuto, Now: req.Now}
		for j := i - 1; j >= 0; j-- {
			undo.Target = targets[j]
			if _, uerr := Reset(context.WithoutCancel(ctx), undo); uerr != nil {
				errs = append(errs, fmt.Errorf("put %s back as it was before the reset: %w (aidb reset %s --undo)", targets[j].Name, uerr, targets[j].Name))
				continue
			}
			out.Undone = append(out.Undone, targets[j].Name)
		}
		return out, errors.Join(errs...)
	}
	return out, nil
}

// checkReset is what Reset checks before it changes anything: the
// snapshot to reset to and the connections (refused without Yes).
func checkReset(ctx context.Context, req ResetRequest) (ResetResult, error) {
	s, _, res, err := openChecked(ctx, req)
	if err == nil {
		s.close(ctx)
	}
	return res, err
}

// openChecked connects to the target's server (repairing first), reads
// its snapshots and checks the reset (check); on an error the server is
// closed again.
func openChecked(ctx context.Context, req ResetRequest) (*server, []Copy, ResetResult, error) {
	res := ResetResult{Database: req.Target.Name}
	s, repairs, err := connectRepaired(ctx, req.Target)
	res.Repairs = repairs
	if err != nil {
		return nil, nil, res, err
	}
	snaps, err := s.copies(ctx, KindSnapshot)
	if err == nil {
		err = s.check(ctx, req, snaps, &res)
	}
	if err != nil {
		s.close(ctx)
		return nil, nil, res, err
	}
	return s, snaps, res, nil
}
