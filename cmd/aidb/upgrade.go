package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/ops/snapshot"
	"github.com/aidb/aidb/internal/ops/upgrade"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/store/folder"
	"github.com/aidb/aidb/orchestrator"
)

const upgradeLong = `Move a database to another PostgreSQL major (make: ai-db-upgrade DB=rulesdb IMAGE=postgres:17).

--image REF takes a full backup of the database as it runs, starts REF on a
new volume (<volume>-pg<major>), restores the backup there and compares it
with the backup's manifest, then switches the database to it: its container
is replaced by one of REF on the new volume. The old container and volume stay,
stopped, until --finish removes them or --rollback switches back (what was
written on the new major since is saved first as a safety backup). Any
failure leaves the old database running as before, and so does a write to it
after the backup (found just before the switch: stop the application's writers
first).

aidb does not edit your compose file: it says which line (or .env variable)
to change; until then aidb runs the new image for the database, and status
shows the difference. Stop the application's writers first: what is written
after the backup is not carried over.`

// upgradeOptions are upgrade's flags.
type upgradeOptions struct {
	image, via       string
	finish, rollback bool
}

func (a *app) upgradeCommand() *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "upgrade <db> --image REF | --finish | --rollback",
		Short: "Move a database to another PostgreSQL major: backup, restore on a new volume, verify, switch",
		Long:  upgradeLong,
		RunE:  func(cmd *cobra.Command, args []string) error { return a.upgrade(cmd, args, o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.image, "image", "", "the image to move to, e.g. postgres:17")
	f.BoolVar(&o.finish, "finish", false, "remove the container and volume the database was upgraded from")
	f.BoolVar(&o.rollback, "rollback", false, "switch back to the container and volume it was upgraded from (after a safety backup)")
	f.StringVar(&o.via, "via", "auto", "how files reach pg_dump and psql: helper, stream or auto")
	return cmd
}

// check refuses bad arguments and flags: one database, exactly one of
// --image, --finish and --rollback, a known image major and transport.
func (o *upgradeOptions) check(args []string) (pgtools.Transport, error) {
	if len(args) != 1 {
		return "", fault.BadInput(errors.New("usage: aidb upgrade <db> --image REF, or --finish, or --rollback (one database)"))
	}
	n := 0
	for _, set := range []bool{o.image != "", o.finish, o.rollback} {
		if set {
			n++
		}
	}
	if n != 1 {
		return "", fault.BadInput(errors.New("give one of --image REF (upgrade), --finish (remove the old container and volume) or --rollback (switch back)"))
	}
	if o.image != "" {
		if _, err := orchestrator.ImageMajor(o.image); err != nil {
			return "", fault.BadInput(fmt.Errorf("--image: %w", err))
		}
	}
	t, err := pgtools.ParseTransport(o.via)
	if err != nil {
		return "", fault.BadInput(err)
	}
	return t, nil
}

// upgrade runs aidb upgrade: --finish, --rollback or, with --image, the
// upgrade itself.
func (a *app) upgrade(cmd *cobra.Command, args []string, o *upgradeOptions) error {
	t, err := o.check(args)
	if err != nil {
		return err
	}
	s, err := a.open(cmd.Context(), args)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	switch {
	case o.finish:
		return a.upgradeFinish(cmd.Context(), s)
	case o.rollback:
		return a.upgradeRollback(cmd, s)
	}
	return a.upgradeTo(cmd, s, o.image, t)
}

// upgradeFinish removes the container and volume s's database was
// upgraded from.
func (a *app) upgradeFinish(ctx context.Context, s *session) error {
	db := s.dbs[0]
	removed, err := upgrade.Finish(ctx, s.orch, db)
	if err != nil {
		return err
	}
	a.say("%s: upgrade finished; removed %s", db.Name, strings.Join(removed, " and "))
	return a.printUpgradeJSON(map[string]any{"database": db.Name, "removed": removed})
}

// upgradeRollback switches s's database back to the container it was
// upgraded from, after a safety backup of what the new major holds.
func (a *app) upgradeRollback(cmd *cobra.Command, s *session) error {
	db := s.dbs[0]
	res, err := upgrade.Rollback(cmd.Context(), s.orch, upgrade.RollbackRequest{DB: db, Progress: a.progress,
		// The backup runs under cmd.Context(), the context Rollback passes.
		SafetyBackup: func(_ context.Context) (string, error) {
			files, err := a.safetyBackup(cmd, s, []compose.Database{db}, true, manifest.Safety{Command: "aidb upgrade --rollback", Reason: "what " + db.Name + " held on the new major before aidb upgrade --rollback switched it back"})
			if err != nil || len(files) == 0 {
				return "", err
			}
			return files[0].Path, nil
		}})
	if err != nil {
		return err
	}
	a.say("%s: rolled back to its container before the upgrade; removed %s", db.Name, strings.Join(res.Removed, " and "))
	return a.printUpgradeJSON(res)
}

// upgradeTo moves s's database to image (upgrade.Run) and says what
// changed and what to do next.
func (a *app) upgradeTo(cmd *cobra.Command, s *session, image string, t pgtools.Transport) error {
	if err := snapshot.RefuseUpgrade(cmd.Context(), target(s, s.dbs[0])); err != nil {
		return err
	}
	if err := folder.Ensure(s.project.BackupDir); err != nil {
		return err
	}
	keys, err := ageKeys(s.project)
	if err != nil {
		return err
	}
	db := s.dbs[0]
	res, err := upgrade.Run(cmd.Context(), s.orch, upgrade.Request{
		DB: db, Image: image, ComposeFile: s.project.ComposeFile, Progress: a.progress,
		Backup:    a.upgradeBackup(cmd, s, t),
		Stage:     upgrade.Stager(s.tools, upgrade.RestoreOptions{Transport: t, Dir: s.project.BackupDir, Keys: keys}),
		Unchanged: upgrade.Unchanged(s.orch.ConnString(db)),
	})
	if err != nil {
		return err
	}
	a.say("%s: upgraded from PostgreSQL %s to %s (%s): %s, %s restored from %s and equal to its manifest", res.Database, res.From, res.To, res.Image, counted(int64(res.Tables), "table"), counted(res.Rows, "row"), res.Backup)
	a.say("%s: the old container %s and volume %s are kept, stopped: aidb upgrade %s --finish removes them, aidb upgrade %s --rollback switches back", res.Database, res.Previous, res.PreviousVolume, res.Database, res.Database)
	a.say("%s: %s", res.Database, res.ComposeChange)
	return a.printUpgradeJSON(res)
}

// upgradeBackup is the upgrade's backup step: a full backup of s's
// database under the operation lock, returning its file.
func (a *app) upgradeBackup(cmd *cobra.Command, s *session, t pgtools.Transport) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		release, err := a.lock(ctx, s, s.dbs, "upgrade", true)
		if err != nil {
			return "", err
		}
		defer release()
		r, err := a.runBackup(cmd, s, backup.Request{Databases: []compose.Database{s.dbs[0]}, Kind: backupfile.Full, Transport: t})
		if err != nil {
			return "", err
		}
		return r.Files[0].Path, nil
	}
}

// printUpgradeJSON prints v with --json.
func (a *app) printUpgradeJSON(v any) error {
	if !a.json {
		return nil
	}
	return a.printJSON(v)
}
