package snapshot

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// action is one step of a repair.
type action struct {
	// drop or rename (name back to the database's own name).
	op   string
	name string
	why  string
}

// planRepair says what to do with the temporary databases (names) that
// killed snapshot, clone and reset runs of database source left, given
// whether source itself exists. Only renames in one transaction ever
// replace source, so a killed run leaves one of:
//   - a copy being made (_aidb_snew_): incomplete work, dropped;
//   - a reset's copy of its snapshot (_aidb_rnew_), not swapped in:
//     dropped (the database and the snapshot are whole);
//   - a replaced database (_aidb_rold_) that an aidb before 2026-12
//     renamed away and had not dropped yet (it kept a copy as a snapshot
//     before it started; a reset now renames the database to that
//     snapshot in the swap itself): dropped; had source vanished (it
//     cannot, by the swap's transaction, but a person might have dropped
//     it), the newest one is renamed back instead.
func planRepair(source string, names []string, sourceExists bool) []action {
	var out []action
	slices.Sort(names)
	olds := []string{}
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, tempPrefix(source, infixNew)):
			out = append(out, action{"drop", n, "a snapshot or clone a killed run did not finish"})
		case strings.HasPrefix(n, tempPrefix(source, infixResetNew)):
			out = append(out, action{"drop", n, "the copy a killed reset had not swapped in (" + source + " was not replaced)"})
		case strings.HasPrefix(n, tempPrefix(source, infixResetOld)):
			olds = append(olds, n)
		}
	}
	for i, n := range olds {
		if !sourceExists && i == len(olds)-1 {
			out = append(out, action{"rename", n, "the database a killed reset had renamed away; " + source + " was missing"})
			continue
		}
		out = append(out, action{"drop", n, "the database a killed reset had replaced (its reset kept it as a snapshot)"})
	}
	return out
}

// repair finds and clears what killed runs of this database left (see
// planRepair), and opens the database again if a killed run left it
// closed to connections. It returns a line per repair, for people. The
// caller holds the database's operation lock: no other run is using
// these names.
func (s *server) repair(ctx context.Context) ([]string, error) {
	rows, err := s.conn.Query(ctx, `SELECT datname FROM pg_catalog.pg_database
		WHERE starts_with(datname, $1) OR starts_with(datname, $2) OR starts_with(datname, $3)`,
		tempPrefix(s.source, infixNew), tempPrefix(s.source, infixResetNew), tempPrefix(s.source, infixResetOld))
	if err != nil {
		return nil, fmt.Errorf("look for what killed runs left on %s: %w", s.t.Name, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look for what killed runs left on %s: %w", s.t.Name, err)
	}
	exists, err := s.exists(ctx, s.source)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, a := range planRepair(s.source, names, exists) {
		switch a.op {
		case "drop":
			if err := s.dropDB(ctx, a.name); err != nil {
				return done, fmt.Errorf("repair %s: %w", s.t.Name, err)
			}
			done = append(done, fmt.Sprintf("dropped %s: %s", a.name, a.why))
		case "rename":
			if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+ident(a.name)+" RENAME TO "+ident(s.source)); err != nil {
				return done, fmt.Errorf("repair %s: put %s back: %w", s.t.Name, a.name, err)
			}
			done = append(done, fmt.Sprintf("renamed %s back to %s: %s", a.name, s.source, a.why))
		}
	}
	var open bool
	if err := s.conn.QueryRow(ctx, "SELECT datallowconn FROM pg_catalog.pg_database WHERE datname = $1", s.source).Scan(&open); err == nil && !open {
		if _, err := s.conn.Exec(ctx, "ALTER DATABASE "+ident(s.source)+" ALLOW_CONNECTIONS true"); err != nil {
			return done, fmt.Errorf("repair %s: open it to connections again: %w", s.t.Name, err)
		}
		done = append(done, fmt.Sprintf("opened %s to connections again: a killed run had closed it", s.source))
	}
	return done, nil
}

// Repair clears what killed snapshot, reset and clone runs of the
// database left (every operation here does it first) and says what it
// did, one line each.
func Repair(ctx context.Context, t Target) ([]string, error) {
	s, repairs, err := connectRepaired(ctx, t)
	if err != nil {
		return repairs, err
	}
	s.close(ctx)
	return repairs, nil
}
