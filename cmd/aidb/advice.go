package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/ops/seed"
	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/postgres/migrations"
	"github.com/aidb/aidb/internal/postgres/pgimage"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/runs/oplock"
	"github.com/aidb/aidb/internal/store/freshness"
	"github.com/aidb/aidb/orchestrator"
)

// The exit codes of every aidb command, as --help and docs/ document them.
// The library packages return fault kinds and typed errors; exitCode is
// the one place they become codes.
const (
	exitOK          = 0   // done
	exitFailed      = 1   // the operation failed
	exitUsage       = 2   // bad usage or bad input, refused before anything changed
	exitDiffers     = 3   // verification found a difference
	exitStale       = 4   // check: no backup recent enough (or verified)
	exitInterrupted = 130 // Ctrl-C (SIGINT)
	exitTerminated  = 143 // SIGTERM
	exitHangup      = 129 // SIGHUP
	exitBrokenPipe  = 141 // stdout or stderr lost its reader (SIGPIPE)
)

// exitCode is the code err ends a command with: 0 for nil; 2 for bad input
// (fault.Invalid), 3 for a difference (fault.Differs) and 4 for stale
// backups (fault.Stale), whichever the
// first error in err's tree of either kind is; else 130 for a cancelled
// context, and 1 for the rest: a database that is not up or busy
// (fault.NotRunning, fault.Busy) is an operation that failed, and does not
// hide a kind with a code of its own that it is joined with.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	code := 0
	walk(err, func(e error) {
		k, ok := e.(fault.Kinded)
		if !ok || code != 0 {
			return
		}
		switch k.Kind() {
		case fault.Invalid:
			code = exitUsage
		case fault.Differs:
			code = exitDiffers
		case fault.Stale:
			code = exitStale
		}
	})
	if code != 0 {
		return code
	}
	if errors.Is(err, context.Canceled) {
		return exitInterrupted
	}
	return exitFailed
}

// viaMake says aidb runs from a target of Makefile.ai (which sets
// AIDB_VIA_MAKE): its advice then names make targets, else aidb commands.
var viaMake = os.Getenv("AIDB_VIA_MAKE") != ""

// advice is what to run next for err, naming the flags and the commands
// (make targets from Makefile.ai, else aidb's) the library errors leave
// out: one line per typed error in err's tree that has a next step, in the
// tree's order, without repeats.
func advice(err error) []string { return adviceIn(err, viaMake) }

// next names what to run: make target when run from Makefile.ai, else the
// aidb command.
func next(mk bool, target, command string) string {
	if mk {
		return "make -f Makefile.ai " + target
	}
	return command
}

// adviceIn is advice, naming make targets when mk: each error in err's
// tree is asked of each family of typed errors in turn (a type belongs to
// one family, so at most one answers).
func adviceIn(err error, mk bool) []string {
	v := &adviser{mk: mk}
	walk(err, func(e error) {
		v.engine(e)
		v.operation(e)
		v.restoreFile(e)
		v.restoreTarget(e)
		if e, ok := e.(*restore.SchemaError); ok {
			v.schema(e)
		}
		if s := snapshotAdvice(e, mk); s != "" {
			v.add(s)
		}
		if e == pgimage.ErrNeedsRoot {
			v.add("run again as root (e.g. sudo " + v.run("ai-image", "aidb image build") + ")")
		}
	})
	if i := slices.Index(v.out, ""); i >= 0 {
		v.out[i] = fmt.Sprintf("run %s first", v.run("ai-db-up (or aidb up "+strings.Join(v.notUp, " ")+")", "aidb up "+strings.Join(v.notUp, " ")))
	}
	return v.out
}

// adviser gathers the advice for one error's tree.
type adviser struct {
	mk    bool
	out   []string // the advice, in order, without repeats
	notUp []string // the databases not up, advised together at the first's place
}

// add appends s unless it is there already.
func (v *adviser) add(s string) {
	if !slices.Contains(v.out, s) {
		v.out = append(v.out, s)
	}
}

// run names what to run (next).
func (v *adviser) run(target, command string) string { return next(v.mk, target, command) }

// engine advises on the orchestrator's errors: the databases' containers.
func (v *adviser) engine(e error) {
	switch e := e.(type) {
	case *orchestrator.NotUpError:
		if len(v.notUp) == 0 {
			v.add("") // where the advice for every database not up goes
		}
		if !slices.Contains(v.notUp, e.Database) {
			v.notUp = append(v.notUp, e.Database)
		}
	case *orchestrator.NotReadyError:
		if e.Timeout > 0 {
			v.add("raise ready_timeout in aidb.yaml or --timeout")
		}
	case *orchestrator.LoginError:
		v.add("once they match, run aidb up again")
	case *orchestrator.PutBackError:
		if e.Renamed {
			v.add("the next aidb up puts it back")
		}
	case *orchestrator.LeftRunningError:
		v.add("see them with aidb status; stop them with aidb down --all, or remove everything with " + v.run("ai-db-nuke", "aidb nuke"))
	case *orchestrator.MajorMismatchError:
		v.add(v.run(fmt.Sprintf("ai-db-upgrade DB=%s IMAGE=%s", e.Database, e.Image), fmt.Sprintf("aidb upgrade %s --image %s", e.Database, e.Image)) + "; then " + v.run("ai-db-migrate", "aidb migrate"))
	}
}

// operation advises on the errors of the other operations: keys, locks,
// freshness, migrations, seed, verify and the transport.
func (v *adviser) operation(e error) {
	switch e := e.(type) {
	case *encryption.KeyError:
		if e.KeyFile == "" {
			v.add("set AIDB_AGE_IDENTITY_FILE to a file holding the age identity (age-keygen's output) of one of its recipients")
		} else {
			v.add("point AIDB_AGE_IDENTITY_FILE at the identity of one of its recipients")
		}
	case *freshness.StaleError:
		v.add("take a backup with " + v.run("ai-db-backup-all", "aidb backup --verify") + " (it verifies each file), and see why the scheduled one did not run")
	case *oplock.BusyError:
		if e.Folder != "" {
			v.add("wait for it, or raise --lock-timeout")
		} else {
			v.add("wait for it to finish, or raise --lock-timeout")
		}
	case *migrations.VersionError:
		v.add("give --to 0 or more (0 reverts every migration)")
	case *seed.RefusedError:
		if errors.Is(e.Err, seed.ErrNotMigrated) {
			v.add("run " + v.run("ai-db-migrate", "aidb migrate") + " first")
		} else {
			v.add(fmt.Sprintf("for a fresh one: aidb nuke %s, then up and migrate", e.Database))
		}
	case *verify.NoManifestError:
		v.add("restore it, unverified, with aidb restore")
	case *verify.NoSchemaError:
		v.add(fmt.Sprintf("take one with aidb backup %s --schema-only", e.Database))
	case *pgtools.PathError:
		v.add("use --via stream (or --via auto, which takes it by itself where the helper does not work)")
	}
}

// restoreFile advises on a restore's errors about its file: which to name,
// and its kind.
func (v *adviser) restoreFile(e error) {
	switch e := e.(type) {
	case *restore.FileError:
		switch e.Next {
		case restore.NameAnother:
			v.add(v.run("ai-db-list", "aidb list") + " shows the backups there are")
		case restore.RestoreAnother:
			v.add("restore another backup (" + v.run("ai-db-list", "aidb list") + " shows which are whole)")
		case restore.RunInContainer:
			v.add("CONTAINER is the database's container, as aidb status shows it")
		}
	case *restore.KindError:
		if e.DataOnly {
			v.add("restore it without --data-only (" + v.run("ai-db-restore BACKUP=…", "aidb restore <db> "+e.File) + ")")
		} else {
			v.add("restore it with --data-only (" + v.run("ai-db-restore-data BACKUP=…", "aidb restore --data-only <db> "+e.File) + ") onto a migrated schema")
		}
	}
}

// restoreTarget advises on a restore's errors about the database it goes
// into: another database's backup, a missing extension.
func (v *adviser) restoreTarget(e error) {
	switch e := e.(type) {
	case *restore.WrongDatabaseError:
		v.add(fmt.Sprintf("restore it into %s, or pass --as-database %s to restore it into %s deliberately", e.Backup, e.Backup, e.Target))
	case *restore.ExtensionError:
		v.add(fmt.Sprintf("run %s on %s (its image: in the compose file), then restore again", e.Database, extensionImage(e)))
	case *restore.ForeignError:
		v.add(fmt.Sprintf("restore it into the database it came from, or pass --as-database <that database> to replace %s's tables with it deliberately", e.Target))
	}
}

// extensionImage is the image known to have the first missing extension
// that has one, else words for it.
func extensionImage(e *restore.ExtensionError) string {
	for _, x := range e.Missing {
		if e.Images[x] != "" {
			return e.Images[x]
		}
	}
	return "an image that has it"
}

// schema advises on a data-only restore's schema differences, one piece
// per kind of difference.
func (v *adviser) schema(e *restore.SchemaError) {
	if len(e.Missing) > 0 || e.Older {
		if e.SchemaBackup != "" {
			v.add(fmt.Sprintf("run %s, or restore the schema backup %s (aidb restore %s %s)", v.run("ai-db-migrate", "aidb migrate"), e.SchemaBackup, e.Database, e.SchemaBackup))
		} else {
			v.add("run " + v.run("ai-db-migrate", "aidb migrate"))
		}
	}
	if len(e.Changed) > 0 {
		v.add("give each column the backup's type (ALTER TABLE … ALTER COLUMN … TYPE …)")
	}
	if len(e.Extra) > 0 {
		v.add("give each such column a default, or drop it (ALTER TABLE … ALTER COLUMN … SET DEFAULT …, or DROP COLUMN …)")
	}
	if e.CarriesSchema && (len(e.Missing) > 0 || len(e.Changed) > 0) {
		v.add(fmt.Sprintf("the schema the backup was taken from is in its manifest: jq -r .schema.sql '%s' prints how it creates each table", manifest.PathFor(e.File)))
	}
}

// walk calls f on err and every error it wraps, depth first, in the order
// errors.As looks at them.
func walk(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walk(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walk(e, f)
		}
	}
}

// errorText is what aidb prints for a failed command: "aidb: " and the
// error, then its advice. Advice for a one-line error follows it on the
// same line after "; ", as in "rulesdb is busy: ...; wait for it to
// finish, or raise --lock-timeout"; an error of several lines (logs, one
// line per database) gets each piece of advice on a line of its own, so
// it is not read as part of the last one.
func errorText(err error) string {
	msg := err.Error()
	adv := advice(err)
	if len(adv) == 0 {
		return "aidb: " + msg + "\n"
	}
	if !strings.Contains(msg, "\n") {
		return "aidb: " + msg + "; " + strings.Join(adv, "; ") + "\n"
	}
	var b strings.Builder
	b.WriteString("aidb: " + msg + "\n")
	for _, a := range adv {
		b.WriteString("aidb: " + a + "\n")
	}
	return b.String()
}

// withAdvice is msg (err's text, as a verify.Result keeps it) followed by
// err's advice after "; ": the reason a verify table gives for a file it
// could not verify.
func withAdvice(msg string, err error) string {
	if adv := advice(err); len(adv) > 0 {
		return msg + "; " + strings.Join(adv, "; ")
	}
	return msg
}
