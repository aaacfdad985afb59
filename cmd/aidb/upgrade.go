package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/backup"
	"github.com/aidb/aidb/backupdir"
	"github.com/aidb/aidb/backupfile"
	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/fault"
	"github.com/aidb/aidb/manifest"
	"github.com/aidb/aidb/orchestrator"
	"github.com/aidb/aidb/pgrun"
	"github.com/aidb/aidb/upgrade"
)

func (a *app) upgradeCommand() *cobra.Command {
	var image, via string
	var finish, rollback bool
	cmd := &cobra.Command{
		Use:   "upgrade <db> --image REF | --finish | --rollback",
		Short: "Move a database to another PostgreSQL major: backup, restore on a new volume, verify, switch",
		Long: `Move a database to another PostgreSQL major (make: ai-db-upgrade DB=rulesdb IMAGE=postgres:17).

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
after the backup is not carried over.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fault.BadInput(errors.New("usage: aidb upgrade <db> --image REF, or --finish, or --rollback (one database)"))
			}
			n := 0
			for _, set := range []bool{image != "", finish, rollback} {
				if set {
					n++
				}
			}
			if n != 1 {
				return fault.BadInput(errors.New("give one of --image REF (upgrade), --finish (remove the old container and volume) or --rollback (switch back)"))
			}
			if image != "" {
				if _, err := orchestrator.ImageMajor(image); err != nil {
					return fault.BadInput(fmt.Errorf("--image: %w", err))
				}
			}
			t, err := pgrun.ParseTransport(via)
			if err != nil {
				return fault.BadInput(err)
			}
			ctx := cmd.Context()
			s, err := a.open(ctx, args)
			if err != nil {
				return err
			}
			defer s.Close()
			db := s.dbs[0]
			switch {
			case finish:
				removed, err := upgrade.Finish(ctx, s.orch, db)
				if err != nil {
					return err
				}
				a.say("%s: upgrade finished; removed %s", db.Name, strings.Join(removed, " and "))
				return a.printUpgradeJSON(map[string]any{"database": db.Name, "removed": removed})
			case rollback:
				res, err := upgrade.Rollback(ctx, s.orch, upgrade.RollbackRequest{DB: db, Progress: a.progress,
					SafetyBackup: func(ctx context.Context) (string, error) {
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
			if err := refuseUpgradeWithSnapshots(ctx, s, db); err != nil {
				return err
			}
			if err := backupdir.Ensure(s.project.BackupDir); err != nil {
				return err
			}
			keys, err := ageKeys(s.project)
			if err != nil {
				return err
			}
			res, err := upgrade.Run(ctx, s.orch, upgrade.Request{
				DB: db, Image: image, ComposeFile: s.project.ComposeFile, Progress: a.progress,
				Backup: func(ctx context.Context) (string, error) {
					release, err := a.lock(ctx, s, s.dbs, "upgrade", true)
					if err != nil {
						return "", err
					}
					defer release()
					r, err := a.runBackup(cmd, s, backup.Request{Databases: []compose.Database{db}, Kind: backupfile.Full, Transport: t})
					if err != nil {
						return "", err
					}
					return r.Files[0].Path, nil
				},
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
		},
	}
	f := cmd.Flags()
	f.StringVar(&image, "image", "", "the image to move to, e.g. postgres:17")
	f.BoolVar(&finish, "finish", false, "remove the container and volume the database was upgraded from")
	f.BoolVar(&rollback, "rollback", false, "switch back to the container and volume it was upgraded from (after a safety backup)")
	f.StringVar(&via, "via", "auto", "how files reach pg_dump and psql: helper, stream or auto")
	return cmd
}

// printUpgradeJSON prints v with --json.
func (a *app) printUpgradeJSON(v any) error {
	if !a.json {
		return nil
	}
	return a.printJSON(v)
}
