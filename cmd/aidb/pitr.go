package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/pitr"
)

const pitrLong = `Point-in-time recovery (make: ai-db-pitr-enable DB=rulesdb).

enable <db> streams the database's WAL: a sidecar container of its own image
(aidb.role=wal) runs pg_receivewal on the replication slot aidb_wal_<db> into
<backupdir>/wal/<db>/, and a base backup (pg_basebackup, tar, with its WAL)
goes to <backupdir>/base/<db>/<timestamp>/. It adds "host replication all all
scram-sha-256" to pg_hba.conf when absent and sets max_slot_wal_keep_size
(default 2GB) by ALTER SYSTEM, both reloaded without a restart.
base-backup <db> takes another base backup; status shows the window; verify
replays the newest base backup and every whole segment in a throwaway volume.
disable <db> removes the sidecar and drops the slot (make: ai-db-pitr-disable
DB=rulesdb); the segments and base backups stay in the folder.

aidb restore <db> --to-time TIME (or --to-lsn LSN, --to-latest) recovers into a new volume
and switches the database to it; --finish or --rollback afterwards.`

func (a *app) pitrCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "pitr", Short: "Point-in-time recovery: stream WAL, base backups, the recoverable window", Long: pitrLong}
	var o enableOptions
	var junit string
	enable := &cobra.Command{Use: "enable <db>", Short: "Stream a database's WAL into the backup folder and take a base backup",
		RunE: func(cmd *cobra.Command, args []string) error { return a.pitrEnable(cmd, args, o) }}
	enable.Flags().StringVar(&o.keep, "max-slot-wal-keep-size", pitr.DefaultMaxSlotWALKeep, "the most WAL the slot may hold back on the server (max_slot_wal_keep_size)")
	enable.Flags().BoolVar(&o.synchronous, "synchronous", false, "pg_receivewal --synchronous: flush each write at once (the server waits for it only where synchronous_standby_names names aidb-wal)")
	base := &cobra.Command{Use: "base-backup <db>", Short: "Take a base backup of a database with PITR on",
		RunE: func(cmd *cobra.Command, args []string) error { return a.pitrBase(cmd, args) }}
	status := &cobra.Command{Use: "status [db...]", Short: "Show each database's stream, slot and recoverable window",
		RunE: func(cmd *cobra.Command, args []string) error { return a.pitrStatus(cmd, args) }}
	verify := &cobra.Command{Use: "verify <db>...", Short: "Prove the WAL stream restorable: replay the newest base backup and every whole segment in a throwaway volume",
		RunE: func(cmd *cobra.Command, args []string) error { return a.pitrVerify(cmd, args, junit) }}
	verify.Flags().StringVar(&junit, "junit", "", "also write a JUnit XML report to this file")
	disable := &cobra.Command{Use: "disable <db>", Short: "Stop streaming a database's WAL: remove its sidecar and drop its slot (segments and base backups stay)",
		RunE: func(cmd *cobra.Command, args []string) error { return a.pitrDisable(cmd, args) }}
	cmd.AddCommand(enable, base, status, verify, disable, a.pitrPruneCommand())
	cmd.AddCommand(a.pitrShipCommands()...)
	return cmd
}

// oneDB refuses anything but one database argument.
func oneDB(args []string, usage string) error {
	if len(args) != 1 {
		return fault.BadInput(fmt.Errorf("usage: %s (one database)", usage))
	}
	return nil
}

// enableOptions are pitr enable's flags.
type enableOptions struct {
	keep        string
	synchronous bool
}

// pitrEnable runs aidb pitr enable.
func (a *app) pitrEnable(cmd *cobra.Command, args []string, o enableOptions) error {
	if err := oneDB(args, "aidb pitr enable <db>"); err != nil {
		return err
	}
	if err := pitr.CheckSize(o.keep); err != nil {
		return err
	}
	s, err := a.openLocked(cmd.Context(), args, "pitr enable", true)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	res, err := pitr.Enable(cmd.Context(), s.eng, pitr.EnableRequest{DB: s.dbs[0], BackupDir: s.project.BackupDir, MaxSlotWALKeep: o.keep, Synchronous: o.synchronous, Progress: a.progress})
	if err != nil {
		return err
	}
	a.say("%s: WAL streams from slot %s into %s (%s); max_slot_wal_keep_size = %s", res.Database, res.Slot, res.Folder, res.Stream, res.MaxSlotWALKeep)
	a.say("%s: base backup %s/%s; recoverable from %s", res.Database, res.BaseFolder, res.Base.Name, res.Base.End.UTC().Format(pitr.TimeLayout))
	return a.printPITRJSON(res)
}

// pitrDisable runs aidb pitr disable.
func (a *app) pitrDisable(cmd *cobra.Command, args []string) error {
	if err := oneDB(args, "aidb pitr disable <db>"); err != nil {
		return err
	}
	s, err := a.openLocked(cmd.Context(), args, "pitr disable", true)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	res, err := pitr.Disable(cmd.Context(), s.eng, s.dbs[0], s.project.BackupDir)
	if res.Stream != "" {
		a.say("%s: removed WAL stream %s", res.Database, res.Stream)
	}
	if err != nil {
		return err
	}
	if res.Slot != "" {
		a.say("%s: dropped replication slot %s: the server holds no WAL back for it", res.Database, res.Slot)
	}
	a.say("%s: point-in-time recovery is off; the segments (%s) and base backups (%s) stay: aidb pitr enable %s turns it on again", res.Database, res.Folders.WAL, res.Folders.Base, res.Database)
	return a.printPITRJSON(res)
}

// pitrBase runs aidb pitr base-backup.
func (a *app) pitrBase(cmd *cobra.Command, args []string) error {
	if err := oneDB(args, "aidb pitr base-backup <db>"); err != nil {
		return err
	}
	s, err := a.openLocked(cmd.Context(), args, "pitr base-backup", true)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	b, err := pitr.TakeBaseBackup(cmd.Context(), s.eng, s.dbs[0], s.project.BackupDir)
	if err != nil {
		return err
	}
	a.say("%s: base backup %s taken; recoverable from %s", s.dbs[0].Name, b.Name, b.End.UTC().Format(pitr.TimeLayout))
	return a.printPITRJSON(b)
}

// pitrStatus runs aidb pitr status.
func (a *app) pitrStatus(cmd *cobra.Command, args []string) error {
	s, err := a.open(cmd.Context(), args)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	out, err := pitrStatuses(cmd.Context(), s)
	if err != nil {
		return err
	}
	for _, st := range out {
		a.say("%s", st)
	}
	if len(out) == 0 {
		a.say("no database has point-in-time recovery on: aidb pitr enable <db> turns it on")
	}
	return a.printPITRJSON(map[string]any{"databases": out})
}

func (a *app) printPITRJSON(v any) error {
	if !a.json {
		return nil
	}
	return a.printJSON(v)
}

// restoreTimeOptions are restore's point-in-time flags.
type restoreTimeOptions struct {
	toTime, toLSN    string
	toLatest         bool
	finish, rollback bool
	lsn              pitr.LSN
}

func (o *restoreTimeOptions) flags(f *pflag.FlagSet) {
	f.StringVar(&o.toTime, "to-time", "", `recover to this time from the WAL stream ("2026-12-05 15:01:30", local time unless it has an offset)`)
	f.StringVar(&o.toLSN, "to-lsn", "", "recover to this WAL position (0/3000028) from the WAL stream")
	f.BoolVar(&o.toLatest, "to-latest", false, "recover to the newest whole WAL segment")
	f.BoolVar(&o.finish, "finish", false, "remove the container and volume a restore to a time replaced")
	f.BoolVar(&o.rollback, "rollback", false, "switch back to the container and volume a restore to a time replaced (after a safety backup)")
}

// set says whether a point-in-time flag was given.
func (o *restoreTimeOptions) set() bool {
	return o.toTime != "" || o.toLSN != "" || o.toLatest || o.finish || o.rollback
}

// check refuses bad combinations and reads the target.
func (o *restoreTimeOptions) check(args []string) (time.Time, error) {
	n := 0
	for _, b := range []bool{o.toTime != "", o.toLSN != "", o.toLatest, o.finish, o.rollback} {
		if b {
			n++
		}
	}
	if n != 1 || len(args) != 1 {
		return time.Time{}, fault.BadInput(errors.New("usage: aidb restore <db> --to-time TIME | --to-lsn LSN | --to-latest | --finish | --rollback (one database, one of them)"))
	}
	if o.toLSN != "" {
		lsn, err := pitr.ParseLSN(o.toLSN)
		if err != nil || lsn == 0 {
			return time.Time{}, fault.BadInput(fmt.Errorf("--to-lsn %q: give a WAL position as PostgreSQL writes it, like 0/3000028 (pg_current_wal_lsn())", o.toLSN))
		}
		o.lsn = lsn
	}
	if o.toTime == "" {
		return time.Time{}, nil
	}
	return pitr.ParseTarget(o.toTime, time.Local)
}

// restoreToTime runs aidb restore --to-time, --to-latest, --finish and
// --rollback.
func (a *app) restoreToTime(cmd *cobra.Command, args []string, o *restoreTimeOptions) error {
	target, err := o.check(args)
	if err != nil {
		return err
	}
	if o.finish || o.rollback {
		return a.restoreTimeUndo(cmd, args, o.finish)
	}
	s, err := a.openLocked(cmd.Context(), args, "restore", true)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	off, err := a.projectOffsite(cmd.Context(), s.project)
	if err != nil {
		return err
	}
	res, err := pitr.Restore(cmd.Context(), s.eng, pitr.RestoreRequest{DB: s.dbs[0], BackupDir: s.project.BackupDir, Target: target, TargetLSN: o.lsn, Progress: a.progress, Offsite: off,
		Confirm: func(w pitr.Window, b pitr.Base) error {
			return a.confirm(fmt.Sprintf("restore %s to %s from base backup %s (window %s)? Its current container and volume are kept until --finish", s.dbs[0].Name, o.toTime+o.toLSN, b.Name, w))
		}})
	if err != nil {
		return err
	}
	replayed := "no commit after the base backup"
	if !res.Replayed.IsZero() {
		replayed = "last replayed commit " + res.Replayed.UTC().Format(pitr.TimeLayout)
	}
	a.say("%s: recovered from base backup %s (%s) onto volume %s", res.Database, res.Base, replayed, res.Volume)
	a.say("%s: the previous container and volume %s are kept, stopped: aidb restore %s --finish removes them, --rollback switches back; aidb pitr enable %s streams the recovered database's WAL", res.Database, res.PreviousVolume, res.Database, res.Database)
	return a.printPITRJSON(res)
}

// restoreTimeUndo finishes (removes the kept container and volume) or
// rolls back a restore to a time, as aidb upgrade --finish and --rollback
// do an upgrade: the same switch made it. The rollback's safety backup
// takes the locks itself.
func (a *app) restoreTimeUndo(cmd *cobra.Command, args []string, finish bool) error {
	s, err := a.open(cmd.Context(), args)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	if finish {
		return a.upgradeFinish(cmd.Context(), s)
	}
	if err := a.upgradeRollback(cmd, s); err != nil {
		return err
	}
	// A stream started on the recovered server streams its timeline,
	// which the server put back does not have.
	name, err := s.orch.RemoveWALStream(cmd.Context(), s.dbs[0])
	if name != "" {
		a.say("%s: removed WAL stream %s of the recovered server: aidb pitr enable %s streams again", s.dbs[0].Name, name, s.dbs[0].Name)
	}
	return err
}

// pitrStatuses are the statuses of s's databases with PITR on (a WAL
// stream or a base backup), for aidb status and aidb pitr status.
func pitrStatuses(ctx context.Context, s *session) ([]pitr.Status, error) {
	var out []pitr.Status
	for _, db := range s.dbs {
		st, err := pitr.StatusOf(ctx, s.eng, db, s.project.BackupDir)
		if err != nil {
			return nil, err
		}
		if st.Stream != nil || st.Window != nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// pitrVerify runs aidb pitr verify: each named database's (all: those
// with a window) stream proven restorable in a throwaway volume.
func (a *app) pitrVerify(cmd *cobra.Command, args []string, junit string) error {
	s, err := a.openLocked(cmd.Context(), args, "pitr verify", true)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	off, err := a.projectOffsite(cmd.Context(), s.project)
	if err != nil {
		return err
	}
	out := []pitr.VerifyResult{}
	var errs []error
	for _, db := range s.dbs {
		res, err := pitr.Verify(cmd.Context(), s.eng, db, s.project.BackupDir, off, a.progress)
		var none *pitr.NoWindowError
		if len(args) == 0 && errors.As(err, &none) {
			continue // all databases: those with PITR on
		}
		if err != nil {
			res.Error = err.Error()
			errs = append(errs, err)
		} else {
			a.say("%s: base backup %s and the WAL after it replay to %s and the database answers (window %s)", db.Name, res.Base, res.Replayed.UTC().Format(pitr.TimeLayout), res.Window)
		}
		out = append(out, res)
	}
	if err := writeReport(junit, func(w io.Writer) error { return pitr.WriteJUnit(w, out) }); err != nil {
		return err
	}
	if err := a.printPITRJSON(map[string]any{"verified": out}); err != nil {
		return err
	}
	return errors.Join(errs...)
}
