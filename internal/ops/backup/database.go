package backup

import (
	"fmt"
	"strings"

	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// databaseEntry renders what belongs to the database rather than to its
// schema (fingerprint.Database) as an entry of the dump, put in before
// its closing comment: pg_dump writes the same only with --create, in
// statements that name the database, while a restore loads into a
// database of another name (a temporary one swapped in, a throwaway).
// So the statements name the database they run in, current_database(),
// from a DO block; plain psql into any database sets them on that one.
// The statements are fingerprint.Database's Alterations: loading into a
// database that had other properties leaves the backup's.
func databaseEntry(d fingerprint.Database) string {
	var b strings.Builder
	b.WriteString("DECLARE db text := pg_catalog.quote_ident(pg_catalog.current_database());\nBEGIN\n")
	for _, a := range d.Alterations() {
		fmt.Fprintf(&b, "\tEXECUTE %s || db || %s;\n", fingerprint.Literal(a.Head), fingerprint.Literal(a.Rest))
	}
	b.WriteString("END")
	body := b.String()
	tag := "$aidb$"
	for i := 1; strings.Contains(body, tag); i++ {
		tag = fmt.Sprintf("$aidb%d$", i)
	}
	return DatabaseComment + "\nDO " + tag + "\n" + body + "\n" + tag + ";\n\n"
}

// DatabaseComment opens the entry databaseEntry writes, in pg_dump's form
// (the type pg_dump gives the same statements with --create): a restore
// that splits the dump into entries runs it as one of the post-data.
const DatabaseComment = "--\n-- Name: DATABASE; Type: DATABASE PROPERTIES; Schema: -; Owner: -\n--\n"
