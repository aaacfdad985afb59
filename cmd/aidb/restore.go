package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/postgres/pgtools"
)

const restoreLong = `Restore a backup into a database.

A full restore loads the file into a temporary database on the same server,
verifies it against the manifest, and swaps it in by rename: a failure leaves
the database as it was. A data-only restore (--data-only) truncates, loads and
verifies in one transaction on the migrated schema, after checking that the
target's tables, columns and column types match the backup's (each difference
is named, and nothing changes). --all restores several
databases all or nothing: aidb restore --all rulesdb=FILE memorydb=FILE.
The data being replaced is backed up first (--no-backup skips that).
FILE may be latest (the database's newest verified full backup) or a name
as aidb list shows it (a file of the backup folder).`

// restoreOptions are restore's flags.
type restoreOptions struct {
	dataOnly, all, noBackup bool
	asDatabase, via         string
	jobs                    int
	hint                    fileHint
	// pitr are the point-in-time flags (pitr.go).
	pitr restoreTimeOptions
}

func (o *restoreOptions) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&o.dataOnly, "data-only", false, "restore a data-only backup onto the existing (migrated) schema")
	f.BoolVar(&o.all, "all", false, "restore several databases all or nothing: <db>=<file> arguments")
	f.BoolVar(&o.noBackup, "no-backup", false, "skip the safety backup of the data being replaced")
	f.StringVar(&o.asDatabase, "as-database", "", "accept a backup taken from this other database (a deliberate cross-restore)")
	f.StringVar(&o.via, "via", "auto", "how the file reaches psql: helper, stream or auto (see aidb backup --help)")
	f.IntVar(&o.jobs, "jobs", 0, "sessions a full restore loads on (0: the cores, at least 2; 1: one psql stream in one transaction)")
	// Set by Makefile.ai, so a missing file is named by the target's own
	// variable (BACKUP_FILE, RULESDB_FILE, ...).
	f.StringVar(&o.hint.target, "make-target", "", "the make target that runs this command")
	f.StringToStringVar(&o.hint.vars, "file-var", nil, "db=VARIABLE: the make variable that names each database's file")
	_ = f.MarkHidden("make-target")
	_ = f.MarkHidden("file-var")
	o.pitr.flags(f)
}

func (a *app) restoreCommand() *cobra.Command {
	o := &restoreOptions{}
	cmd := &cobra.Command{
		Use:   "restore <db> <file> | --all <db>=<file>...",
		Short: "Restore a backup into a database: verified, and swapped in only when whole (--data-only onto the migrated schema)",
		Long:  restoreLong,
		RunE:  func(cmd *cobra.Command, args []string) error { return a.restore(cmd, args, o) },
	}
	o.flags(cmd)
	return cmd
}

// parse reads restore's arguments into (db, file) pairs and checks the
// flags, before anything is opened.
func (o *restoreOptions) parse(args []string) ([][2]string, pgtools.Transport, error) {
	pairs, err := restorePairs(args, o.all, o.dataOnly, o.hint)
	if err != nil {
		return nil, "", err
	}
	if o.all && o.dataOnly {
		return nil, "", fault.BadInput(errors.New("--all restores full backups; restore data-only backups one database at a time"))
	}
	t, err := pgtools.ParseTransport(o.via)
	if err != nil {
		return nil, "", fault.BadInput(err)
	}
	if o.jobs < 0 {
		return nil, "", fault.BadInput(fmt.Errorf("--jobs %d: at least 1 (0: the cores)", o.jobs))
	}
	return pairs, t, nil
}

// restore runs aidb restore: the files located, the databases locked, the
// job run, the results printed.
func (a *app) restore(cmd *cobra.Command, args []string, o *restoreOptions) error {
	if o.pitr.set() {
		return a.restoreToTime(cmd, args, &o.pitr)
	}
	pairs, t, err := o.parse(args)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	objs, err := locateBackups(ctx, pairs)
	if err != nil {
		return err
	}
	// The backup folder holds the helper transport's pipe and the
	// safety backup; the lock keeps other operations off both.
	s, err := a.openLocked(ctx, dbNames(pairs), "restore", true)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	job, err := o.job(s, pairs, objs, t)
	if err != nil {
		return err
	}
	prog := a.newLoadProgress(false)
	a.restoreHooks(cmd, s, &job, prog, o.noBackup)
	results, err := restore.Run(ctx, s.eng, job)
	prog.finish()
	if err != nil {
		return err
	}
	return a.printRestores(results)
}

// dbNames is the databases of pairs, in order.
func dbNames(pairs [][2]string) []string {
	names := make([]string, len(pairs))
	for i, p := range pairs {
		names[i] = p[0]
	}
	return names
}

// locateBackups is each pair's repository object (nil for a file): a
// repository backup (s3://…) streams from there; a bad URL or one that is
// not a whole backup is refused before the engine is asked anything.
func locateBackups(ctx context.Context, pairs [][2]string) ([]restore.Object, error) {
	objs := make([]restore.Object, len(pairs))
	for i, p := range pairs {
		var err error
		if objs[i], err = locateBackup(ctx, p[1]); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// job is the restore job for s's databases: each file resolved in the
// backup folder (latest included), with the project's age keys.
func (o *restoreOptions) job(s *session, pairs [][2]string, objs []restore.Object, t pgtools.Transport) (restore.Job, error) {
	for i, db := range s.dbs {
		if objs[i] != nil {
			continue
		}
		var err error
		if pairs[i][1], err = latestFile(s.project.BackupDir, db.Name, pairs[i][1], o.dataOnly); err != nil {
			return restore.Job{}, err
		}
	}
	keys, err := ageKeys(s.project)
	if err != nil {
		return restore.Job{}, err
	}
	job := restore.Job{All: o.all}
	for i, db := range s.dbs {
		job.Requests = append(job.Requests, restore.Request{
			DB: db, File: pairs[i][1], DataOnly: o.dataOnly, AsDatabase: o.asDatabase,
			Transport: t, WorkDir: s.project.BackupDir, BackupDir: s.project.BackupDir, Keys: keys, Object: objs[i], Jobs: o.jobs,
		})
	}
	return job, nil
}

// restoreHooks sets job's callbacks: warnings, progress, the question
// and, unless noBackup, the safety backup of the data being replaced.
func (a *app) restoreHooks(cmd *cobra.Command, s *session, job *restore.Job, prog *loadProgress, noBackup bool) {
	job.Warn = func(w string) { a.say("warning: %s", w) }
	job.Progress = func(p restore.Plan, read, total int64) { prog.bytes(p.DB.Name, read, total) }
	job.Phase = func(p restore.Plan, ph restore.Phase) { prog.phase(p.DB.Name, p.File, p.Size, ph) }
	job.Confirm = func(plans []restore.Plan) error {
		var what []string
		for _, p := range plans {
			what = append(what, fmt.Sprintf("%s with %s", p.DB.Name, p.File))
		}
		return a.confirm("replace the data of " + strings.Join(what, " and "))
	}
	if noBackup {
		return
	}
	job.SafetyBackup = func(_ context.Context, plans []restore.Plan) error {
		var replaced []string
		for _, p := range plans {
			replaced = append(replaced, fmt.Sprintf("%s with %s", p.DB.Name, filepath.Base(p.Path)))
		}
		why := manifest.Safety{Command: "aidb restore", Reason: "the data before aidb restore replaced " + strings.Join(replaced, " and ")}
		if _, err := a.safetyBackup(cmd, s, s.dbs, false, why); err != nil {
			return fmt.Errorf("%w\nnothing was restored; fix that, or restore without a safety backup with --no-backup", err)
		}
		return nil
	}
}

// printRestores says what each restore did, and prints the --json
// document.
func (a *app) printRestores(results []restore.Result) error {
	for _, r := range results {
		for _, c := range r.Cleaned {
			a.say("%s: dropped %s, left by an interrupted restore", r.Database, c)
		}
		if len(r.RolesCreated) > 0 {
			a.say("%s: created the role(s) %s, which the backup's objects name and the server lacked (roles it had are left as they are)", r.Database, strings.Join(r.RolesCreated, ", "))
		}
		if r.Verified {
			a.say("%s: restored and verified: %s, %s, from %s", r.Database, counted(int64(r.Tables), "table"), counted(r.Rows, "row"), r.File)
		} else {
			a.say("%s: restored from %s (%s), not verified: the file has no manifest", r.Database, r.File, counted(int64(r.Tables), "table"))
		}
	}
	if a.json {
		return a.printJSON(struct {
			Restores []restore.Result `json:"restores"`
		}{results})
	}
	return nil
}

// fileHint says how the user names restore files: a make target and its
// variables, or (empty) aidb's own arguments.
type fileHint struct {
	target string
	vars   map[string]string
}

// missing is the advice for a database whose file was not given.
func (h fileHint) missing(db string, pairs [][2]string, all, dataOnly bool) string {
	// The example names the folder backups go to (checked before the
	// configuration is read: the environment's, else the default).
	dir := strings.TrimSuffix(os.Getenv("AIDB_BACKUP_DIR"), "/")
	if dir == "" {
		dir = "backups"
	}
	example := func(db string) string {
		if dataOnly {
			return dir + "/" + db + "-data-YYYYMMDD-HHMMSS.sql"
		}
		return dir + "/" + db + "-YYYYMMDD-HHMMSS.sql"
	}
	if h.target != "" && h.vars[db] != "" {
		cmd := "make -f Makefile.ai " + h.target
		for _, p := range pairs {
			if v := h.vars[p[0]]; v != "" {
				cmd += " " + v + "=" + example(p[0])
			}
		}
		return fmt.Sprintf("no backup file given for %s: set %s, e.g. %s (make -f Makefile.ai ai-db-list shows the backups)", db, h.vars[db], cmd)
	}
	cmd := "aidb restore " + db + " " + example(db)
	if all {
		cmd = "aidb restore --all"
		for _, p := range pairs {
			cmd += " " + p[0] + "=" + example(p[0])
		}
	}
	return fmt.Sprintf("no backup file given for %s: name one, e.g. %s (aidb list shows the backups)", db, cmd)
}

// restorePairs reads "<db> <file>" or, with --all, "<db>=<file>..." into
// (db, file) pairs.
func restorePairs(args []string, all, dataOnly bool, hint fileHint) ([][2]string, error) {
	usage := "usage: aidb restore <db> <file>, or aidb restore --all <db>=<file>...; " + next(viaMake, "ai-db-list", "aidb list") + " shows the backups"
	var out [][2]string
	if !all {
		if len(args) != 2 {
			return nil, fault.BadInput(errors.New(usage))
		}
		out = append(out, [2]string{args[0], args[1]})
	} else {
		if len(args) == 0 {
			return nil, fault.BadInput(errors.New(usage))
		}
		for _, a := range args {
			db, file, ok := strings.Cut(a, "=")
			if !ok || db == "" {
				return nil, fault.BadInput(fmt.Errorf("%q: %s", a, usage))
			}
			out = append(out, [2]string{db, file})
		}
	}
	seen := map[string]bool{}
	for _, p := range out {
		if strings.TrimSpace(p[1]) == "" {
			return nil, fault.BadInput(errors.New(hint.missing(p[0], out, all, dataOnly)))
		}
		if seen[p[0]] {
			return nil, fault.BadInput(fmt.Errorf("%s is named twice", p[0]))
		}
		seen[p[0]] = true
	}
	return out, nil
}

// latestFile resolves "latest" (or "<db>-latest"), as a restore's file,
// to db's latest pointer in the backup folder whatever its compression
// and encryption (rulesdb-latest.sql, .sql.zst, .sql.age, ...); other
// names are returned as they are. A data-only restore is refused it:
// latest names a full backup.
func latestFile(dir, db, file string, dataOnly bool) (string, error) {
	if file != "latest" && file != db+"-latest" {
		return inFolder(dir, file), nil
	}
	if dataOnly {
		return "", fault.BadInput(fmt.Errorf("%s: latest names the newest full backup of %s, and --data-only restores a data-only backup: name that file (aidb list shows them)", file, db))
	}
	names := append([]string{backupfile.LatestName(db, backupfile.None)}, backupfile.OtherLatestNames(db, backupfile.None)...)
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Lstat(p); err == nil {
			return p, nil
		}
	}
	return "", fault.BadInput(fmt.Errorf("%s: %s has no latest pointer for %s (%s): take a full backup first (aidb backup %s --verify), or name a backup file (aidb list shows them); nothing was changed", file, dir, db, names[0], db))
}

// inFolder is file as the user meant it: a bare name (no folder, as aidb
// list shows the backup folder's files) that is not in the working
// folder but is in the backup folder dir names the file there; anything
// else is file as it is.
func inFolder(dir, file string) string {
	if file == "" || file != filepath.Base(file) {
		return file
	}
	if _, err := os.Lstat(file); err == nil {
		return file
	}
	p := filepath.Join(dir, file)
	if _, err := os.Lstat(p); err == nil {
		return p
	}
	return file
}
