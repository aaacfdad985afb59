// Package litter clears what aidb runs killed before they finished (kill
// -9, a crash, a lost machine) left behind: partial files and pipes in the
// backup folder, and the project's helper and throwaway containers.
//
// Each of those names the process that made it (package owner: file names,
// the aidb.owner label). Clear removes only the work of owners that are
// certainly gone: on this host (hostname and pid namespace), of an earlier
// boot, or whose pid no longer runs or runs another process. Work of live
// runs, of other hosts and of runs whose owner cannot be told stays.
// Whatever an older aidb, which named no owner, left is listed, not
// removed: whose it is cannot be told.
package litter

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/runs/owner"
)

// Containers is what Clear needs of the engine (pgtools.Runner).
type Containers interface {
	WorkContainers(ctx context.Context) ([]pgtools.WorkContainer, error)
	RemoveWorkContainer(ctx context.Context, id string) error
}

// Options say where to look.
type Options struct {
	// Dir is the backup folder.
	Dir string
	// Containers, if set, is asked for the project's helper and throwaway
	// containers; nil clears the folder only.
	Containers Containers
	// Self is this process (default owner.Self()), Procs this host's
	// process table (default owner.Local()).
	Self  owner.Owner
	Procs owner.Processes
}

// Left is what one dead run left, removed now.
type Left struct {
	Owner owner.Owner
	// Files are the partial files' names (in Dir), Pipes the pipes'.
	Files []string
	Pipes []string
	// Bytes is the partial files' size.
	Bytes int64
	// Containers are the containers' names, with their role.
	Containers []pgtools.WorkContainer
}

// Report is what Clear found.
type Report struct {
	// Removed is what dead runs left, one entry per run, oldest pid first.
	Removed []Left
	// UnownedFiles (paths) and UnownedContainers were left by an aidb
	// older than owner names: they stay.
	UnownedFiles      []string
	UnownedContainers []pgtools.WorkContainer
}

// Clear removes what dead runs left in opts.Dir and, with an engine, the
// project's containers that dead runs started. Containers go first (a
// dead run's helper may still hold its pipes). A failure to remove one
// thing does not stop the others; the errors are joined, and the report
// says what was removed.
func Clear(ctx context.Context, opts Options) (Report, error) {
	if opts.Self == (owner.Owner{}) {
		opts.Self = owner.Self()
	}
	if opts.Procs == nil {
		opts.Procs = owner.Local()
	}
	c := &clearing{opts: opts, runs: map[owner.Owner]*Left{}}
	if opts.Containers != nil {
		c.containers(ctx)
	}
	c.files()
	for _, l := range c.runs {
		c.rep.Removed = append(c.rep.Removed, *l)
	}
	slices.SortFunc(c.rep.Removed, func(a, b Left) int { return a.Owner.PID - b.Owner.PID })
	return c.rep, errors.Join(c.errs...)
}

// clearing is one Clear: what it removed of each dead run, what it
// reported, and the errors it met.
type clearing struct {
	opts Options
	rep  Report
	errs []error
	runs map[owner.Owner]*Left
}

// left is what run o left, as removed so far.
func (c *clearing) left(o owner.Owner) *Left {
	if c.runs[o] == nil {
		c.runs[o] = &Left{Owner: o}
	}
	return c.runs[o]
}

func (c *clearing) dead(o owner.Owner) bool {
	return owner.Judge(o, c.opts.Self, c.opts.Procs) == owner.Dead
}

// containers removes the project's work containers that dead runs started.
func (c *clearing) containers(ctx context.Context) {
	cs, err := c.opts.Containers.WorkContainers(ctx)
	if err != nil {
		c.errs = append(c.errs, err)
	}
	for _, ct := range cs {
		if ct.Owner == "" {
			c.rep.UnownedContainers = append(c.rep.UnownedContainers, ct)
			continue
		}
		o, err := owner.Parse(ct.Owner)
		if err != nil || !c.dead(o) {
			continue
		}
		if err := c.opts.Containers.RemoveWorkContainer(ctx, ct.ID); err != nil {
			c.errs = append(c.errs, err)
			continue
		}
		l := c.left(o)
		l.Containers = append(l.Containers, ct)
	}
}

// files removes the work files of dead runs in the backup folder.
func (c *clearing) files() {
	dir := c.opts.Dir
	des, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.errs = append(c.errs, fmt.Errorf("read backup folder %s: %w", dir, err))
	}
	for _, de := range des {
		name := de.Name()
		kind := workFile(name, de.Type())
		if kind == "" {
			continue
		}
		path := filepath.Join(dir, name)
		o, ok := owner.FromName(name)
		if !ok {
			c.rep.UnownedFiles = append(c.rep.UnownedFiles, path)
			continue
		}
		if !c.dead(o) {
			continue
		}
		var size int64
		if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
			size = info.Size()
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.errs = append(c.errs, fmt.Errorf("remove %s: %w", path, err))
			continue
		}
		l := c.left(o)
		if kind == "pipe" {
			l.Pipes = append(l.Pipes, name)
		} else {
			l.Files = append(l.Files, name)
			l.Bytes += size
		}
	}
}

// workFile says what a folder entry is if a run makes it while it works:
// "partial" (a file or pointer being written), "pipe" (a helper's pipe),
// "secret" (an older aidb's credentials file), or "" for anything else.
func workFile(name string, mode fs.FileMode) string {
	switch {
	case strings.HasSuffix(name, ".partial") && (mode.IsRegular() || mode&fs.ModeSymlink != 0):
		return "partial"
	case !strings.HasPrefix(name, ".aidb-"):
		return ""
	case strings.HasSuffix(name, ".fifo") && mode&fs.ModeNamedPipe != 0:
		return "pipe"
	case strings.HasSuffix(name, ".pgpass") && mode.IsRegular():
		return "secret"
	}
	return ""
}
