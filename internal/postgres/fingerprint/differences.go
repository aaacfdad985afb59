package fingerprint

import "fmt"

// TableDifferences lists how got's tables and sequences differ from
// want's, one line each, where of names what want describes ("the
// backup", "the snapshot"): a table missing or not in it, another row
// count, the same rows with other content, a sequence missing or at
// another value. A table whose rows want does not count (a schema-only
// backup) is compared by presence alone. Unsorted; none when equal.
func TableDifferences(want, got Fingerprint, of string) []string {
	var diffs []string
	gotTables := map[string]Table{}
	for _, t := range got.Tables {
		gotTables[t.Key()] = t
	}
	for _, w := range want.Tables {
		g, ok := gotTables[w.Key()]
		delete(gotTables, w.Key())
		switch {
		case !ok:
			diffs = append(diffs, w.Key()+": missing")
		case w.Rows == nil:
		case g.Rows == nil || *g.Rows != *w.Rows:
			diffs = append(diffs, fmt.Sprintf("%s: %s rows, %s has %d", w.Key(), rowsText(g.Rows), of, *w.Rows))
		case g.Hash != w.Hash:
			diffs = append(diffs, fmt.Sprintf("%s: same %d rows but different content (hash %s, %s has %s)", w.Key(), *w.Rows, g.Hash, of, w.Hash))
		}
	}
	for k := range gotTables {
		diffs = append(diffs, k+": not in "+of)
	}
	seqs := map[string]int64{}
	for _, q := range got.Sequences {
		seqs[q.Name] = q.Value
	}
	for _, q := range want.Sequences {
		if v, ok := seqs[q.Name]; !ok {
			diffs = append(diffs, "sequence "+q.Name+": missing")
		} else if v != q.Value {
			diffs = append(diffs, fmt.Sprintf("sequence %s: %d, %s has %d", q.Name, v, of, q.Value))
		}
	}
	return diffs
}

// ShortHash is a hash's first 12 characters, enough to tell two apart in
// a message.
func ShortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func rowsText(n *int64) string {
	if n == nil {
		return "no"
	}
	return fmt.Sprint(*n)
}
