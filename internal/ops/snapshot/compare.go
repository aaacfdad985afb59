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
		diffs = append(diffs, fmt.Sprintf("schema: hash %s, the snapshot has %s", short(got.SchemaHash), short(w.SchemaHash)))
	}
	gotTables := map[string]fingerprint.Table{}
	for _, t := range got.Tables {
		gotTables[t.Key()] = t
	}
	for _, t := range w.Tables {
		g, ok := gotTables[t.Key()]
		delete(gotTables, t.Key())
		switch {
		case !ok:
			diffs = append(diffs, t.Key()+": missing")
		case t.Rows == nil:
		case g.Rows == nil || *g.Rows != *t.Rows:
			diffs = append(diffs, fmt.Sprintf("%s: %s rows, the snapshot has %d", t.Key(), rows(g.Rows), *t.Rows))
		case g.Hash != t.Hash:
			diffs = append(diffs, fmt.Sprintf("%s: same %d rows, different content", t.Key(), *t.Rows))
		}
	}
	for k := range gotTables {
		diffs = append(diffs, k+": not in the snapshot")
	}
	seqs := map[string]int64{}
	for _, q := range got.Sequences {
		seqs[q.Name] = q.Value
	}
	for _, q := range w.Sequences {
		if v, ok := seqs[q.Name]; !ok {
			diffs = append(diffs, "sequence "+q.Name+": missing")
		} else if v != q.Value {
			diffs = append(diffs, fmt.Sprintf("sequence %s: %d, the snapshot has %d", q.Name, v, q.Value))
		}
	}
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

func rows(n *int64) string {
	if n == nil {
		return "no"
	}
	return fmt.Sprint(*n)
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
