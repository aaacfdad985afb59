package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/aidb/aidb/internal/fault"
)

// DefaultMaxClones is how many clones of a database may exist at once
// unless asked otherwise: each is a whole copy on the database's server.
const DefaultMaxClones = 20

// CloneRequest asks for a database made from a snapshot, for a test.
type CloneRequest struct {
	Target Target
	// From names the snapshot; empty: the newest one asked for.
	From string
	// Name is the clone's name; empty: "t" and 8 random hex digits.
	Name string
	// TTL is how long the clone may live before aidb clone prune (and
	// the next clone) removes it; 0 for ever.
	TTL time.Duration
	// Max is how many clones of the database may exist at once (0:
	// DefaultMaxClones).
	Max      int
	Strategy string
	Now      func() time.Time
}

// CloneResult is a clone made.
type CloneResult struct {
	Clone Copy `json:"clone"`
	// URL is the clone's postgres:// URL (with its password).
	URL string `json:"url"`
	// Pruned are expired clones removed first.
	Pruned  []string `json:"pruned"`
	Repairs []string `json:"repairs"`
}

// LimitError refuses a clone beyond the limit.
type LimitError struct {
	Database string
	Max      int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s has %d clones, the limit: remove some first (aidb clone rm NAME; aidb clone list shows them), or raise the limit with --max", e.Database, e.Max)
}

// Kind is bad input: nothing was made.
func (e *LimitError) Kind() fault.Kind { return fault.Invalid }

// Clone makes a new database from a snapshot on the same server and
// returns its URL. Expired clones are removed first; a clone beyond Max
// is refused (LimitError). The clone gets the snapshot's owner, and its
// metadata (source, snapshot, time, TTL, migration version, the
// snapshot's fingerprint) as its comment.
func Clone(ctx context.Context, req CloneRequest) (CloneResult, error) {
	var res CloneResult
	s, repairs, err := connectRepaired(ctx, req.Target)
	res.Repairs = repairs
	if err != nil {
		return res, err
	}
	defer s.close(ctx)
	now := clock(req.Now)
	if res.Pruned, err = s.prune(ctx, now); err != nil {
		return res, err
	}
	name := req.Name
	if name == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		name = "t" + hex.EncodeToString(b)
	}
	if err := s.roomFor(ctx, name, req.Max); err != nil {
		return res, err
	}
	snaps, err := s.copies(ctx, KindSnapshot)
	if err != nil {
		return res, err
	}
	from, err := pick(snaps, req.From, false, req.Target.Name)
	if err != nil {
		return res, err
	}
	if res.Clone, _, err = s.copy(ctx, from.DBName, cloneMeta(from, name, now, req.TTL), req.Strategy, func() {}); err != nil {
		return res, err
	}
	res.URL = s.urlOf(res.Clone.DBName)
	return res, nil
}

// roomFor refuses a clone called name when the name is invalid or taken,
// or when the database has max clones already (0: DefaultMaxClones).
func (s *server) roomFor(ctx context.Context, name string, max int) error {
	if err := s.freeName(ctx, KindClone, name); err != nil {
		return err
	}
	clones, err := s.copies(ctx, KindClone)
	if err != nil {
		return err
	}
	if max <= 0 {
		max = DefaultMaxClones
	}
	if len(clones) >= max {
		return &LimitError{Database: s.t.Name, Max: max}
	}
	return nil
}

// cloneMeta is the metadata of a clone called name made from snapshot
// from at now, living ttl (0: until removed): the snapshot's, with the
// clone's kind, name, source snapshot, time and TTL.
func cloneMeta(from Copy, name string, now time.Time, ttl time.Duration) Meta {
	m := from.Meta
	m.Kind, m.Name, m.From, m.Auto, m.Created = KindClone, name, from.Name, "", now.UTC()
	m.TTL, m.Expires = "", nil
	if ttl > 0 {
		exp := now.Add(ttl).UTC()
		m.TTL, m.Expires = ttl.String(), &exp
	}
	return m
}

// prune drops the clones whose TTL ran out at now; it returns their names.
func (s *server) prune(ctx context.Context, now time.Time) ([]string, error) {
	clones, err := s.copies(ctx, KindClone)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range clones {
		if !c.Expired(now) {
			continue
		}
		if err := s.dropDB(ctx, c.DBName); err != nil {
			return out, err
		}
		out = append(out, c.Name)
	}
	return out, nil
}

// Prune removes the database's clones whose TTL ran out; it returns their
// names and the repairs made first.
func Prune(ctx context.Context, t Target, now time.Time) (pruned, repairs []string, err error) {
	s, repairs, err := connectRepaired(ctx, t)
	if err != nil {
		return nil, repairs, err
	}
	defer s.close(ctx)
	pruned, err = s.prune(ctx, now)
	return pruned, repairs, err
}

// List lists the database's snapshots or clones (kind; empty: both),
// oldest first.
func List(ctx context.Context, t Target, kind Kind) ([]Copy, error) {
	s, err := connect(ctx, t)
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	return s.copies(ctx, kind)
}

// Remove drops the database's snapshot or clone (kind) called name,
// ending the connections to a clone. It returns false when the database
// has none of that name.
func Remove(ctx context.Context, t Target, kind Kind, name string) (bool, error) {
	s, err := connect(ctx, t)
	if err != nil {
		return false, err
	}
	defer s.close(ctx)
	cs, err := s.copies(ctx, kind)
	if err != nil {
		return false, err
	}
	for _, c := range cs {
		if c.Name == name {
			if err := s.dropDB(ctx, c.DBName); err != nil {
				return false, fmt.Errorf("remove %s %s of %s: %w", kind, name, t.Name, err)
			}
			return true, nil
		}
	}
	return false, nil
}
