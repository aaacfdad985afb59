package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// verifyAllFiles is how many small backups verify_all verifies
// (AIDB_BENCH_VERIFY_FILES, default 20; the CI smoke run takes fewer).
func verifyAllFiles() (int, error) {
	n, err := strconv.Atoi(envOr("AIDB_BENCH_VERIFY_FILES", "20"))
	if err != nil || n < 2 {
		return 0, fmt.Errorf("AIDB_BENCH_VERIFY_FILES=%q: a number of at least 2", os.Getenv("AIDB_BENCH_VERIFY_FILES"))
	}
	return n, nil
}

// verifyAll is aidb verify --all of 20 small full backups (rulesdb seeded
// with 100 rules, about 300 kB each, in a project and backup folder of
// their own) against 20 runs of aidb verify, one per file: each file in a
// fresh throwaway container, as every file was before throwaways served
// several. It measures what a CI restore-validation job of many backups
// pays per file beyond its restore.
func (b *bench) verifyAll() (Measure, error) {
	n, err := verifyAllFiles()
	if err != nil {
		return Measure{}, err
	}
	s := *b
	s.project = b.project + "-va"
	dir := filepath.Join(b.dir, "verify-all")
	s.env = append(slices.Clone(b.env), "AIDB_PROJECT="+s.project, "RULESDB_PORT="+strconv.Itoa(freePort()),
		"MEMORYDB_PORT="+strconv.Itoa(freePort()), "AIDB_BACKUP_DIR="+dir)
	defer func() { _ = s.aidbQuiet(context.WithoutCancel(b.ctx), "nuke", "--yes", "--no-backup") }()
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}, {"seed", "rulesdb", "--rows", "100"}} {
		if err := s.aidbQuiet(b.ctx, args...); err != nil {
			return Measure{}, err
		}
	}
	for range n {
		if err := s.aidbQuiet(b.ctx, "backup", "rulesdb"); err != nil {
			return Measure{}, err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Measure{}, err
	}
	var files []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "rulesdb-2") && strings.HasSuffix(n, ".sql") {
			files = append(files, filepath.Join(dir, n))
		}
	}
	if len(files) != n {
		return Measure{}, fmt.Errorf("verify_all: %d backups in %s, want %d", len(files), dir, n)
	}
	return s.slowPairsOf("verify_all", fmt.Sprintf("aidb verify FILE, once per file (%d small backups, a fresh throwaway each)", n),
		func() (float64, error) {
			secs, _, err := s.aidbTimed("verify", "--all", "--jobs", "1")
			return secs, err
		},
		func() (float64, error) {
			total := 0.0
			for _, f := range files {
				secs, _, err := s.aidbTimed("verify", "--jobs", "1", f)
				if err != nil {
					return 0, err
				}
				total += secs
			}
			return total, nil
		})
}
