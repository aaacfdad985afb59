package upgrade

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// ChangedError says the database changed after the backup an upgrade
// restored: switching would lose what was written since.
type ChangedError struct {
	Database    string
	Differences []string
}

func (e *ChangedError) Error() string {
	return fmt.Sprintf("%s changed after its backup was taken (%s): switching would lose what was written since; stop the application's writers and run the upgrade again",
		e.Database, strings.Join(e.Differences, "; "))
}

// Unchanged is Request.Unchanged for the database at connString: it
// describes the database in one read-only snapshot as the backup's
// manifest describes the file (schema, rows and content hashes,
// sequences) and returns a ChangedError where they differ. It reads every
// row once. A write after this check and before the switch stops the old
// server is not seen: the window is the switch's own few seconds.
func Unchanged(connString string) func(ctx context.Context, file string) error {
	return func(ctx context.Context, file string) error {
		m, err := manifest.Read(file)
		if err != nil {
			return err
		}
		conn, err := pgx.Connect(ctx, connString)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", m.Database, err)
		}
		defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if err := fingerprint.Prepare(ctx, tx); err != nil {
			return err
		}
		got, err := fingerprint.Take(ctx, tx, restore.ManifestOptions(&m))
		if err != nil {
			return err
		}
		if diffs := restore.Compare(m, got); len(diffs) > 0 {
			return &ChangedError{Database: m.Database, Differences: diffs}
		}
		return nil
	}
}
