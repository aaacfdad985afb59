package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-units"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/ops/routine"
	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/postgres/pgtools"
)

// backupOptions are backup's flags.
type backupOptions struct {
	schemaOnly, dataOnly                         bool
	compress, via, splitOver                     string
	verifyAfter, noOwner, rolePasswords, noLocal bool
}

func (a *app) backupCommand() *cobra.Command {
	var o backupOptions
	cmd := &cobra.Command{
		Use:   "backup [db...]",
		Short: "Back up databases (full, --schema-only or --data-only) into the backup folder, with a manifest",
		RunE:  func(cmd *cobra.Command, args []string) error { return a.backup(cmd, args, o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.verifyAfter, "verify", false, "verify each file right after writing it (restore into a throwaway container, compare)")
	f.BoolVar(&o.schemaOnly, "schema-only", false, "the schema only, no rows")
	f.BoolVar(&o.noLocal, "no-local", false, "with a repository (AIDB_REPOSITORY), keep no copy in the backup folder once a file is uploaded (a file whose upload failed stays)")
	f.BoolVar(&o.dataOnly, "data-only", false, "the rows only (restore them onto a migrated schema); leaves out the migration table")
	f.StringVar(&o.compress, "compress", "none", "none, gzip or zstd")
	f.BoolVar(&o.noOwner, "no-owner", false, "leave out who owns each object (pg_dump --no-owner): restored, they belong to whoever restores them; grants are kept")
	f.BoolVar(&o.rolePasswords, "with-role-passwords", false, "put the password hashes of the roles the database refers to into the file and its manifest (SENSITIVE: both then hold secrets)")
	f.StringVar(&o.via, "via", "auto", "how pg_dump's output reaches the folder: helper (a helper container and a pipe; where the engine sees the folder and its pipes), stream (docker exec; any engine) or auto (helper where a check, once per run, shows it works; else stream, saying why)")
	f.StringVar(&o.splitOver, "split-over", units.BytesSize(backup.DefaultSplitOver), "read the rows of tables at least this large (by the server's statistics) in parts at the same time, one per core (helper transport; cores shared among the databases); 0 never")
	return cmd
}

// request is the backup request the flags ask for (its databases, folder
// and keys are the session's).
func (o backupOptions) request() (backup.Request, error) {
	switch {
	case o.schemaOnly && o.dataOnly:
		return backup.Request{}, fault.BadInput(fmt.Errorf("--schema-only and --data-only exclude each other"))
	case o.noLocal && o.verifyAfter:
		return backup.Request{}, fault.BadInput(fmt.Errorf("--no-local and --verify exclude each other: verify the repository's backups with aidb verify --all"))
	}
	req := backup.Request{Kind: backupfile.Full, HoldLatest: o.verifyAfter, NoOwner: o.noOwner, RolePasswords: o.rolePasswords, NoLocal: o.noLocal}
	if o.schemaOnly {
		req.Kind = backupfile.Schema
	} else if o.dataOnly {
		req.Kind = backupfile.Data
	}
	var err error
	if req.Compression, err = backupfile.ParseCompression(o.compress); err != nil {
		return req, fault.BadInput(err)
	}
	if req.Transport, err = pgtools.ParseTransport(o.via); err != nil {
		return req, fault.BadInput(err)
	}
	if req.SplitOver, err = parseSize(o.splitOver); err != nil {
		return req, fault.BadInput(fmt.Errorf("--split-over: %w", err))
	}
	return req, nil
}

// backup backs up; with --verify, <db>-latest moves only to a file that
// proved restorable: it is what users restore from.
func (a *app) backup(cmd *cobra.Command, args []string, o backupOptions) error {
	req, err := o.request()
	if err != nil {
		return err
	}
	p, err := a.loadProject(cmd.Context())
	if err != nil {
		return err
	}
	if _, _, err := sealedKeys(p, o.verifyAfter); err != nil {
		return err
	}
	s, err := a.openLocked(cmd.Context(), args, "backup", true)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	req.Databases = s.dbs
	res, err := a.runBackup(cmd, s, req)
	if err != nil || !o.verifyAfter {
		if err == nil && a.json {
			return a.printJSON(res)
		}
		return err
	}
	files := make([]string, len(res.Files))
	for i, f := range res.Files {
		files[i] = f.Path
	}
	// With --json, the verification's document is the output.
	results, err := a.runVerify(cmd, s, files, len(files), 0, req.Transport, "")
	a.pointLatestAtVerified(cmd, s, res, results)
	return err
}

// pointLatestAtVerified moves each database's <db>-latest to its new full
// backup if verification found it equal (routine.PointLatest); of the
// others it says that the pointer stayed, and why.
func (a *app) pointLatestAtVerified(cmd *cobra.Command, s *session, res backup.Result, results []verify.Result) {
	for _, l := range routine.PointLatest(cmd.Context(), s.project.BackupDir, res.Files, results) {
		var nv *routine.NotVerifiedError
		switch {
		case errors.As(l.Err, &nv):
			a.say("%s: %s not moved: %v", l.Database, l.Pointer, l.Err)
		case l.Err != nil:
			a.say("%s: could not %v", l.Database, l.Err)
		}
	}
}

// ageRecipients are whom backups are encrypted to (AIDB_AGE_RECIPIENTS_FILE),
// nil when none is set; a file that cannot be read is bad input.
func ageRecipients(p *compose.Project) (*encryption.Recipients, error) {
	if p.AgeRecipientsFile == "" {
		return nil, nil
	}
	r, err := encryption.LoadRecipients(p.AgeRecipientsFile)
	if err != nil {
		return nil, fmt.Errorf("AIDB_AGE_RECIPIENTS_FILE: %w", err)
	}
	return r, nil
}

// ageKeys are the identities encrypted backups are opened with
// (AIDB_AGE_IDENTITY_FILE), nil when none is set.
func ageKeys(p *compose.Project) (*encryption.Keys, error) {
	if p.AgeIdentityFile == "" {
		return nil, nil
	}
	k, err := encryption.LoadKeys(p.AgeIdentityFile)
	if err != nil {
		return nil, fmt.Errorf("AIDB_AGE_IDENTITY_FILE: %w", err)
	}
	return k, nil
}

// sealedKeys loads the keys that verify encrypted backups, and, where new
// backups are encrypted and verified, refuses before anything is dumped
// when they cannot be: no identity file, or one whose identities open
// nothing encrypted to the recipients. A backup that cannot be verified
// would leave <db>-latest where it was, on older data.
func sealedKeys(p *compose.Project, verifyFiles bool) (*encryption.Recipients, *encryption.Keys, error) {
	recipients, err := ageRecipients(p)
	if err != nil {
		return nil, nil, err
	}
	keys, err := ageKeys(p)
	if err != nil {
		return nil, nil, err
	}
	if recipients == nil || !verifyFiles {
		return recipients, keys, nil
	}
	switch {
	case keys == nil:
		return nil, nil, fault.BadInput(fmt.Errorf("backups are encrypted to %s (AIDB_AGE_RECIPIENTS_FILE) and verified, but no identity to open them is given: set AIDB_AGE_IDENTITY_FILE, or skip the verification (VERIFY=0, --no-verify); nothing was changed", strings.Join(recipients.Names(), ", ")))
	case !keys.Opens(recipients):
		return nil, nil, fault.BadInput(fmt.Errorf("backups are encrypted to %s (AIDB_AGE_RECIPIENTS_FILE), and no identity in %s (AIDB_AGE_IDENTITY_FILE) opens them, so none could be verified: point AIDB_AGE_IDENTITY_FILE at one of their identities; nothing was changed", strings.Join(recipients.Names(), ", "), keys.File()))
	}
	return recipients, keys, nil
}

// parseSize reads a size such as 32MB or 1GiB (powers of 1024), or 0.
func parseSize(s string) (int64, error) {
	n, err := units.RAMInBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (write it as 0, 512KB, 32MB or 1GB)", s)
	}
	if n < 0 {
		return 0, fmt.Errorf("%q: a size cannot be negative", s)
	}
	return n, nil
}

// runBackup runs a backup request in the session's backup folder, showing
// progress: a bar per database on a terminal, one line per file otherwise.
func (a *app) runBackup(cmd *cobra.Command, s *session, req backup.Request) (backup.Result, error) {
	req.Dir = s.project.BackupDir
	req.ToolVersion = toolVersion()
	var err error
	if req.Recipients, err = ageRecipients(s.project); err != nil {
		return backup.Result{}, err
	}
	if err := routine.UploadTo(cmd.Context(), s.project, &req); err != nil {
		return backup.Result{}, err
	}
	var finish func()
	if term.IsTerminal(int(os.Stderr.Fd())) {
		req.Progress, finish = a.backupBars()
	}
	res, err := backup.Run(cmd.Context(), s.eng, req)
	if finish != nil {
		finish()
	}
	var upErr *backup.UploadError
	if err != nil && !errors.As(err, &upErr) {
		return res, err
	}
	for _, f := range res.Files {
		a.sayBackupFile(f, req.NoLocal)
	}
	if err != nil {
		return res, err
	}
	if res.Set != "" {
		a.say("set manifest: %s", res.Set)
	}
	return res, nil
}

// backupBars are a progress bar per database, and what finishes them.
func (a *app) backupBars() (progress func(db string, n int64), finish func()) {
	var mu sync.Mutex
	bars := map[string]*progressbar.ProgressBar{}
	progress = func(db string, n int64) {
		mu.Lock()
		defer mu.Unlock()
		bar, ok := bars[db]
		if !ok {
			bar = progressbar.NewOptions64(-1, progressbar.OptionSetDescription(db),
				progressbar.OptionSetWriter(a.stderr), progressbar.OptionShowBytes(true),
				progressbar.OptionSetWidth(20), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
			bars[db] = bar
		}
		_ = bar.Set64(n)
	}
	return progress, func() {
		for _, bar := range bars {
			_ = bar.Finish()
		}
	}
}

// sayBackupFile says what one file of a backup holds and where it went.
func (a *app) sayBackupFile(f backup.File, noLocal bool) {
	rate := float64(f.Size) / max(f.Seconds, 1e-3) / (1 << 20)
	where := f.Path
	switch {
	case f.URL != "" && noLocal:
		where = f.URL
	case f.URL != "":
		where += " and " + f.URL
	}
	a.say("%s: %s backup %s (%s, %s, %s, %.1fs, %s)", f.Database, f.Kind, where, humanBytes(f.Size), counted(int64(f.Tables), "table"), counted(f.Rows, "row"), f.Seconds, rateText(rate))
}

// humanBytes says a size in binary units, as "512 B" or "1.5 MiB".
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	return units.CustomSize("%.1f %s", float64(n), 1024, []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"})
}

// counted says n things: "1 table", "3 tables".
func counted(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// rateText says a rate in MiB/s to a precision that does not round a
// small file's to 0.
func rateText(mibs float64) string {
	if mibs < 10 {
		return fmt.Sprintf("%.2g MiB/s", mibs)
	}
	return fmt.Sprintf("%.0f MiB/s", mibs)
}
