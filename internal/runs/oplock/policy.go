package oplock

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/runs/litter"
	"github.com/aidb/aidb/internal/store/folder"
)

// Databases is what the lock policy asks of the databases' lifecycle
// (*orchestrator.Orchestrator satisfies it).
type Databases interface {
	// RequireReady says whether db is up (nil) or not (an error).
	RequireReady(ctx context.Context, db compose.Database) error
	// ConnString is db's postgres:// URL from this host.
	ConnString(db compose.Database) string
}

// Request says which locks one operation takes.
type Request struct {
	// Op names the operation for whoever waits ("aidb restore").
	Op string
	// Databases are locked when they are up (a database that is not up is
	// skipped: nothing can operate on it, and the operation says so).
	Databases []compose.Database
	// Lifecycle says which databases are up and how to reach them; it may
	// be nil when Databases is empty.
	Lifecycle Databases
	// Folder is the backup folder, created when missing and locked; ""
	// takes no folder lock.
	Folder string
	// Timeout bounds each wait for another operation's lock.
	Timeout time.Duration
	// WaitDatabase and WaitFolder, if set, are told once per lock, with
	// the holder, when another operation holds it.
	WaitDatabase func(db, holder string)
	WaitFolder   func(holder string)
	// Litter, if set, is asked for the project's helper and throwaway
	// containers when clearing what killed runs left; nil clears the
	// folder only.
	Litter litter.Containers
	// Cleared, if set, is told what clearing found (see Take).
	Cleared func(litter.Report, error)
}

// Held is the locks one operation holds.
type Held struct {
	ctx      context.Context
	releases []func(context.Context)
}

// Release gives the locks up, the databases' first, also after Ctrl-C.
func (h *Held) Release() {
	for _, r := range h.releases {
		r(h.ctx)
	}
	h.releases = nil
}

// lockers take the two kinds of lock; unit tests replace them.
type lockers struct {
	database func(ctx context.Context, connString, op string, timeout time.Duration, onWait func(string)) (func(context.Context), error)
	folder   func(ctx context.Context, dir, op string, timeout time.Duration, onWait func(string)) (func(context.Context), error)
	ensure   func(dir string) error
	clear    func(ctx context.Context, opts litter.Options) (litter.Report, error)
}

var system = lockers{
	database: func(ctx context.Context, connString, op string, timeout time.Duration, onWait func(string)) (func(context.Context), error) {
		l, err := Database(ctx, connString, op, timeout, onWait)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) { _ = l.Release(ctx) }, nil
	},
	folder: func(ctx context.Context, dir, op string, timeout time.Duration, onWait func(string)) (func(context.Context), error) {
		l, err := Folder(ctx, dir, op, timeout, onWait)
		if err != nil {
			return nil, err
		}
		return func(context.Context) { _ = l.Release() }, nil
	},
	ensure: folder.Ensure,
	clear:  litter.Clear,
}

// Take takes an operation's locks: the operation lock of each database
// that is up, in name order (so two operations never wait for each other),
// then, with a Folder, the backup folder's lock; holding that, it clears
// what aidb runs killed before they finished left (package litter) and
// tells Cleared. A clearing that fails is told, not returned: the
// operation goes on. On an error every lock taken is given up again.
// Each wait ends after req.Timeout.
func Take(ctx context.Context, req Request) (*Held, error) {
	return system.take(ctx, req)
}

// wentDown says a database's lock failed because the database stopped
// between the readiness check and the lock (its server ended the session):
// it is skipped as one that was not up, so the operation's step for that
// database says it is down, and the other databases go on. A busy lock,
// Ctrl-C and a database still up are errors of the operation.
func wentDown(ctx context.Context, lc Databases, db compose.Database, err error) bool {
	var busy *BusyError
	if errors.As(err, &busy) || ctx.Err() != nil {
		return false
	}
	return lc.RequireReady(ctx, db) != nil
}

func (k lockers) take(ctx context.Context, req Request) (*Held, error) {
	h := &Held{ctx: context.WithoutCancel(ctx)}
	sorted := slices.Clone(req.Databases)
	slices.SortFunc(sorted, func(x, y compose.Database) int { return strings.Compare(x.Name, y.Name) })
	for _, db := range sorted {
		if req.Lifecycle.RequireReady(ctx, db) != nil {
			continue
		}
		var onWait func(string)
		if req.WaitDatabase != nil {
			onWait = func(holder string) { req.WaitDatabase(db.Name, holder) }
		}
		release, err := k.database(ctx, req.Lifecycle.ConnString(db), req.Op, req.Timeout, onWait)
		if err != nil && wentDown(ctx, req.Lifecycle, db, err) {
			continue
		}
		if err != nil {
			h.Release()
			return nil, err
		}
		h.releases = append(h.releases, release)
	}
	if req.Folder == "" {
		return h, nil
	}
	if err := k.ensure(req.Folder); err != nil {
		h.Release()
		return nil, err
	}
	release, err := k.folder(ctx, req.Folder, req.Op, req.Timeout, req.WaitFolder)
	if err != nil {
		h.Release()
		return nil, err
	}
	h.releases = append(h.releases, release)
	rep, err := k.clear(ctx, litter.Options{Dir: req.Folder, Containers: req.Litter})
	if req.Cleared != nil {
		req.Cleared(rep, err)
	}
	return h, nil
}
