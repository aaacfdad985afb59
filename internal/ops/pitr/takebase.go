package pitr

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/mount"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/postgres/pgtools"
)

// baseMount is where a database's base folder is mounted in the
// container running pg_basebackup or preparing a recovery volume.
const baseMount = "/aidb-base"

// BaseTimeout bounds one pg_basebackup run.
const BaseTimeout = 2 * time.Hour

// TakeBase takes a base backup of db (running image) into a new
// <timestamp> folder of baseDir: pg_basebackup from the database's own
// image, on the project network, in tar format, gzipped, with the WAL it
// needs to be consistent (-X stream) and a fast checkpoint, as the
// calling user (the files are theirs). The record (RecordName) is written
// last, by rename: only then does the folder count. A failure removes the
// folder, and a folder a killed run left without its record is removed
// first.
func TakeBase(ctx context.Context, e Streams, conn *pgx.Conn, db compose.Database, image, baseDir string) (b Base, retErr error) {
	if err := os.MkdirAll(baseDir, 0o755); err != nil {
		return b, fmt.Errorf("create base backup folder %s: %w", baseDir, err)
	}
	if err := clearUnrecorded(baseDir); err != nil {
		return b, err
	}
	b.Name = time.Now().UTC().Format("20060102T150405.000Z")
	dir := filepath.Join(baseDir, b.Name)
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	var summarizing bool
	var tli uint32
	if err := conn.QueryRow(ctx, `SELECT now(), current_setting('server_version'), (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
		coalesce(current_setting('summarize_wal', true), 'off') = 'on', (SELECT timeline_id FROM pg_control_checkpoint())`).Scan(&b.Start, &b.ServerVersion, &b.SegmentSize, &summarizing, &tli); err != nil {
		return b, fmt.Errorf("read %s's clock: %w", db.Name, err)
	}
	bases, err := Bases(os.DirFS(baseDir))
	if err != nil {
		return b, err
	}
	if summarizing {
		b.Parent = parentFor(bases, tli, b.Start)
	}
	if err := runBaseBackup(ctx, e, db, image, baseDir, b); err != nil && b.Parent != "" && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
		// The server may no longer have the WAL summaries since the
		// parent (wal_summary_keep_time, a restart with summarize_wal
		// off): a full one then.
		_ = os.RemoveAll(dir)
		b.Parent = ""
		err = runBaseBackup(ctx, e, db, image, baseDir, b)
		if err != nil {
			return b, err
		}
	} else if err != nil {
		return b, err
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "backup_manifest"))
	if err != nil {
		return b, fmt.Errorf("base backup of %s: %w", db.Name, err)
	}
	if b.Timeline, b.StartLSN, b.EndLSN, err = WALRange(manifest); err != nil {
		return b, fmt.Errorf("base backup of %s: %w", db.Name, err)
	}
	// The server's clock once the backup has ended: a time it can surely
	// be recovered to.
	if err := conn.QueryRow(ctx, "SELECT now()").Scan(&b.End); err != nil {
		return b, fmt.Errorf("read %s's clock: %w", db.Name, err)
	}
	b.Image = image
	return b, writeRecord(dir, b)
}

// Incremental base backups (PostgreSQL 17, summarize_wal on): a new base
// backup holds only the blocks changed since its parent's, as long as
// the chain from the last full one is shorter than MaxChain and the
// parent is younger than MaxParentAge (the server keeps WAL summaries for
// wal_summary_keep_time, 10 days unless set).
const (
	MaxChain     = 7
	MaxParentAge = 7 * 24 * time.Hour
)

// parentFor is the base backup a new one on timeline tli taken at now is
// incremental to: the newest, when it is on that timeline, younger than
// MaxParentAge and its chain shorter than MaxChain; "" for a full one.
func parentFor(bases []Base, tli uint32, now time.Time) string {
	if len(bases) == 0 {
		return ""
	}
	last := bases[len(bases)-1]
	if last.Timeline != tli || now.Sub(last.End) > MaxParentAge || len(Chain(bases, last)) >= MaxChain {
		return ""
	}
	return last.Name
}

// runBaseBackup runs pg_basebackup for b into its folder of baseDir
// (incremental to b.Parent's backup_manifest when set).
func runBaseBackup(ctx context.Context, e Streams, db compose.Database, image, baseDir string, b Base) error {
	netName, host := e.WALNetwork(db)
	args := []string{"--pgdata", baseMount + "/" + b.Name, "--format", "tar", "--gzip", "--wal-method", "stream",
		"--checkpoint", "fast", "--label", "aidb pitr " + b.Name,
		"--host", host, "--port", "5432", "--username", db.User, "--no-password"}
	if b.Parent != "" {
		args = append(args, "--incremental", baseMount+"/"+b.Parent+"/backup_manifest")
	}
	_, err := e.RunOnce(ctx, db, pgtools.OneShot{
		Image: image, User: strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid()),
		Entrypoint: []string{"pg_basebackup"}, Cmd: args,
		Env:     []string{"PGPASSWORD=" + db.Password},
		Mounts:  []mount.Mount{{Type: mount.TypeBind, Source: baseDir, Target: baseMount}},
		Network: netName, Timeout: BaseTimeout,
	})
	if err != nil {
		return fmt.Errorf("base backup of %s: %w", db.Name, err)
	}
	return nil
}

// clearUnrecorded removes the folders of baseDir that have no record: the
// base backups of runs killed before they ended (never counted), or
// fetches cut short. The caller holds the database's operation lock, and
// taking it cleared the containers of dead runs (package litter), so
// nothing writes into them any more.
func clearUnrecorded(baseDir string) error {
	entries, err := os.ReadDir(baseDir)
	if err != nil {
		return fmt.Errorf("list base backups in %s: %w", baseDir, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(baseDir, e.Name())
		if _, err := os.Stat(filepath.Join(dir, RecordName)); !os.IsNotExist(err) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s, a base backup a killed run left unfinished: %w", dir, err)
		}
	}
	return nil
}

// writeRecord writes b's record into dir through a temporary file and a
// rename, so a folder has a whole record or none.
func writeRecord(dir string, b Base) error {
	raw, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, RecordName+".partial")
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write base backup record: %w", err)
	}
	if f, err := os.Open(tmp); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
	if err := os.Rename(tmp, filepath.Join(dir, RecordName)); err != nil {
		return fmt.Errorf("write base backup record: %w", err)
	}
	return nil
}
