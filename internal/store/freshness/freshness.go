// Package freshness says whether each database has a backup recent enough
// to restore from, and verified where that is asked: what a monitor, a
// cron job or a CI schedule checks to learn that the nightly backup
// stopped. It reads the catalog (the newest intact full backup of each
// database) and the verification log; it changes nothing.
package freshness

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/archive/verifylog"
	"github.com/aidb/aidb/internal/fault"
)

// Catalog is what a check reads of the backups (catalog.Catalog).
type Catalog interface {
	Newest(ctx context.Context, db string, kind backupfile.Kind, match func(manifest.Manifest) bool) (string, manifest.Manifest, error)
	Verifications(ctx context.Context) (verifylog.Log, error)
}

// Policy is what counts as fresh.
type Policy struct {
	// MaxAge is the oldest a database's newest backup may be.
	MaxAge time.Duration
	// Verified asks, beyond that, for a backup younger than MaxAge that a
	// verification found equal to its manifest.
	Verified bool
}

// Status is one database's backups as a check sees them.
type Status struct {
	Database string `json:"database"`
	// Newest is the newest intact full backup (not a safety backup) and
	// when it was created; empty when there is none.
	Newest  string     `json:"newest,omitempty"`
	Created *time.Time `json:"created,omitempty"`
	// AgeSeconds is Newest's age.
	AgeSeconds float64 `json:"age_s,omitempty"`
	// LastVerified is when Newest was last verified and what was found.
	LastVerified *verifylog.Record `json:"last_verified,omitempty"`
	// NewestVerified is the newest intact full backup found equal by a
	// verification, and when it was created (Policy.Verified only).
	NewestVerified        string     `json:"newest_verified,omitempty"`
	NewestVerifiedCreated *time.Time `json:"newest_verified_created,omitempty"`
	Fresh                 bool       `json:"fresh"`
	// Problem says why the database is not fresh.
	Problem string `json:"problem,omitempty"`
}

// StaleError names the databases without a fresh backup (fault.Stale).
type StaleError struct{ Stale []Status }

func (e *StaleError) Error() string {
	parts := make([]string, len(e.Stale))
	for i, s := range e.Stale {
		parts[i] = s.Database + ": " + s.Problem
	}
	return "no fresh backup of " + strings.Join(parts, "; ")
}

// Kind is fault.Stale.
func (e *StaleError) Kind() fault.Kind { return fault.Stale }

// Check looks at each database's backups at now; it returns a StaleError
// when one is not fresh, beside every database's status.
func Check(ctx context.Context, c Catalog, dbs []string, p Policy, now time.Time) ([]Status, error) {
	if p.MaxAge <= 0 {
		return nil, fault.BadInput(fmt.Errorf("max age %v: give a positive duration, e.g. 26h for a nightly backup", p.MaxAge))
	}
	log, err := c.Verifications(ctx)
	if err != nil {
		return nil, err
	}
	userBackup := func(m manifest.Manifest) bool { return m.Safety == nil }
	out := make([]Status, 0, len(dbs))
	var stale []Status
	for _, db := range dbs {
		s := Status{Database: db}
		path, m, err := c.Newest(ctx, db, backupfile.Full, userBackup)
		if err != nil {
			return nil, err
		}
		if path != "" {
			created := m.Created.UTC()
			s.Newest, s.Created, s.AgeSeconds = path, &created, now.Sub(created).Seconds()
			if r, ok := log.Last(m.File, m.SHA256); ok {
				s.LastVerified = &r
			}
		}
		if p.Verified && path != "" {
			vpath, vm, err := c.Newest(ctx, db, backupfile.Full, func(m manifest.Manifest) bool {
				// The last verdict on those bytes: a verification that found
				// a difference since (a manifest edited, a server changed)
				// outweighs an earlier equal one; one that could not run
				// (no key, no container) says nothing of them.
				r, ok := log.LastVerdict(m.File, m.SHA256)
				return userBackup(m) && ok && r.Outcome == verifylog.Equal
			})
			if err != nil {
				return nil, err
			}
			if vpath != "" {
				created := vm.Created.UTC()
				s.NewestVerified, s.NewestVerifiedCreated = vpath, &created
			}
		}
		s.Problem = problem(s, p, now)
		s.Fresh = s.Problem == ""
		if !s.Fresh {
			stale = append(stale, s)
		}
		out = append(out, s)
	}
	if len(stale) > 0 {
		return out, &StaleError{Stale: stale}
	}
	return out, nil
}

// problem says why s is not fresh under p, or "".
func problem(s Status, p Policy, now time.Time) string {
	if s.Created == nil {
		return "no intact full backup"
	}
	if age := now.Sub(*s.Created); age > p.MaxAge {
		return fmt.Sprintf("the newest backup is %s old (max %s)", Age(age), Age(p.MaxAge))
	}
	if !p.Verified {
		return ""
	}
	if s.NewestVerifiedCreated == nil {
		return "no backup was verified equal to its manifest"
	}
	if age := now.Sub(*s.NewestVerifiedCreated); age > p.MaxAge {
		return fmt.Sprintf("the newest verified backup is %s old (max %s)", Age(age), Age(p.MaxAge))
	}
	return ""
}

// Age is d as people say it: 45s, 12m, 3h5m, 2d4h.
func Age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		h := int(d.Hours())
		if m := int(d.Minutes()) % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", h, m)
		}
		return fmt.Sprintf("%dh", h)
	}
	days := int(d.Hours()) / 24
	if h := int(d.Hours()) % 24; h != 0 {
		return fmt.Sprintf("%dd%dh", days, h)
	}
	return fmt.Sprintf("%dd", days)
}

// Union is several catalogs (the backup folder and the repository) as one:
// the newest of their newest backups, and every verification they record.
func Union(cs ...Catalog) Catalog { return union(cs) }

type union []Catalog

func (u union) Newest(ctx context.Context, db string, kind backupfile.Kind, match func(manifest.Manifest) bool) (string, manifest.Manifest, error) {
	var best string
	var bm manifest.Manifest
	for _, c := range u {
		path, m, err := c.Newest(ctx, db, kind, match)
		if err != nil {
			return "", manifest.Manifest{}, err
		}
		if path != "" && (best == "" || m.Created.After(bm.Created)) {
			best, bm = path, m
		}
	}
	return best, bm, nil
}

func (u union) Verifications(ctx context.Context) (verifylog.Log, error) {
	var out verifylog.Log
	for _, c := range u {
		l, err := c.Verifications(ctx)
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
	}
	return out, nil
}
