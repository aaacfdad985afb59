package pitr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aidb/aidb/compose"
)

// VerifyEngine is what proving a stream restorable asks of the engine.
type VerifyEngine interface {
	Streams
	Recoverer
	CreateWorkVolume(ctx context.Context, db compose.Database, name string) error
	RemoveVolume(ctx context.Context, name string) error
}

// VerifyResult is a proven window.
type VerifyResult struct {
	Database string    `json:"database"`
	Window   Window    `json:"window"`
	Base     string    `json:"base_backup"`
	Replayed time.Time `json:"last_replayed_commit,omitzero"`
	// Error is why it could not be proven ("": it was).
	Error string `json:"error,omitempty"`
}

// Verify proves db's stream restorable without touching the database: the
// base backup --to-latest would use is unpacked into a throwaway volume
// and every whole segment after it replayed by a server of its image,
// which must leave recovery and answer (with off's repository, what the
// folder lacks is fetched from it first); the volume is removed again
// (also after a failure or Ctrl-C). A database without a window is bad
// input.
func Verify(ctx context.Context, e VerifyEngine, db compose.Database, backupDir string, off Offsite, progressFn func(string)) (res VerifyResult, retErr error) {
	res.Database = db.Name
	fetchErr := fetchFirst(ctx, e, off, db, backupDir, progressFn)
	p, err := PlanRestore(db, backupDir, time.Time{})
	res.Window = p.Window
	if err != nil {
		return res, withFetch(err, fetchErr)
	}
	res.Base = p.Base.Name
	volume := "aidb-pitr-verify-" + strings.ToLower(strings.NewReplacer(".", "", ":", "").Replace(time.Now().UTC().Format("20060102T150405.000Z"))) + "-" + db.Service
	if err := e.CreateWorkVolume(ctx, db, volume); err != nil {
		return res, err
	}
	defer func() {
		retErr = errors.Join(retErr, e.RemoveVolume(context.WithoutCancel(ctx), volume))
	}()
	rec := RestoreRequest{DB: db, BackupDir: backupDir, Progress: progressFn}
	if res.Replayed, err = recoverInto(ctx, e, rec, p.Base, volume); err != nil {
		return res, fmt.Errorf("verify %s's WAL stream: %w", db.Name, err)
	}
	return res, nil
}
