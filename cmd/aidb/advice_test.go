package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/aidb/aidb/exitcode"
	"github.com/aidb/aidb/fault"
	"github.com/aidb/aidb/migrations"
	"github.com/aidb/aidb/oplock"
	"github.com/aidb/aidb/orchestrator"
	"github.com/aidb/aidb/pgimage"
	"github.com/aidb/aidb/seed"
	"github.com/aidb/aidb/verify"
)

// The library errors say what was wrong; cmd alone maps them to exit codes
// and to advice naming flags and make targets. Where a message used to
// carry its advice at its end, the printed text is the same, byte for
// byte, as before the advice moved out (the "was" comments).
func TestErrorsMapToExitCodesAndAdvice(t *testing.T) {
	t.Parallel()
	refused := errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	notUp := func(db string) error {
		return &orchestrator.NotUpError{Database: db, State: "missing", Addr: "127.0.0.1:5432", Err: refused}
	}
	busy := &oplock.BusyError{Database: "rulesdb", Holder: "aidb backup (pid 12), since 10:04:05", Timeout: 5 * time.Minute}
	for _, tc := range []struct {
		name string
		err  error
		code int
		text string // what aidb prints
	}{
		{"plain failure", errors.New("boom"), 1, "aidb: boom\n"},
		{"bad input", fmt.Errorf("up: %w", fault.BadInput(errors.New(`unknown database "x"`))), 2,
			"aidb: up: unknown database \"x\"\n"},
		{"bad input through the exitcode shim", exitcode.BadInput(errors.New("--rows 0: must be at least 1")), 2,
			"aidb: --rows 0: must be at least 1\n"},
		{"difference", fault.New(fault.Differs, errors.New("1 of 1 backup(s) differ from their manifests: [a.sql]")), 3,
			"aidb: 1 of 1 backup(s) differ from their manifests: [a.sql]\n"},
		{"difference through the exitcode shim", &exitcode.Error{Code: exitcode.Differs, Err: errors.New("table t differs")}, 3,
			"aidb: table t differs\n"},
		{"cancelled", fmt.Errorf("backup rulesdb: %w", context.Canceled), 130,
			"aidb: backup rulesdb: context canceled\n"},
		{"not up", fmt.Errorf("backup rulesdb: %w", notUp("rulesdb")), 1,
			"aidb: backup rulesdb: rulesdb is not up (container missing, nothing answers on 127.0.0.1:5432): dial tcp 127.0.0.1:5432: connect: connection refused; run make -f Makefile.ai ai-db-up (or aidb up rulesdb) first\n"},
		{"two not up: one piece of advice naming both", errors.Join(notUp("memorydb"), notUp("rulesdb")), 1,
			"aidb: memorydb is not up (container missing, nothing answers on 127.0.0.1:5432): dial tcp 127.0.0.1:5432: connect: connection refused\n" +
				"rulesdb is not up (container missing, nothing answers on 127.0.0.1:5432): dial tcp 127.0.0.1:5432: connect: connection refused\n" +
				"aidb: run make -f Makefile.ai ai-db-up (or aidb up memorydb rulesdb) first\n"},
		{"not up does not hide bad input joined with it", errors.Join(notUp("memorydb"), fault.BadInput(errors.New("bad"))), 2,
			"aidb: memorydb is not up (container missing, nothing answers on 127.0.0.1:5432): dial tcp 127.0.0.1:5432: connect: connection refused\nbad\n" +
				"aidb: run make -f Makefile.ai ai-db-up (or aidb up memorydb) first\n"},
		// was: "rulesdb is busy: ... for longer than 5m0s; wait for it to finish, or raise --lock-timeout"
		{"database busy", busy, 1,
			"aidb: rulesdb is busy: aidb backup (pid 12), since 10:04:05 has held its operation lock for longer than 5m0s; wait for it to finish, or raise --lock-timeout\n"},
		// was: "the backup folder backups is busy: ... for longer than 1s; wait for it, or raise --lock-timeout"
		{"folder busy", &oplock.BusyError{Folder: "backups", Holder: "aidb restore (pid 7, since 10:00:00)", Timeout: time.Second}, 1,
			"aidb: the backup folder backups is busy: aidb restore (pid 7, since 10:00:00) has held its lock for longer than 1s; wait for it, or raise --lock-timeout\n"},
		{"ready timeout", fmt.Errorf("up rulesdb: %w", &orchestrator.NotReadyError{Container: "p-rulesdb", Reason: "did not answer SELECT 1 within 1m0s", Timeout: time.Minute, Logs: "LOG:  starting"}), 1,
			"aidb: up rulesdb: database container p-rulesdb did not answer SELECT 1 within 1m0s\nits last log lines:\n  LOG:  starting\nsee the whole log with: docker logs p-rulesdb\n" +
				"aidb: raise ready_timeout in aidb.yaml or --timeout\n"},
		{"crash is not a slow start", &orchestrator.NotReadyError{Container: "p-rulesdb", Reason: "stopped while starting (exited, exit code 1)", Logs: "FATAL:  bad"}, 1,
			"aidb: database container p-rulesdb stopped while starting (exited, exit code 1)\nits last log lines:\n  FATAL:  bad\nsee the whole log with: docker logs p-rulesdb\n"},
		{"previous container kept renamed", &orchestrator.PutBackError{Database: "rulesdb", Container: "p-rulesdb-aidb-previous", Renamed: true, Err: errors.New("new one crashed"), PutBack: errors.New("rename failed")}, 1,
			"aidb: new one crashed\nputting back rulesdb's previous container failed too: rename failed\nit is kept, stopped, as p-rulesdb-aidb-previous, with the volume and its data untouched\n" +
				"aidb: the next aidb up puts it back\n"},
		{"services left running", &orchestrator.LeftRunningError{Err: errors.New("api waits for sick, which did not become healthy within 5s")}, 1,
			"aidb: api waits for sick, which did not become healthy within 5s\nthe services this run started are left running for inspection\n" +
				"aidb: see them with aidb status; stop them with aidb down --all, or remove everything with make -f Makefile.ai ai-db-nuke\n"},
		{"negative migration target", fmt.Errorf("migrate down rulesdb: %w", &migrations.VersionError{Version: -1}), 2,
			"aidb: migrate down rulesdb: target version -1: a version is 0 or more; give --to 0 or more (0 reverts every migration)\n"},
		// was: "database is not migrated: rulesdb has no table rules; run make -f Makefile.ai ai-db-migrate first"
		{"seed: not migrated", &seed.RefusedError{Database: "rulesdb", Table: "rules", Err: seed.ErrNotMigrated}, 1,
			"aidb: database is not migrated: rulesdb has no table rules; run make -f Makefile.ai ai-db-migrate first\n"},
		{"seed: not empty", exitcode.BadInput(&seed.RefusedError{Database: "rulesdb", Table: "rules", Err: seed.ErrNotEmpty}), 2,
			"aidb: database already holds data: rulesdb.rules has rows; seed fills empty databases only; for a fresh one: aidb nuke rulesdb, then up and migrate\n"},
		// was: "build postgres image: debootstrap needs root; run again as root (e.g. sudo make -f Makefile.ai ai-image)"
		{"image build needs root", fmt.Errorf("%w", pgimage.ErrNeedsRoot), 1,
			"aidb: build postgres image: debootstrap needs root; run again as root (e.g. sudo make -f Makefile.ai ai-image)\n"},
		// was: "... (a plain pg_dump file restores, unverified, with aidb restore)"
		{"verify: no manifest", &verify.NoManifestError{File: "old.sql"}, 1,
			"aidb: old.sql has no manifest, so there is nothing to verify it against (a plain pg_dump file restores, unverified); restore it, unverified, with aidb restore\n"},
		// was: "...: take one with aidb backup rulesdb --schema-only"
		{"verify: no schema for a data-only backup", &verify.NoSchemaError{File: "rulesdb-data-1.sql", Database: "rulesdb", Version: 3, Dir: "backups"}, 1,
			"aidb: rulesdb-data-1.sql is data-only and rulesdb has no migrations at version 3 and no intact schema backup at that version in backups; take one with aidb backup rulesdb --schema-only\n"},
	} {
		assert.Equal(t, tc.code, exitCode(tc.err), tc.name)
		assert.Equal(t, tc.text, errorText(tc.err), tc.name)
	}
	assert.Equal(t, 0, exitCode(nil))
}

// A refused login names the settings to put back (the library's words) and
// then what to run (cmd's).
func TestLoginErrorAdvice(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("up rulesdb: %w", &orchestrator.LoginError{Container: "p-rulesdb", Code: "28P01", Err: errors.New("password authentication failed"), Database: "rulesdb", User: "rules"})
	assert.Equal(t, []string{"once they match, run aidb up again"}, advice(err))
	assert.Equal(t, 1, exitCode(err))
	assert.NotContains(t, err.Error(), "aidb up", "the library names no command")
}

// The verify table gives the reason a file could not be verified with the
// advice of the error behind it; a result with no error kept (read back
// from JSON, say) keeps its text as it is.
func TestVerifyTableReasonsCarryAdvice(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	writeVerifyTable(&out, []verify.Result{
		{File: "backups/old.sql", Error: "old.sql has no manifest", Err: &verify.NoManifestError{File: "old.sql"}},
		{File: "backups/gone.sql", Error: "open gone.sql: no such file or directory"},
	})
	assert.Contains(t, out.String(), "old.sql: not verified: old.sql has no manifest; restore it, unverified, with aidb restore\n")
	assert.Contains(t, out.String(), "gone.sql: not verified: open gone.sql: no such file or directory\n")
}
