package restore

// What a restore is checked against: the manifest. check compares the
// temporary database's fingerprint with it before the swap (Compare names
// every difference); checkContent asserts it inside a data-only restore's
// transaction, before COMMIT.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// check takes the fingerprint of the temporary database, fills s.result
// with its tables and rows, and compares it with the manifest: a
// difference is a DifferenceError (fault.Differs); a file without a manifest is
// counted, not verified.
func (s *staging) check(ctx context.Context) error {
	p := s.p
	p.phase(PhaseCheck)
	s.result = Result{Database: p.DB.Name, File: p.Path, Kind: p.Kind, Cleaned: s.dropped, RolesCreated: s.created}
	tconn, err := pgx.Connect(ctx, withDatabase(s.e.ConnString(p.DB), s.temp))
	if err != nil {
		return err
	}
	defer func() { _ = tconn.Close(context.WithoutCancel(ctx)) }()
	if err := fingerprint.Prepare(ctx, tconn); err != nil {
		return err
	}
	opts := fingerprintOptions(p)
	// The check scans the tables on as many sessions as the load had: no
	// one else writes to the temporary database.
	for range p.jobs() - 1 {
		c, err := pgx.Connect(ctx, withDatabase(s.e.ConnString(p.DB), s.temp))
		if err != nil {
			return err
		}
		defer func() { _ = c.Close(context.WithoutCancel(ctx)) }()
		if err := fingerprint.Prepare(ctx, c); err != nil {
			return err
		}
		opts.Scanners = append(opts.Scanners, c)
	}
	fctx, cancel := context.WithCancel(ctx)
	flushed := s.flush(fctx)
	got, err := fingerprint.Take(ctx, tconn, opts)
	if err != nil {
		cancel() // no swap follows
	}
	<-flushed
	cancel()
	if err != nil {
		return err
	}
	s.result.Tables = len(got.Tables)
	for _, t := range got.Tables {
		if t.Rows != nil {
			s.result.Rows += *t.Rows
		}
	}
	if p.Manifest != nil {
		if diffs := Compare(*p.Manifest, got); len(diffs) > 0 {
			return differs(p.DB.Name, diffs)
		}
		s.result.Verified = true
	}
	return nil
}

// flush writes the loaded database's pages to disk (a CHECKPOINT) while
// the check reads them, and closes the channel it returns when done. The
// swap drops the database it replaces, and DROP DATABASE waits for an
// immediate checkpoint: with the loaded pages already written, that one
// has little left to write, where it would otherwise write them all while
// the target is switched. A user who may not run CHECKPOINT (neither a
// superuser nor, on 15 and later, in pg_checkpoint) leaves it to the
// swap's; so does a failure, which is not the restore's.
func (s *staging) flush(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := pgx.Connect(ctx, s.admin)
		if err != nil {
			return
		}
		defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
		var may bool
		err = conn.QueryRow(ctx, `SELECT r.rolsuper OR EXISTS (
			SELECT 1 FROM pg_catalog.pg_roles c WHERE c.rolname = 'pg_checkpoint' AND pg_catalog.pg_has_role(r.oid, c.oid, 'MEMBER'))
			FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`).Scan(&may)
		if err == nil && may {
			_, _ = conn.Exec(ctx, "CHECKPOINT")
		}
	}()
	return done
}

// fingerprintOptions are the options a staged restore's fingerprint is
// taken with, to match the manifest's: rows unless the file is schema-only,
// the migration table and hash form the manifest names, and a schema
// backup's bookkeeping rows.
func fingerprintOptions(p Plan) fingerprint.Options {
	opts := fingerprint.Options{Data: p.Kind != backupfile.Schema}
	if p.Manifest != nil {
		opts.MigrationTable = p.Manifest.MigrationTable
		opts.WholeRow = p.Manifest.WholeRowHash()
		opts.ChildColumnOrder = p.Manifest.ChildColumnOrder()
		opts.Privileges = p.Manifest.PrivilegeForm()
		opts.NoMaintain = p.Manifest.SchemaForm().NoMaintain
		opts.Columns = manifestColumns(p.Manifest.Tables)
		opts.Database = p.Manifest.DatabaseProperties != nil && p.Kind != backupfile.Data
		if p.Kind == backupfile.Schema && p.Manifest.MigrationTable != "" {
			// A schema backup holds the bookkeeping rows: they are compared
			// too (a manifest from before it did has no rows to compare).
			opts.DataOf = []string{p.Manifest.MigrationTable}
		}
	}
	return opts
}

// ManifestOptions are the fingerprint options that describe a database
// the way m describes its backup: what a restore takes to compare with m
// (Compare), for a caller that compares a live database with it.
func ManifestOptions(m *manifest.Manifest) fingerprint.Options {
	return fingerprintOptions(Plan{Kind: m.Kind, Manifest: m})
}

// manifestColumns is each table's columns as the manifest records them (in
// the source's order), for the content hashes to read them by name in that
// order; a table whose manifest lists no columns is left out.
func manifestColumns(tables []fingerprint.Table) map[string][]string {
	out := map[string][]string{}
	for _, t := range tables {
		if len(t.Columns) > 0 {
			out[t.Key()] = t.Columns
		}
	}
	return out
}

// swap renames the target away and the temporary database into its
// place, in one transaction, after ending the target's connections; it
// returns the old database's new name.

// checkContent asserts, inside the restore's transaction, that every
// table has the manifest's row count and content hash (the fingerprint's
// own expression, under pgdump's value settings); a difference raises, and
// the transaction rolls back.
func checkContent(db string, tables []fingerprint.Table, wholeRow bool) (string, error) {
	var b strings.Builder
	b.WriteString(dumpformat.SetLocal(dumpformat.ValueSettings()))
	b.WriteString("DO $aidb$\nDECLARE n bigint; h text; cols text; bad text := '';\nBEGIN\n")
	for _, t := range tables {
		if t.Rows == nil || !numericRE.MatchString(t.Hash) {
			return "", fmt.Errorf("manifest of %s lacks the row count or hash of %s", db, t.Key())
		}
		if wholeRow {
			fmt.Fprintf(&b, "  SELECT count(*), %s INTO n, h FROM ONLY %s AS t;\n", fingerprint.WholeRowHashSQL, t.QualifiedName())
		} else {
			// The columns a dump holds, as the fingerprint hashed them: the
			// backup's columns in the backup's order, generated ones left
			// out. A column the target gained since (a later migration) is
			// not the backup's: its default does not count.
			if len(t.Columns) == 0 {
				fmt.Fprintf(&b, "  SELECT coalesce(string_agg(format('t.%%I', attname), ', ' ORDER BY attnum), '') INTO cols FROM pg_catalog.pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '';\n",
					literal(t.QualifiedName()))
			} else {
				names := make([]string, len(t.Columns))
				for i, c := range t.Columns {
					names[i] = literal(c)
				}
				fmt.Fprintf(&b, "  EXECUTE %s INTO cols USING ARRAY[%s]::text[], %s::text;\n",
					literal(fingerprint.OrderedColumnsSQL), strings.Join(names, ", "), literal(t.QualifiedName()))
			}
			fmt.Fprintf(&b, "  EXECUTE format(%s, cols) INTO n, h;\n",
				literal("SELECT count(*), "+fingerprint.ContentHashSQL+" FROM ONLY "+strings.ReplaceAll(t.QualifiedName(), "%", "%%")+" AS t"))
		}
		fmt.Fprintf(&b, "  IF n <> %d OR h <> %s THEN bad := bad || format(E'\\n%%s: %%s rows (the backup has %d), content hash %%s (the backup has %s)', %s, n, h); END IF;\n",
			*t.Rows, literal(t.Hash), *t.Rows, t.Hash, literal(t.Key()))
	}
	b.WriteString("  IF bad <> '' THEN RAISE EXCEPTION 'aidb: content differs:%', bad; END IF;\nEND\n$aidb$;\n")
	return b.String(), nil
}

// contentDiffs extracts the table lines from a content-check failure.
func contentDiffs(msg string) []string {
	var out []string
	_, rest, _ := strings.Cut(msg, "aidb: content differs:")
	for _, l := range strings.Split(rest, "\n") {
		if l = strings.TrimSpace(l); strings.Contains(l, " rows (the backup has ") {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		out = append(out, strings.TrimSpace(msg))
	}
	return out
}

// Compare lists how a restored database's fingerprint differs from the
// manifest: schema, tables (rows, content), migration version.
func Compare(m manifest.Manifest, got fingerprint.Fingerprint) []string {
	var diffs []string
	if m.SchemaHash != got.SchemaHash {
		diffs = append(diffs, fmt.Sprintf("schema: hash %s, the backup has %s", fingerprint.ShortHash(got.SchemaHash), fingerprint.ShortHash(m.SchemaHash)))
		if m.PrivilegeForm() != fingerprint.NoPrivileges {
			diffs = append(diffs, privilegeDiffs(m.Privileges, got.Privileges)...)
		}
	}
	want := fingerprint.Fingerprint{Tables: m.Tables, Sequences: m.Sequences}
	diffs = append(diffs, fingerprint.TableDifferences(want, got, "the backup")...)
	if m.DatabaseProperties != nil && got.Database != nil {
		diffs = append(diffs, m.DatabaseProperties.Differences(*got.Database)...)
	}
	slices.Sort(diffs)
	return diffs
}

// privilegeDiffs names the owner, ACL, default privilege, row-level
// security and policy lines (fingerprint.PrivilegeQueries) that the backup
// has and the restored database lacks, and those it has that the backup
// does not: a lost grant shows as its object's ACL line in the backup and
// the line without it here.
func privilegeDiffs(want, got []string) []string {
	var out []string
	for _, l := range want {
		if !slices.Contains(got, l) {
			out = append(out, "privileges: the backup has "+l+"; the restored database does not")
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			out = append(out, "privileges: the restored database has "+l+"; the backup does not")
		}
	}
	return out
}
