package snapshot

import (
	"fmt"
	"slices"

	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// Compare lists how a copy (its fingerprint got and properties props)
// differs from the snapshot want describes: schema, tables (rows and
// content), sequences, migration version, and the database's own
// properties (owner, connection limit, comment, ACL, settings). None when
// they are equal.
func Compare(want Meta, got fingerprint.Fingerprint, props Props) []string {
	w := want.Fingerprint
	var diffs []string
	if w.SchemaHash != got.SchemaHash {
		diffs = append(diffs, fmt.Sprintf("schema: hash %s, the snapshot has %s", fingerprint.ShortHash(got.SchemaHash), fingerprint.ShortHash(w.SchemaHash)))
	}
	diffs = append(diffs, fingerprint.TableDifferences(w, got, "the snapshot")...)
	if w.MigrationVersion != got.MigrationVersion {
		diffs = append(diffs, fmt.Sprintf("migration version %d, the snapshot has %d", got.MigrationVersion, w.MigrationVersion))
	}
	diffs = append(diffs, want.Props.DifferencesFrom(props, "the snapshot", "the copy")...)
	slices.Sort(diffs)
	return diffs
}
