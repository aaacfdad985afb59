package routine

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/store/repository"
)

// ShipStreams ships the stream of each of dbs that has one in the folder
// (a WAL or base backup folder) to remote (pitr.Ship), sealed with seal
// (nil: plain). Every database is tried; the errors are joined.
func ShipStreams(ctx context.Context, dbs []compose.Database, backupDir string, remote pitr.Remote, seal pitr.Sealer) ([]pitr.Shipped, error) {
	out := []pitr.Shipped{}
	var errs []error
	for _, db := range dbs {
		f := pitr.FoldersOf(backupDir, db)
		if !exists(f.WAL) && !exists(f.Base) {
			continue
		}
		res, err := pitr.Ship(ctx, pitr.ShipRequest{DB: db, BackupDir: backupDir, Remote: remote, Seal: seal})
		out = append(out, res)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// DefaultShipEvery is how often serve ships the streams' new segments.
const DefaultShipEvery = 10 * time.Second

// ShipLoop ships cfg's streams to the project's repository every every
// until ctx ends, beside the scheduled runs: a segment goes off-site
// within about every of pg_receivewal closing it. The repository is
// opened once and again after a failure (one that does not answer is
// tried at the next tick: the folder keeps what waits). report hears
// each tick that shipped something or failed, and the first that worked
// again after a failure.
func ShipLoop(ctx context.Context, cfg Config, every time.Duration, report func([]pitr.Shipped, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	var repo *repository.Repository
	failed := false
	for {
		var shipped []pitr.Shipped
		var err error
		if repo == nil {
			repo, err = repository.ForProject(ctx, cfg.Project)
		}
		if repo != nil && err == nil {
			shipped, err = ShipStreams(ctx, cfg.Project.Databases, cfg.Project.BackupDir, repo, sealer(cfg))
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			repo = nil
		}
		if err != nil || anyShipped(shipped) || failed {
			report(shipped, err)
		}
		failed = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// StartShipLoop runs ShipLoop in a goroutine of its own; the stop it
// returns ends the loop and waits for it (an upload it cuts is aborted).
func StartShipLoop(ctx context.Context, cfg Config, every time.Duration, report func([]pitr.Shipped, error)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ShipLoop(ctx, cfg, every, report)
	}()
	return func() { cancel(); <-done }
}

func anyShipped(s []pitr.Shipped) bool {
	for _, x := range s {
		if len(x.Segments)+len(x.Bases) > 0 {
			return true
		}
	}
	return false
}
