// Package safety takes the backups that come before aidb removes or
// replaces data (nuke, restore): a full backup of each database that
// exists and holds data, marked in its manifest as a safety backup with
// why, so that it moves no <db>-latest pointer and prune keeps it by its
// own rule.
package safety

import (
	"context"
	"fmt"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/orchestrator"
)

// Databases is what a safety backup asks of the databases' lifecycle
// (*orchestrator.Orchestrator satisfies it).
type Databases interface {
	// Status says, among other things, which databases exist.
	Status(ctx context.Context, dbs []compose.Database) ([]orchestrator.Status, error)
	// StartExisting starts the existing databases as their containers
	// run (never replaced) and returns them as they run.
	StartExisting(ctx context.Context, dbs []compose.Database) ([]compose.Database, error)
	// ConnString is db's postgres:// URL from this host.
	ConnString(db compose.Database) string
}

// Request is one safety backup.
type Request struct {
	// Databases are the ones about to lose their data.
	Databases []compose.Database
	// Why the backup is taken: recorded in each manifest.
	Why manifest.Safety
	// Backup runs the backup (the caller sets the folder, the tool
	// version and shows progress, e.g. around backup.Run). Required.
	Backup func(ctx context.Context, req backup.Request) (backup.Result, error)
	// Lock, if set, is called once there is data to back up, before the
	// backup, and its release after it: the backup folder's lock, for a
	// caller that does not hold it already.
	Lock func(ctx context.Context) (release func(), err error)
	// NoData, if set, is told about each database that holds no tables
	// (it needs no safety backup).
	NoData func(db string)
	// HasData says whether the database at connString holds tables
	// (default backup.HasData).
	HasData func(ctx context.Context, connString string) (bool, error)
}

// Take takes a full backup of each of req.Databases that exists and holds
// data, starting a stopped one for it (as its container runs: a compose
// file changed since, with another password, port or image, must not stop
// the backup of what is there). It returns the files, none when no
// database holds data; an error means no database may lose its data.
func Take(ctx context.Context, d Databases, req Request) ([]backup.File, error) {
	hasData := req.HasData
	if hasData == nil {
		hasData = backup.HasData
	}
	st, err := d.Status(ctx, req.Databases)
	if err != nil {
		return nil, err
	}
	var existing []compose.Database
	for i, db := range req.Databases {
		if st[i].State != "missing" {
			existing = append(existing, db)
		}
	}
	if len(existing) == 0 {
		return nil, nil
	}
	existing, err = d.StartExisting(ctx, existing)
	if err != nil {
		return nil, fmt.Errorf("start the databases for a safety backup: %w", err)
	}
	var withData []compose.Database
	for _, db := range existing {
		has, err := hasData(ctx, d.ConnString(db))
		if err != nil {
			return nil, fmt.Errorf("look into %s for a safety backup: %w", db.Name, err)
		}
		if has {
			withData = append(withData, db)
		} else if req.NoData != nil {
			req.NoData(db.Name)
		}
	}
	if len(withData) == 0 {
		return nil, nil
	}
	if req.Lock != nil {
		release, err := req.Lock(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	why := req.Why
	res, err := req.Backup(ctx, backup.Request{Databases: withData, Kind: backupfile.Full, Compression: backupfile.None,
		Transport: pgtools.TransportAuto, SplitOver: backup.DefaultSplitOver, Safety: &why})
	if err != nil {
		return nil, fmt.Errorf("safety backup: %w", err)
	}
	return res.Files, nil
}
