package pitr

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/mount"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/orchestrator"
)

// Switcher is the upgrade mechanism a restore to a time switches the
// database by (*orchestrator.Orchestrator satisfies it).
type Switcher interface {
	UpgradeState(ctx context.Context, db compose.Database) (orchestrator.UpgradeState, error)
	CreateUpgradeVolume(ctx context.Context, db compose.Database, u orchestrator.Upgrade) error
	RemoveVolume(ctx context.Context, name string) error
	SwitchMajor(ctx context.Context, db compose.Database, u orchestrator.Upgrade) error
}

// Recoverer starts the server that replays WAL into the new volume
// (*pgtools.Runner satisfies it).
type Recoverer interface {
	StartRecovery(ctx context.Context, image string, db compose.Database, volume, target, walDir string, settings []string) (*pgtools.Throwaway, error)
}

// recoveryEngine runs the one-shot and the recovering server.
type recoveryEngine interface {
	Streams
	Recoverer
}

// RestoreEngine is everything a restore to a time asks of the engine.
type RestoreEngine interface {
	Streams
	Switcher
	Recoverer
}

// RestoreRequest restores one database to a time.
type RestoreRequest struct {
	DB        compose.Database
	BackupDir string
	// Target is the time to recover to; zero: the end of the newest whole
	// segment (--to-latest).
	Target time.Time
	// TargetLSN, if set, is the WAL position to recover to instead
	// (--to-lsn).
	TargetLSN LSN
	// Confirm, if set, is asked once the target is checked, before
	// anything changes.
	Confirm func(w Window, b Base) error
	// RecoveryTimeout bounds the replay (0: 30 minutes).
	RecoveryTimeout time.Duration
	// Offsite is the repository what the folder lacks is fetched from
	// first (zero: none).
	Offsite  Offsite
	Progress func(string)
	// amcheck, if set, receives what pg_amcheck finds in the recovered
	// database before its server stops (pitr verify).
	amcheck *pgtools.Amcheck
}

// RestoreResult is a finished restore to a time.
type RestoreResult struct {
	Database  string    `json:"database"`
	Target    time.Time `json:"target,omitzero"`
	TargetLSN LSN       `json:"target_lsn,omitempty"`
	Window    Window    `json:"window"`
	Base      string    `json:"base_backup"`
	// Replayed is the commit time of the last transaction replayed (zero:
	// none after the base backup).
	Replayed time.Time `json:"last_replayed_commit,omitzero"`
	Volume   string    `json:"volume"`
	// PreviousVolume and the previous container stay until --finish or
	// --rollback.
	PreviousVolume string `json:"previous_volume"`
	// StreamRemoved is the WAL sidecar the switch removed (the recovered
	// server is a new timeline with no slot).
	StreamRemoved string `json:"stream_removed"`
}

// Plan is what a restore to a time would use: checked, nothing changed.
type Plan struct {
	Window Window
	Base   Base
	Segs   []Segment
}

// PlanRestore reads db's folders and checks target (zero: latest) against
// the window; a refusal (OutsideWindowError, NoWindowError) is bad input.
func PlanRestore(db compose.Database, backupDir string, target time.Time) (Plan, error) {
	f := FoldersOf(backupDir, db)
	bases, err := Bases(os.DirFS(f.Base))
	if err != nil {
		return Plan{}, err
	}
	size := uint64(DefaultSegmentSize)
	if len(bases) > 0 && bases[0].SegmentSize > 0 {
		size = bases[0].SegmentSize
	}
	segs, err := streamSegments(f, size)
	if err != nil {
		return Plan{}, err
	}
	w, err := ComputeWindow(db.Name, bases, segs)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Window: w, Segs: segs}
	name := LatestBase(w)
	if !target.IsZero() {
		if name, err = CheckTarget(db.Name, w, target); err != nil {
			return p, err
		}
	}
	for _, b := range bases {
		if b.Name == name {
			p.Base = b
		}
	}
	return p, nil
}

// planLSN points p at the base backup a recovery to target starts from
// (CheckLSN).
func planLSN(db compose.Database, backupDir string, p Plan, target LSN) (Plan, error) {
	bases, err := Bases(os.DirFS(FoldersOf(backupDir, db).Base))
	if err != nil {
		return p, err
	}
	name, err := CheckLSN(db.Name, bases, p.Segs, target)
	if err != nil {
		return p, err
	}
	for _, b := range bases {
		if b.Name == name {
			p.Base = b
		}
	}
	return p, nil
}

// Restore restores req.DB to req.Target: the plan (refused outside the
// window before anything changes), the confirmation, a new volume, the
// newest base backup before the target unpacked into it, a server
// replaying the stream's segments up to the target and promoted, checked
// (it answers, and its last replayed commit is at or before the target),
// stopped; then the WAL sidecar is removed and the database switched to
// the volume as aidb upgrade switches (the old container and volume kept,
// stopped, until aidb restore --finish or --rollback). Any failure before
// the switch removes the volume and leaves the database as it was.
func Restore(ctx context.Context, e RestoreEngine, req RestoreRequest) (res RestoreResult, retErr error) {
	db := req.DB
	res = RestoreResult{Database: db.Name, Target: req.Target, TargetLSN: req.TargetLSN}
	st, err := e.UpgradeState(ctx, db)
	if err != nil {
		return res, err
	}
	if err := refuseState(db, st); err != nil {
		return res, err
	}
	fetchErr := fetchFirst(ctx, e, req.Offsite, db, req.BackupDir, req.Progress)
	p, err := PlanRestore(db, req.BackupDir, req.Target)
	if err == nil && req.TargetLSN != 0 {
		p, err = planLSN(db, req.BackupDir, p, req.TargetLSN)
	}
	res.Window = p.Window
	if err != nil {
		return res, withFetch(err, fetchErr)
	}
	res.Base, res.PreviousVolume = p.Base.Name, st.Volume
	if major, _, _ := strings.Cut(p.Base.ServerVersion, "."); major != "" && major != st.DataMajor {
		return res, fault.BadInput(fmt.Errorf("restore %s to a time: base backup %s is of PostgreSQL %s and %s holds PostgreSQL %s data (upgraded since): recover to a time after its upgrade, or restore a dump instead; nothing was changed", db.Name, p.Base.Name, major, db.Name, st.DataMajor))
	}
	if req.Confirm != nil {
		if err := req.Confirm(p.Window, p.Base); err != nil {
			return res, err
		}
	}
	u := switchTo(db, st)
	res.Volume = u.Volume
	if err := e.CreateUpgradeVolume(ctx, db, u); err != nil {
		return res, err
	}
	switched := false
	defer func() {
		if retErr != nil && !switched {
			retErr = errors.Join(retErr, e.RemoveVolume(context.WithoutCancel(ctx), u.Volume))
			retErr = fmt.Errorf("%w; %s runs on as it was (volume %s was removed again)", retErr, db.Name, u.Volume)
		}
	}()
	if res.Replayed, err = recoverInto(ctx, e, req, p.Base, u.Volume); err != nil {
		return res, err
	}
	progress(req.Progress, "%s: recovered; switching to volume %s", db.Name, u.Volume)
	if err := e.SwitchMajor(ctx, db, u); err != nil {
		return res, err
	}
	switched = true
	// Only now: a failed switch leaves the database, and its stream, as
	// they were. The recovered server is a new timeline without the slot.
	if res.StreamRemoved, err = e.RemoveWALStream(ctx, db); err != nil {
		return res, fmt.Errorf("%s runs on the recovered volume %s, but its old WAL stream could not be removed: %w; remove it with docker rm -f %s-wal, then aidb pitr enable %s", db.Name, u.Volume, err, st.Container, db.Name)
	}
	return res, nil
}

// withFetch adds a failed fetch to a plan's refusal: the repository's
// copy might have held what the folder lacks.
func withFetch(err, fetchErr error) error {
	if fetchErr == nil {
		return err
	}
	return fmt.Errorf("%w (and %w)", err, fetchErr)
}

// refuseState refuses a database that is not running or waits for an
// upgrade or restore to be finished.
func refuseState(db compose.Database, st orchestrator.UpgradeState) error {
	switch {
	case st.Container == "" || !st.Running:
		return fault.New(fault.NotRunning, fmt.Errorf("%s is not running: a restore to a time switches its running container to the recovered volume; start it with aidb up %s; nothing was changed", db.Name, db.Name))
	case st.Previous != "":
		return fault.BadInput(fmt.Errorf("%s's last upgrade or restore to a time is not finished (container %s is kept): run aidb restore %s --finish or --rollback first; nothing was changed", db.Name, st.Previous, db.Name))
	case st.ComposeVolume == "":
		return fault.BadInput(fmt.Errorf("%s keeps its data in no named volume: a restore to a time recovers into a new named volume beside the old one; nothing was changed", db.Name))
	}
	return nil
}

// switchTo is the switch a restore makes: the same image the database
// runs (an upgraded one keeps its upgrade's), a new volume named after the
// compose volume and the base backup.
func switchTo(db compose.Database, st orchestrator.UpgradeState) orchestrator.Upgrade {
	u := orchestrator.Upgrade{Image: db.Image, FromImage: db.Image, ComposeVolume: st.ComposeVolume, Replaces: st.Volume}
	if st.Upgrade != nil {
		u.Image, u.FromImage = st.Upgrade.Image, st.Upgrade.FromImage
	}
	u.Volume = st.ComposeVolume + "-pitr-" + strings.ToLower(strings.NewReplacer(".", "", ":", "").Replace(time.Now().UTC().Format("20060102T150405.000Z")))
	return u
}

// recoverInto unpacks base b into volume and replays WAL up to the
// target in a server of b's image, which it checks and stops. It returns
// the last replayed commit's time.
func recoverInto(ctx context.Context, e recoveryEngine, req RestoreRequest, b Base, volume string) (time.Time, error) {
	db, f := req.DB, FoldersOf(req.BackupDir, req.DB)
	progress(req.Progress, "%s: unpacking base backup %s into volume %s", db.Name, b.Name, volume)
	data := db.DataMount
	if data == "" {
		data = "/var/lib/postgresql/data"
	}
	bases, err := Bases(os.DirFS(f.Base))
	if err != nil {
		return time.Time{}, err
	}
	chain := Chain(bases, b)
	if chain == nil {
		return time.Time{}, fmt.Errorf("unpack base backup %s: the base backup it is incremental to (%s) is not in %s", b.Name, b.Parent, f.Base)
	}
	names := make([]string, len(chain))
	for i, c := range chain {
		names[i] = c.Name
	}
	if _, err := e.RunOnce(ctx, db, pgtools.OneShot{Image: b.Image, User: "0", Entrypoint: append([]string{"sh", "-c", unpackScript, "sh", data}, names...),
		Mounts:  []mount.Mount{{Type: mount.TypeVolume, Source: volume, Target: data}, {Type: mount.TypeBind, Source: f.Base, Target: baseMount, ReadOnly: true}},
		Timeout: BaseTimeout}); err != nil {
		return time.Time{}, fmt.Errorf("unpack base backup %s into volume %s: %w", b.Name, volume, err)
	}
	to := "the newest whole segment"
	switch {
	case req.TargetLSN != 0:
		to = "WAL position " + req.TargetLSN.String()
	case !req.Target.IsZero():
		to = req.Target.UTC().Format(TimeLayout)
	}
	progress(req.Progress, "%s: replaying WAL from %s up to %s", db.Name, f.WAL, to)
	replayed, err := replay(ctx, e, req, b.Image, volume, data, req.Target)
	var short *endedBeforeTargetError
	if errors.As(err, &short) && req.TargetLSN != 0 {
		// The whole segments end before a record at the position starts.
		return time.Time{}, fault.BadInput(fmt.Errorf("recover %s to WAL position %s: the whole segments end before a record at or past it: pick an earlier position, or force a segment switch (SELECT pg_switch_wal()) first", db.Name, req.TargetLSN))
	}
	if errors.As(err, &short) {
		// No commit after the target in the whole segments: every one of
		// them is at or before it, so the state at their end is the
		// state at the target. Recovery goes on from where it stopped.
		progress(req.Progress, "%s: no transaction committed after %s in the whole segments; replaying them all", db.Name, to)
		replayed, err = replay(ctx, e, req, b.Image, volume, data, time.Time{})
		if err == nil {
			replayed, err = checkRecovered(&replayed, req.Target)
		}
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("recover %s into volume %s: %w", db.Name, volume, err)
	}
	return replayed, nil
}

// unpackScript unpacks a chain of base backups (sh -c unpackScript sh
// DATADIR NAME...: folders of baseMount, the full one first) into
// DATADIR, as the image's postgres user's data directory ready to
// recover: one full base backup is untarred in place; a chain is untarred
// into the container's own /tmp, each with its backup_manifest, and
// combined into DATADIR by pg_combinebackup. The WAL that makes it
// consistent is the last one's.
const unpackScript = `set -e; d="$1"; shift
if [ "$#" -eq 1 ]; then
  tar -xzf ` + baseMount + `/"$1"/base.tar.gz -C "$d"
else
  i=0; dirs=""
  for n in "$@"; do
    mkdir -p /tmp/aidb-chain/$i; tar -xzf ` + baseMount + `/"$n"/base.tar.gz -C /tmp/aidb-chain/$i
    cp ` + baseMount + `/"$n"/backup_manifest /tmp/aidb-chain/$i/; dirs="$dirs /tmp/aidb-chain/$i"; i=$((i+1))
  done
  pg_combinebackup --no-sync $dirs -o "$d"
fi
for n in "$@"; do last="$n"; done
mkdir -p "$d/pg_wal"; tar -xzf ` + baseMount + `/"$last"/pg_wal.tar.gz -C "$d/pg_wal"
touch "$d/recovery.signal"; chown -R postgres:postgres "$d"; chmod 0700 "$d"; sync`

// endedBeforeTargetError is a recovery that replayed every segment there
// is without meeting a commit after its target.
type endedBeforeTargetError struct{ err error }

func (e *endedBeforeTargetError) Error() string { return e.err.Error() }
func (e *endedBeforeTargetError) Unwrap() error { return e.err }

// endedBeforeTarget is the server's log line for that: a FATAL at the end
// of recovery has no SQLSTATE a client could see, only this line.
const endedBeforeTarget = "recovery ended before configured recovery target was reached"

// replay runs one recovering server on volume up to target (zero: all
// whole segments), waits for its promotion, checks it and stops it.
func replay(ctx context.Context, e recoveryEngine, req RestoreRequest, image, volume, data string, target time.Time) (time.Time, error) {
	f := FoldersOf(req.BackupDir, req.DB)
	settings := RecoverySettings(target)
	if req.TargetLSN != 0 {
		settings = RecoverySettingsLSN(req.TargetLSN)
	}
	t, err := e.StartRecovery(ctx, image, req.DB, volume, data, f.WAL, settings)
	if err != nil {
		if strings.Contains(err.Error(), endedBeforeTarget) {
			return time.Time{}, &endedBeforeTargetError{err}
		}
		return time.Time{}, err
	}
	replayed, err := awaitPromotion(ctx, t, req)
	if err != nil {
		if strings.Contains(err.Error(), endedBeforeTarget) {
			err = &endedBeforeTargetError{err}
		}
		return time.Time{}, errors.Join(err, t.Close(ctx))
	}
	if req.amcheck != nil {
		found, err := t.Amcheck(ctx, req.DB.DBName)
		if err != nil {
			return time.Time{}, errors.Join(err, t.Close(ctx))
		}
		*req.amcheck = found
	}
	return replayed, errors.Join(t.Stop(ctx), t.Close(ctx))
}

// awaitPromotion polls the recovering server (every 200 ms, at most
// req.RecoveryTimeout) until it has left recovery, failing at once when
// it stops; then checks it: the database answers, and the last replayed
// commit is at or before the target.
func awaitPromotion(ctx context.Context, t *pgtools.Throwaway, req RestoreRequest) (time.Time, error) {
	timeout := req.RecoveryTimeout
	if timeout == 0 {
		timeout = 30 * time.Minute
	}
	deadline := time.Now().Add(timeout)
	url := t.ConnString(req.DB)
	for {
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			var inRecovery bool
			var replayed *time.Time
			err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()").Scan(&inRecovery, &replayed)
			_ = conn.Close(context.WithoutCancel(ctx))
			if err == nil && !inRecovery {
				return checkRecovered(replayed, req.Target)
			}
		}
		if up, ierr := t.Running(ctx); ierr == nil && !up {
			logs, _ := t.Logs(context.WithoutCancel(ctx), 20)
			return time.Time{}, fmt.Errorf("the recovering server stopped; its last lines:\n%s", logs)
		}
		if time.Now().After(deadline) {
			logs, _ := t.Logs(context.WithoutCancel(ctx), 20)
			return time.Time{}, fmt.Errorf("recovery did not finish within %s (last error: %w); its last lines:\n%s", timeout, err, logs)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// checkRecovered refuses a recovered state past the target.
func checkRecovered(replayed *time.Time, target time.Time) (time.Time, error) {
	if replayed == nil {
		return time.Time{}, nil
	}
	if !target.IsZero() && replayed.After(target) {
		return *replayed, fmt.Errorf("the recovered server replayed a commit of %s, after the target %s", replayed.UTC().Format(TimeLayout), target.UTC().Format(TimeLayout))
	}
	return *replayed, nil
}
