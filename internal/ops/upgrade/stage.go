package upgrade

import (
	"context"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/postgres/pgtools"
)

// Tools starts the server an upgrade restores into (*pgtools.Runner
// satisfies it).
type Tools interface {
	StartStaging(ctx context.Context, image string, db compose.Database, volume, target string) (*pgtools.Throwaway, error)
}

// RestoreOptions say how a backup reaches the staged server.
type RestoreOptions struct {
	Transport pgtools.Transport
	// Dir is the backup folder (the helper transport's pipes).
	Dir  string
	Keys *encryption.Keys
	// Phase, if set, follows the restore.
	Phase func(restore.Phase)
}

// Stager is Request.Stage over the client tools: a staging container
// (pgtools.StartStaging) that a backup is restored into as a full restore
// does (restore.Preflight, restore.Full: roles created, loaded in one
// transaction, compared with the manifest, swapped in).
func Stager(tools Tools, opts RestoreOptions) func(ctx context.Context, image string, db compose.Database, volume, target string) (Stage, error) {
	return func(ctx context.Context, image string, db compose.Database, volume, target string) (Stage, error) {
		t, err := tools.StartStaging(ctx, image, db, volume, target)
		if err != nil {
			return nil, err
		}
		return &staged{t: t, opts: opts}, nil
	}
}

type staged struct {
	t    *pgtools.Throwaway
	opts RestoreOptions
}

func (s *staged) Restore(ctx context.Context, file string) (restore.Result, error) {
	plan, err := restore.Preflight(ctx, s.t, restore.Request{DB: s.t.DB, File: file, Transport: s.opts.Transport,
		WorkDir: s.opts.Dir, BackupDir: s.opts.Dir, Keys: s.opts.Keys})
	if err != nil {
		return restore.Result{}, err
	}
	plan.Phase = s.opts.Phase
	return restore.Full(ctx, s.t, plan)
}

func (s *staged) Stop(ctx context.Context) error  { return s.t.Stop(ctx) }
func (s *staged) Close(ctx context.Context) error { return s.t.Close(ctx) }
