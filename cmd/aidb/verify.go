package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/ops/routine"
	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/store/folder"
	"github.com/aidb/aidb/internal/store/repository"
	"github.com/aidb/aidb/orchestrator"
)

// verifyOptions are verify's flags.
type verifyOptions struct {
	all, pitr                bool
	jobs, loadJobs           int
	junit, via, image, shard string
}

func (a *app) verifyCommand() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify <file>... | --all",
		Short: "Prove backups restorable: restore each into a throwaway container of its image and compare with its manifest",
		Long:  verifyLong,
		RunE:  func(cmd *cobra.Command, args []string) error { return a.verify(cmd, args, o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.all, "all", false, "verify every backup in the backup folder")
	f.BoolVar(&o.pitr, "pitr", false, "prove the named databases' WAL streams restorable instead (aidb pitr verify)")
	f.IntVar(&o.jobs, "jobs", 2, "backups verified at once, each in its own container")
	f.IntVar(&o.loadJobs, "load-jobs", 0, "sessions each backup loads on in its container (0: the cores, at least 2; 1: one psql stream)")
	f.StringVar(&o.junit, "junit", "", "also write a JUnit XML report to this file")
	f.BoolVar(&a.amcheck, "amcheck", false, "after an equal compare, check every btree index against its table with pg_amcheck --heapallindexed (a mismatch is a difference, exit 3)")
	f.StringVar(&o.via, "via", "auto", "how files reach psql: helper, stream or auto")
	f.StringVar(&o.shard, "shard", "", "with --all, verify only part I of N (I/N): each backup in exactly one part, by its name")
	f.StringVar(&o.image, "image", "", "restore into a throwaway of this image instead of the backup's (upgrade rehearsal, e.g. postgres:17)")
	return cmd
}

const verifyLong = `Prove backups restorable: each file is restored into a throwaway container
of the image it came from (data on tmpfs, removed afterwards, also on Ctrl-C)
and compared with its manifest table by table. A data-only backup is verified
on the schema it carries (the one it was taken from); one made before data-only
backups carried it, on top of the migrations at its version, or the matching
schema backup.

--shard I/N (with --all) verifies the I-th of N parts of the backups, each
file in exactly one part by a hash of its name: N CI runners split a folder
between them, each writing its own --junit report.

--image REF restores into a throwaway container of REF instead (an upgrade
rehearsal: a backup of PostgreSQL 15 on postgres:17), compared with the
manifest the same way.

A FILE named as aidb list shows it (no folder) is the backup folder's file.

Exit codes: 0 every backup equal, 3 a difference (the table is named),
1 a backup could not be verified, 2 bad input.`

// check refuses flags that do not go together, before anything is read.
func (o verifyOptions) check(args []string) (*verify.Shard, pgtools.Transport, error) {
	switch {
	case o.all == (len(args) > 0):
		return nil, "", fault.BadInput(errors.New("name backup files, or --all for every backup in the folder (not both)"))
	case o.jobs < 1:
		return nil, "", fault.BadInput(fmt.Errorf("--jobs %d: at least 1", o.jobs))
	case o.shard != "" && !o.all:
		return nil, "", fault.BadInput(errors.New("--shard splits the backups of --all between runners: give --all with it"))
	}
	var part *verify.Shard
	if o.shard != "" {
		sh, err := verify.ParseShard(o.shard)
		if err != nil {
			return nil, "", fault.BadInput(fmt.Errorf("--shard: %w", err))
		}
		part = &sh
	}
	if o.image != "" {
		if _, err := orchestrator.ImageMajor(o.image); err != nil {
			return nil, "", fault.BadInput(fmt.Errorf("--image: %w", err))
		}
	}
	if o.loadJobs < 0 {
		return nil, "", fault.BadInput(fmt.Errorf("--load-jobs %d: at least 1 (0: the cores)", o.loadJobs))
	}
	t, err := pgtools.ParseTransport(o.via)
	if err != nil {
		return nil, "", fault.BadInput(err)
	}
	return part, t, nil
}

func (a *app) verify(cmd *cobra.Command, args []string, o verifyOptions) error {
	if o.pitr {
		return a.pitrVerify(cmd, args, o.junit)
	}
	ctx := cmd.Context()
	part, t, err := o.check(args)
	if err != nil {
		return err
	}
	p, err := a.loadProject(ctx)
	if err != nil {
		return err
	}
	files, err := checkedFiles(ctx, p.BackupDir, args)
	if err != nil {
		return err
	}
	if err := checkReportPath(o.junit); err != nil {
		return err
	}
	s, err := a.openProject(ctx, p, nil)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	if o.all {
		if files, err = a.allBackups(ctx, p, part); err != nil {
			return err
		}
		if len(files) == 0 {
			// Nothing of this runner's: an empty report, not a failure.
			return a.emptyShard(o.junit)
		}
	}
	_, err = a.runVerifyOn(cmd, s, files, o.jobs, o.loadJobs, t, o.junit, o.image)
	return err
}

// checkReportPath refuses a --junit path the report cannot be written to.
// The report is written last: a path it cannot be written to is found
// before minutes of verification, not after.
func checkReportPath(path string) error {
	if path == "" {
		return nil
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		//nolint:errorlint // the reason as text: the file's own error kind (not-exist, permission) must not choose the advice; this is bad input
		return fault.BadInput(fmt.Errorf("--junit %s: cannot write the report there (%v); nothing was verified", path, errors.Unwrap(err)))
	}
	return out.Close()
}

// checkedFiles are the files verify was given, each checked before
// anything is verified (a bad URL or a backup that is not whole is
// refused); a bare name not in the working folder is the backup folder's
// file, as aidb list shows it.
func checkedFiles(ctx context.Context, dir string, args []string) ([]string, error) {
	files := make([]string, len(args))
	for i, f := range args {
		files[i] = inFolder(dir, f)
		var err error
		if repository.IsURL(files[i]) {
			_, err = repository.OpenObject(ctx, files[i])
		} else {
			err = restore.CheckFile(files[i])
		}
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// allBackups are the backups of --all (routine.AllBackups), this runner's
// part of them with --shard; none of this runner's is an empty report (no
// files and no error), none at all is bad input.
func (a *app) allBackups(ctx context.Context, p *compose.Project, part *verify.Shard) ([]string, error) {
	files, err := routine.AllBackups(ctx, p)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fault.BadInput(fmt.Errorf("no backups in %s to verify: take one with %s", p.BackupDir, next(viaMake, "ai-db-backup-all", "aidb backup --verify")))
	}
	if part != nil {
		all := len(files)
		files = part.Of(files)
		a.say("shard %s: %d of the %d backups", part, len(files), all)
	}
	return files, nil
}

// emptyShard is a shard with no backups: an empty JUnit report where one
// is asked for, exit 0.
func (a *app) emptyShard(junit string) error {
	if err := writeJUnit(junit, nil); err != nil {
		return err
	}
	if a.json {
		return a.printJSON(struct {
			Results []verify.Result `json:"results"`
		}{})
	}
	return nil
}

// writeJUnit writes the JUnit report of results to path, if one is asked.
func writeJUnit(path string, results []verify.Result) error {
	return writeReport(path, func(w io.Writer) error { return verify.WriteJUnit(w, results) })
}

// writeReport writes a JUnit report to path by write, if one is asked.
func writeReport(path string, write func(io.Writer) error) error {
	if path == "" {
		return nil
	}
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write JUnit report: %w", err)
	}
	err = write(out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write JUnit report %s: %w", path, err)
	}
	return nil
}

// runVerify verifies files, prints the table (or JSON) and returns the
// exit status error.
func (a *app) runVerify(cmd *cobra.Command, s *session, files []string, jobs, loadJobs int, t pgtools.Transport, junit string) ([]verify.Result, error) {
	return a.runVerifyOn(cmd, s, files, jobs, loadJobs, t, junit, "")
}

// runVerifyOn is runVerify with each backup loaded on loadJobs sessions
// (0: the cores), into throwaways of image ("": each backup's own).
func (a *app) runVerifyOn(cmd *cobra.Command, s *session, files []string, jobs, loadJobs int, t pgtools.Transport, junit, image string) ([]verify.Result, error) {
	// The backup folder holds the helper transport's pipes.
	if err := folder.Ensure(s.project.BackupDir); err != nil {
		return nil, err
	}
	keys, err := ageKeys(s.project)
	if err != nil {
		return nil, err
	}
	prog := a.newLoadProgress(true)
	results := verify.Files(cmd.Context(), s.tools, files, verify.Options{
		Project: s.project, Jobs: jobs, LoadJobs: loadJobs, Transport: t, Dir: s.project.BackupDir, Record: true, Keys: keys, Locate: locateBackup, Image: image, Amcheck: a.amcheck,
		Started:  func(f string) { a.say("verifying %s", f) },
		Progress: func(f string, read, total int64) { prog.bytes(filepath.Base(f), read, total) },
		Phase: func(f string, ph restore.Phase) {
			var size int64
			if st, err := os.Stat(f); err == nil {
				size = st.Size()
			}
			prog.phase(filepath.Base(f), f, size, ph)
		},
	})
	prog.finish()
	if err := writeJUnit(junit, results); err != nil {
		return results, err
	}
	if a.json {
		if err := a.printJSON(struct {
			Results []verify.Result `json:"results"`
		}{results}); err != nil {
			return results, err
		}
	} else {
		writeVerifyTable(a.stderr, results)
		a.say("backups are in %s", s.project.BackupDir)
	}
	return results, verify.Code(cmd.Context(), results)
}

// writeVerifyTable prints one short row per file and, below the table, why
// a file differs or could not be verified: a reason can be a long line, and
// in the table it stretched every row to its width.
func writeVerifyTable(out io.Writer, results []verify.Result) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "BACKUP\tDATABASE\tKIND\tRESULT\tTABLES\tROWS\tTIME")
	var reasons []string
	for _, r := range results {
		result, name := "equal", filepath.Base(r.File)
		switch {
		case r.Error != "":
			result = "NOT VERIFIED"
			reasons = append(reasons, fmt.Sprintf("%s: not verified: %s", name, withAdvice(r.Error, r.Err)))
		case !r.OK:
			result = "DIFFERS"
			reasons = append(reasons, fmt.Sprintf("%s differs from its manifest:\n  %s", name, strings.Join(r.Differences, "\n  ")))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%.1fs\n", name, r.Database, r.Kind, result, r.Tables, r.Rows, r.Seconds)
		for _, warn := range r.Warnings {
			reasons = append(reasons, fmt.Sprintf("%s: warning: %s", name, warn))
		}
		if r.Amcheck != nil && len(r.Amcheck.Corruption) == 0 {
			line := fmt.Sprintf("%s: pg_amcheck found every btree index matching its table", name)
			if len(r.Amcheck.NotChecked) > 0 {
				line += fmt.Sprintf("; not checked (pg_amcheck checks btree indexes only): %s", strings.Join(r.Amcheck.NotChecked, ", "))
			}
			reasons = append(reasons, line)
		}
	}
	_ = w.Flush()
	for _, r := range reasons {
		fmt.Fprintln(out, r)
	}
}
