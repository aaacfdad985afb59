package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aidb/aidb/backupdir"
	"github.com/aidb/aidb/exitcode"
	"github.com/aidb/aidb/manifest"
)

// Listed is one backup file with what its manifest says of it.
type Listed struct {
	File        string                `json:"file"`
	Database    string                `json:"database"`
	Kind        backupdir.Kind        `json:"kind"`
	Compression backupdir.Compression `json:"compression"`
	Created     time.Time             `json:"created"`
	Size        int64                 `json:"size"`
	// Manifest is false for a file without one (a plain pg_dump file).
	Manifest bool `json:"manifest"`
	// ChecksumOK says the file's size and sha256 match its manifest.
	ChecksumOK bool `json:"checksum_ok"`
	// Problem says what is wrong when ChecksumOK is false.
	Problem string `json:"problem,omitempty"`
	Latest  bool   `json:"latest"`
}

// List describes every backup file in dir, newest first, checking each
// against its manifest (it reads every file once).
func List(dir string) ([]Listed, error) {
	entries, err := backupdir.List(dir)
	if err != nil {
		return nil, err
	}
	latest := latestTargets(dir)
	out := make([]Listed, 0, len(entries))
	for _, e := range entries {
		l := Listed{File: e.Path, Database: e.Database, Kind: e.Kind, Compression: e.Compression, Created: e.Created, Size: e.Size, Latest: latest[e.Path]}
		m, err := manifest.Read(e.Path)
		switch {
		case errors.Is(err, manifest.ErrMissing):
			l.Problem = "no manifest: not made by aidb, or its manifest was removed"
		case err != nil:
			l.Problem = err.Error()
		default:
			l.Manifest = true
			if err := manifest.Check(e.Path, m); err != nil {
				l.Problem = err.Error()
			} else {
				l.ChecksumOK = true
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// latestTargets maps the files the latest pointers in dir point at.
func latestTargets(dir string) map[string]bool {
	m := map[string]bool{}
	des, err := os.ReadDir(dir)
	if err != nil {
		return m
	}
	for _, de := range des {
		if de.Type()&os.ModeSymlink == 0 || !strings.Contains(de.Name(), "-latest.sql") {
			continue
		}
		if target, err := os.Readlink(filepath.Join(dir, de.Name())); err == nil {
			m[filepath.Join(dir, target)] = true
		}
	}
	return m
}

// PrunePlan is what a prune keeps and removes.
type PrunePlan struct {
	Keep   []backupdir.Entry `json:"keep"`
	Remove []backupdir.Entry `json:"remove"`
}

// PlanPrune keeps the newest keepLast backups of each database and kind and
// plans to remove the older ones (with their manifests). keepLast must be at
// least 1: a prune never removes every backup of a database.
func PlanPrune(dir string, keepLast int) (PrunePlan, error) {
	if keepLast < 1 {
		return PrunePlan{}, exitcode.BadInput(fmt.Errorf("--keep-last %d would remove every backup of a database; keep at least 1", keepLast))
	}
	entries, err := backupdir.List(dir)
	if err != nil {
		return PrunePlan{}, err
	}
	latest := latestTargets(dir)
	seen := map[string]int{}
	var plan PrunePlan
	for _, e := range entries { // newest first
		key := e.Database + "/" + string(e.Kind)
		seen[key]++
		if seen[key] <= keepLast || latest[e.Path] {
			plan.Keep = append(plan.Keep, e)
		} else {
			plan.Remove = append(plan.Remove, e)
		}
	}
	sort.SliceStable(plan.Remove, func(i, j int) bool { return plan.Remove[i].Created.Before(plan.Remove[j].Created) })
	return plan, nil
}

// Prune removes what the plan says, each file with its manifest.
func Prune(plan PrunePlan) error {
	var errs []error
	for _, e := range plan.Remove {
		for _, p := range []string{manifest.PathFor(e.Path), e.Path} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
