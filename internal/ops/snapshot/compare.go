package snapshot

import (
	"fmt"
	"slices"

	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// Compare lists how a copy (its fingerprint got and properties props)
// differs from the snapshot want describes: schema, tables (rows and
// content), sequences, migration version, owner, connection limit and
// comment. None when they are equal.
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
	p := want.Props
	if p.Owner != "" && p.Owner != props.Owner {
		diffs = append(diffs, fmt.Sprintf("database: owner %s, the snapshot's database had %s", props.Owner, p.Owner))
	}
	if p.ConnLimit != props.ConnLimit {
		diffs = append(diffs, fmt.Sprintf("database: connection limit %d, the snapshot's database had %d", props.ConnLimit, p.ConnLimit))
	}
	if p.Comment != props.Comment {
		diffs = append(diffs, fmt.Sprintf("database: comment %q, the snapshot's database had %q", props.Comment, p.Comment))
	}
	slices.Sort(diffs)
	return diffs
}
