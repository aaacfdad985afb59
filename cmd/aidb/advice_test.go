package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/aidb/aidb/internal/archive/backupfile"
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
		{"a flag refused", fault.BadInput(errors.New("--rows 0: must be at least 1")), 2,
			"aidb: --rows 0: must be at least 1\n"},
		{"difference", fault.New(fault.Differs, errors.New("1 of 1 backup(s) differ from their manifests: [a.sql]")), 3,
			"aidb: 1 of 1 backup(s) differ from their manifests: [a.sql]\n"},
		{"cancelled", fmt.Errorf("backup rulesdb: %w", context.Canceled), 130,
			"aidb: backup rulesdb: context canceled\n"},
		{"not up", fmt.Errorf("backup rulesdb: %w", notUp("rulesdb")), 1,
			"aidb: backup rulesdb: rulesdb is not up (container missing, nothing answers on 127.0.0.1:5432): dial tcp 127.0.0.1:5432: connect: connection refused; run aidb up rulesdb first\n"},
		{"two not up: one piece of advice naming both", errors.Join(notUp("memorydb"), notUp("rulesdb")), 1,
			"aidb: memorydb is not up (container missing, nothing answers on 127.0.0.1:5432): dial tcp 127.0.0.1:5432: connect: connection refused\n" +
				"rulesdb is not up (container missing, nothing answers on 127.0.0.1:5432): dial tcp 127.0.0.1:5432: connect: connection refused\n" +
				"aidb: run aidb up memorydb rulesdb first\n"},
		{"not up does not hide bad input joined with it", errors.Join(notUp("memorydb"), fault.BadInput(errors.New("bad"))), 2,
			"aidb: memorydb is not up (container missing, nothing answers on 127.0.0.1:5432): dial tcp 127.0.0.1:5432: connect: connection refused\nbad\n" +
				"aidb: run aidb up memorydb first\n"},
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
				"aidb: see them with aidb status; stop them with aidb down --all, or remove everything with aidb nuke\n"},
		{"negative migration target", fmt.Errorf("migrate down rulesdb: %w", &migrations.VersionError{Version: -1}), 2,
			"aidb: migrate down rulesdb: target version -1: a version is 0 or more; give --to 0 or more (0 reverts every migration)\n"},
		// was: "database is not migrated: rulesdb has no table rules; run make -f Makefile.ai ai-db-migrate first"
		{"seed: not migrated", &seed.RefusedError{Database: "rulesdb", Table: "rules", Err: seed.ErrNotMigrated}, 1,
			"aidb: database is not migrated: rulesdb has no table rules; run aidb migrate first\n"},
		{"seed: not empty", fault.BadInput(&seed.RefusedError{Database: "rulesdb", Table: "rules", Err: seed.ErrNotEmpty}), 2,
			"aidb: database already holds data: rulesdb.rules has rows; seed fills empty databases only; for a fresh one: aidb nuke rulesdb, then up and migrate\n"},
		{"restore: a missing extension names an image that has it", fmt.Errorf("restore memorydb: %w", &restore.ExtensionError{Database: "memorydb", File: "memorydb-1.sql", Image: "postgres:15",
			Missing: []string{"vector"}, Images: map[string]string{"vector": "pgvector/pgvector:pg17"}, BackupImage: "aidb.local/pgvector:pg17"}), 2,
			"aidb: restore memorydb: memorydb-1.sql needs the extension vector, which memorydb's server (image postgres:15) does not have; pgvector/pgvector:pg17 has vector (the backup was taken on aidb.local/pgvector:pg17); nothing was changed; " +
				"run memorydb on pgvector/pgvector:pg17 (its image: in the compose file), then restore again\n"},
		// was: "build postgres image: debootstrap needs root; run again as root (e.g. sudo make -f Makefile.ai ai-image)"
		{"image build needs root", fmt.Errorf("%w", pgimage.ErrNeedsRoot), 1,
			"aidb: build postgres image: debootstrap needs root; run again as root (e.g. sudo aidb image build)\n"},
		{"check: stale", &freshness.StaleError{Stale: []freshness.Status{{Database: "rulesdb", Problem: "the newest backup is 30h old (max 26h)"}}}, 4,
			"aidb: no fresh backup of rulesdb: the newest backup is 30h old (max 26h); take a backup with aidb backup --verify (it verifies each file), and see why the scheduled one did not run\n"},
		// was: "... (a plain pg_dump file restores, unverified, with aidb restore)"
		{"verify: no manifest", &verify.NoManifestError{File: "old.sql"}, 1,
			"aidb: old.sql has no manifest, so there is nothing to verify it against (a plain pg_dump file restores, unverified); restore it, unverified, with aidb restore\n"},
		// was: "...: take one with aidb backup rulesdb --schema-only"
		{"verify: no schema for a data-only backup", &verify.NoSchemaError{File: "rulesdb-data-1.sql", Database: "rulesdb", Version: 3, Dir: "backups"}, 1,
			"aidb: rulesdb-data-1.sql is data-only and rulesdb has no migrations at version 3 and no intact schema backup at that version in backups; take one with aidb backup rulesdb --schema-only\n"},
		// was: "backup file a.sql is a symbolic link ... or name the backup file itself; make -f Makefile.ai ai-db-list shows the backups there are"
		{"restore: a name that holds no backup", fmt.Errorf("verify: %w", &restore.FileError{File: "a.sql", Next: restore.NameAnother,
			Err: errors.New("backup file a.sql is a symbolic link that leads back to itself (a loop of links, a.sql -> b.sql -> a.sql): point it at a backup file, or name the backup file itself")}), 2,
			"aidb: verify: backup file a.sql is a symbolic link that leads back to itself (a loop of links, a.sql -> b.sql -> a.sql): point it at a backup file, or name the backup file itself; aidb list shows the backups there are\n"},
		// was: "x.sql has sha256 ... corrupt; restore another backup (make -f Makefile.ai ai-db-list shows which are whole)"
		{"restore: a damaged backup", &restore.FileError{File: "x.sql", Next: restore.RestoreAnother,
			Err: errors.New("x.sql has sha256 ab but its manifest says cd: the file was changed or is corrupt")}, 2,
			"aidb: x.sql has sha256 ab but its manifest says cd: the file was changed or is corrupt; restore another backup (aidb list shows which are whole)\n"},
		// was: "... the database's container has one: docker exec -i CONTAINER pg_restore -f - < r.dump > r.sql, CONTAINER as aidb status shows it), then restore r.sql; nothing was changed"
		{"restore: an archive to convert in the container", &restore.FileError{File: "r.dump", Next: restore.RunInContainer,
			Err: errors.New("r.dump is a pg_dump custom-format (pg_dump -Fc) archive, ...: docker exec -i CONTAINER pg_restore -f - < r.dump > r.sql), then restore r.sql; nothing was changed")}, 2,
			"aidb: r.dump is a pg_dump custom-format (pg_dump -Fc) archive, ...: docker exec -i CONTAINER pg_restore -f - < r.dump > r.sql), then restore r.sql; nothing was changed; CONTAINER is the database's container, as aidb status shows it\n"},
		{"restore: a file to fix says how itself", &restore.FileError{File: "x.sql", Next: restore.FixFile,
			Err: errors.New("backup file x.sql cannot be read: permission denied; give this user read access, or run as the user that owns it")}, 2,
			"aidb: backup file x.sql cannot be read: permission denied; give this user read access, or run as the user that owns it\n"},
		// was: the same, byte for byte
		{"restore: another database's backup", &restore.WrongDatabaseError{File: "m.sql", Backup: "memorydb", Target: "rulesdb"}, 2,
			"aidb: m.sql is a backup of memorydb, not of rulesdb; restore it into memorydb, or pass --as-database memorydb to restore it into rulesdb deliberately\n"},
		// was: "f.sql is a full backup, not a data-only one: restore it without --data-only (make -f Makefile.ai ai-db-restore BACKUP=…)"
		{"restore: a full backup for a data-only restore", &restore.KindError{File: "f.sql", Backup: backupfile.Full, DataOnly: true}, 2,
			"aidb: f.sql is a full backup, not a data-only one; restore it without --data-only (aidb restore <db> f.sql)\n"},
		// was: "d.sql is a data-only backup: restore it with --data-only (make -f Makefile.ai ai-db-restore-data BACKUP=…) onto a migrated schema"
		{"restore: a data-only backup for a full restore", &restore.KindError{File: "d.sql", Backup: backupfile.Data}, 2,
			"aidb: d.sql is a data-only backup, not a full or schema one; restore it with --data-only (aidb restore --data-only <db> d.sql) onto a migrated schema\n"},
		// was: "... Restoring it would replace all of them: restore it into the database it came from, or pass --as-database <that database> to replace rulesdb's tables with it deliberately; nothing was changed"
		{"restore: a file without a manifest that looks foreign", &restore.ForeignError{File: "m.sql", Target: "rulesdb", FileTables: []string{"public.memories"}, TargetTables: []string{"public.rules"}}, 2,
			"aidb: m.sql looks like a backup of another database: it has no manifest to say which, and it creates or loads public.memories, none of rulesdb's tables (rulesdb holds public.rules). " +
				"Restoring it would replace all of them; nothing was changed; restore it into the database it came from, or pass --as-database <that database> to replace rulesdb's tables with it deliberately\n"},
		// was: "... Restore the schema first: run make -f Makefile.ai ai-db-migrate, or restore the schema backup s.sql (aidb restore rulesdb s.sql); nothing was changed"
		{"restore: a schema that cannot take the data, with a schema backup", &restore.SchemaError{Database: "rulesdb", File: "d.sql", Missing: []string{"table public.rules"}, Older: true, Version: 2, BackupVersion: 3, SchemaBackup: "s.sql"}, 2,
			"aidb: rulesdb cannot take the data of d.sql: it lacks table public.rules. Its migration version is 2; the backup was taken at 3. Restore the schema first; nothing was changed; " +
				"run aidb migrate, or restore the schema backup s.sql (aidb restore rulesdb s.sql)\n"},
		{"restore: a schema that cannot take the data, no schema backup", &restore.SchemaError{Database: "rulesdb", File: "d.sql", Missing: []string{"column public.rules.x"}}, 2,
			"aidb: rulesdb cannot take the data of d.sql: it lacks column public.rules.x. Restore the schema first; nothing was changed; run aidb migrate\n"},
		{"backup: a forced helper where the helper path does not work", fmt.Errorf("dump rulesdb: %w", &pgtools.PathError{Reason: "the engine's containers see another folder at /b than aidb does"}), 2,
			"aidb: dump rulesdb: the helper transport does not work with this engine: the engine's containers see another folder at /b than aidb does; use --via stream (or --via auto, which takes it by itself where the helper does not work)\n"},
		{"restore: a target whose columns differ from the backup's, which carries its schema", &restore.SchemaError{Database: "rulesdb", File: "d.sql",
			Missing: []string{"table public.scratch"}, Changed: []string{"column public.scores.points is text here, integer in the backup"},
			Extra: []string{"column public.labels.color"}, CarriesSchema: true}, 2,
			"aidb: rulesdb cannot take the data of d.sql: it lacks table public.scratch. Its column public.scores.points is text here, integer in the backup. " +
				"It has column public.labels.color, which the backup lacks and its rows cannot leave empty (NOT NULL without a default). Restore the schema first; nothing was changed; " +
				"run aidb migrate; give each column the backup's type (ALTER TABLE … ALTER COLUMN … TYPE …); " +
				"give each such column a default, or drop it (ALTER TABLE … ALTER COLUMN … SET DEFAULT …, or DROP COLUMN …); " +
				"the schema the backup was taken from is in its manifest: jq -r .schema.sql 'd.sql.manifest.json' prints how it creates each table\n"},
		{"restore: only an extra column", &restore.SchemaError{Database: "rulesdb", File: "d.sql", Extra: []string{"column public.labels.color"}, CarriesSchema: true}, 2,
			"aidb: rulesdb cannot take the data of d.sql: it has column public.labels.color, which the backup lacks and its rows cannot leave empty (NOT NULL without a default). " +
				"Restore the schema first; nothing was changed; give each such column a default, or drop it (ALTER TABLE … ALTER COLUMN … SET DEFAULT …, or DROP COLUMN …)\n"},
		{"restore: a difference", fmt.Errorf("restore rulesdb: %w", &restore.DifferenceError{Database: "rulesdb", Differences: []string{"public.rules: 1 rows (the backup has 2)"}}), 3,
			"aidb: restore rulesdb: restore of rulesdb did not reproduce the backup, so the database was left as it was:\n  public.rules: 1 rows (the backup has 2)\n"},
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
		{File: "backups/cut.sql", Error: "cut.sql was cut short; nothing was changed",
			Err: &restore.FileError{File: "cut.sql", Next: restore.RestoreAnother, Err: errors.New("cut.sql was cut short; nothing was changed")}},
	})
	assert.Contains(t, out.String(), "old.sql: not verified: old.sql has no manifest; restore it, unverified, with aidb restore\n")
	assert.Contains(t, out.String(), "cut.sql: not verified: cut.sql was cut short; nothing was changed; restore another backup (aidb list shows which are whole)\n")
	assert.Contains(t, out.String(), "gone.sql: not verified: open gone.sql: no such file or directory\n")
}

// From a target of Makefile.ai (AIDB_VIA_MAKE), advice names make targets;
// run by hand, aidb commands.
func TestAdviceSpeaksTheInterfaceAidbRanFrom(t *testing.T) {
	t.Parallel()
	notUp := fmt.Errorf("backup rulesdb: %w", &orchestrator.NotUpError{Database: "rulesdb", State: "missing", Addr: "127.0.0.1:5432", Err: errors.New("refused")})
	assert.Equal(t, []string{"run make -f Makefile.ai ai-db-up (or aidb up rulesdb) first"}, adviceIn(notUp, true))
	assert.Equal(t, []string{"run aidb up rulesdb first"}, adviceIn(notUp, false))
	major := &orchestrator.MajorMismatchError{Database: "rulesdb", Image: "postgres:17"}
	assert.Equal(t, []string{"make -f Makefile.ai ai-db-upgrade DB=rulesdb IMAGE=postgres:17; then make -f Makefile.ai ai-db-migrate"}, adviceIn(major, true))
	assert.Equal(t, []string{"aidb upgrade rulesdb --image postgres:17; then aidb migrate"}, adviceIn(major, false))
	stale := &freshness.StaleError{Stale: []freshness.Status{{Database: "rulesdb", Problem: "old"}}}
	for _, mk := range []bool{true, false} {
		for _, line := range adviceIn(stale, mk) {
			assert.Equal(t, mk, strings.Contains(line, "make -f Makefile.ai"), "mk=%v: %s", mk, line)
		}
	}
}
