package pitr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/pgtools"
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
	// Amcheck is what pg_amcheck found in the recovered database.
	Amcheck *pgtools.Amcheck `json:"amcheck,omitempty"`
	// Error is why it could not be proven ("": it was).
	Error string `json:"error,omitempty"`
}

// GapError is a stream with whole segments past a missing one after the
// newest base backup: the WAL after the gap cannot be replayed.
type GapError struct {
	Database string
	// Missing is the first missing segment; After counts the whole
	// segments past it.
	Missing string
	After   int
}

func (e *GapError) Error() string {
	return fmt.Sprintf("verify %s's WAL stream: segment %s is missing, and %d whole segments after it cannot be replayed: a recovery stops before it; find it (aidb pitr pull fetches the repository's copy), or take a base backup (aidb pitr base-backup %s) so the WAL after it counts again",
		e.Database, e.Missing, e.After, e.Database)
}

// Kind is fault.Differs: the verification found the stream broken.
func (e *GapError) Kind() fault.Kind { return fault.Differs }

// CheckGap refuses a stream with whole segments on b's timeline past a
// missing one after b's end.
func CheckGap(db string, b Base, segs []Segment) error {
	have := map[uint64]bool{}
	var last uint64
	for _, s := range segs {
		if s.Timeline == b.Timeline {
			have[s.SegNo] = true
			last = max(last, s.SegNo)
		}
	}
	n := b.EndSegNo()
	for have[n] {
		n++
	}
	if n > last {
		return nil
	}
	after := 0
	for k := range have {
		if k > n {
			after++
		}
	}
	size := b.SegmentSize
	if size == 0 {
		size = DefaultSegmentSize
	}
	return &GapError{Database: db, Missing: SegmentName(b.Timeline, n, size), After: after}
}

// Verify proves db's stream restorable without touching the database: the
// base backup --to-latest would use is unpacked into a throwaway volume
// and every whole segment after it replayed by a server of its image,
// which must leave recovery and answer, and in whose database pg_amcheck
// finds nothing; whole segments past a missing one are a GapError naming
// it (with off's repository, what the
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
	if err := CheckGap(db.Name, p.Base, p.Segs); err != nil {
		return res, err
	}
	volume := "aidb-pitr-verify-" + strings.ToLower(strings.NewReplacer(".", "", ":", "").Replace(time.Now().UTC().Format("20060102T150405.000Z"))) + "-" + db.Service
	if err := e.CreateWorkVolume(ctx, db, volume); err != nil {
		return res, err
	}
	defer func() {
		retErr = errors.Join(retErr, e.RemoveVolume(context.WithoutCancel(ctx), volume))
	}()
	rec := RestoreRequest{DB: db, BackupDir: backupDir, Progress: progressFn, amcheck: &pgtools.Amcheck{}}
	if res.Replayed, err = recoverInto(ctx, e, rec, p.Base, volume); err != nil {
		return res, fmt.Errorf("verify %s's WAL stream: %w", db.Name, err)
	}
	res.Amcheck = rec.amcheck
	if len(rec.amcheck.Corruption) > 0 {
		return res, fault.New(fault.Differs, fmt.Errorf("verify %s's WAL stream: the recovered database replays and answers, but pg_amcheck finds %s", db.Name, strings.Join(rec.amcheck.Corruption, "; ")))
	}
	return res, nil
}
