// Package restore puts a backup back into a database so that it cannot
// half-fail: every check runs before anything changes; a full restore loads
// into a temporary database on the same server, is verified there, and is
// swapped in by rename; a data-only restore truncates, loads, fixes
// sequences and verifies in one transaction that commits only if the
// content equals the manifest.
package restore

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/pgimage"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/store/catalog"
)

// Server is what a restore needs of the engine: the database (package
// orchestrator) and psql run against it (package pgrun).
type Server interface {
	RequireReady(ctx context.Context, db compose.Database) error
	ConnString(db compose.Database) string
	Psql(ctx context.Context, db compose.Database, dbname string, t pgtools.Transport, workDir string, script io.Reader) error
}

// Request is one restore.
type Request struct {
	DB   compose.Database
	File string
	// DataOnly restores a data-only backup onto the existing schema.
	DataOnly bool
	// AsDatabase accepts a file backed up from another database (a
	// deliberate cross-restore): it names that database.
	AsDatabase string
	Transport  pgtools.Transport
	// WorkDir holds the helper transport's pipe (the backup folder).
	WorkDir string
	// BackupDir is searched for a schema backup to suggest when a
	// data-only restore finds tables missing.
	BackupDir string
	// IgnoreMigrationVersion skips the data-only check that the target's
	// migration version is not older than the backup's (for a schema
	// restored from a schema backup made before they held the bookkeeping
	// rows).
	IgnoreMigrationVersion bool
	// Progress, if set, is told the file bytes read so far.
	Progress func(read, total int64)
	// Phase, if set, is told when the restore enters each phase (see
	// Phase), once per phase, in order.
	Phase func(Phase)
	// Keys open an encrypted (age) backup; nil: an encrypted file is
	// refused (encryption.KeyError).
	Keys *encryption.Keys
	// Object, if set, is the backup in a repository that File names (its
	// URL): it is streamed from there, never copied whole.
	Object Object
	// Jobs is how many sessions a full restore loads on (see
	// loadParallel); 0 is the machine's cores, at least 2; 1 loads the
	// file through one psql stream in one transaction, as plain psql
	// would. Data-only restores always load in one transaction.
	Jobs int
}

// Phase is a step of a restore that takes time.
type Phase string

const (
	// PhaseLoad means psql loads the file (Progress counts its bytes).
	PhaseLoad Phase = "load"
	// PhasePostData means the file was read and its rows loaded; the indexes
	// and constraints are being built (parallel loads only).
	PhasePostData Phase = "post-data"
	// PhaseCheck means the file was read; what was loaded is compared with the
	// manifest (or, without one, its tables are counted).
	PhaseCheck Phase = "check"
	// PhaseSwap means the restored database replaces the target (full
	// restores only).
	PhaseSwap Phase = "swap"
)

func (r Request) phase(ph Phase) {
	if r.Phase != nil {
		r.Phase(ph)
	}
}

// Plan is a restore that passed its preflight.
type Plan struct {
	Request
	// Path is the file, latest pointers followed.
	Path        string
	Size        int64
	Compression backupfile.Compression
	// Manifest is nil for a file without one (a plain pg_dump file).
	Manifest *manifest.Manifest
	Kind     backupfile.Kind
	// Tables the file loads (data-only): from the manifest, or the file's
	// COPY lines without one.
	Tables []fingerprint.Table
	// LargeObjects says the file carries the database's large objects: a
	// data-only restore replaces the target's with them, as it replaces
	// rows.
	LargeObjects bool
	// Warnings to show before going on.
	Warnings []string
}

// Result is a finished restore.
type Result struct {
	Database string          `json:"database"`
	File     string          `json:"file"`
	Kind     backupfile.Kind `json:"kind"`
	Tables   int             `json:"tables"`
	Rows     int64           `json:"rows"`
	// Verified says the restored content was compared with the manifest
	// and is equal; false for a file without a manifest.
	Verified bool `json:"verified"`
	// Cleaned lists databases left by an earlier, interrupted restore
	// (its server died mid-way) that this one dropped.
	Cleaned []string `json:"cleaned,omitempty"`
	// RolesCreated lists the roles the restore created: the backup's
	// database refers to them and the server lacked them. Roles the server
	// had are left as they are.
	RolesCreated []string `json:"roles_created"`
}

func differs(db string, diffs []string) error {
	return &DifferenceError{Database: db, Differences: diffs}
}

// Preflight checks everything that can be checked before a restore changes
// anything: the file is there, is plain SQL (CheckFile) and whole, it
// belongs to this database (by its manifest; without one, by sharing a
// table with a target that has tables: checkForeign) and fits the command,
// the target has the extensions it needs and, for a data-only restore,
// every table and column it loads at a migration version not older than
// the backup's. A refusal is bad input (fault.Invalid), one of the
// package's typed errors where it has one (FileError, WrongDatabaseError,
// KindError, ExtensionError, ForeignError, SchemaError).
func Preflight(ctx context.Context, e Server, req Request) (Plan, error) {
	p := Plan{Request: req}
	var src source
	var err error
	if req.Object != nil {
		src, err = inspectObject(ctx, req.Object)
	} else {
		src, err = inspect(req.File)
	}
	if err != nil {
		return Plan{}, err
	}
	p.Path, p.Size, p.Compression = src.path, src.size, src.compression
	p.Warnings = append(p.Warnings, src.warnings...)
	if src.compression.IsSealed() {
		if err := canOpen(ctx, src, req.Keys); err != nil {
			return Plan{}, err
		}
	}

	var tables dumpformat.Tables
	if src.manifest == nil {
		p.Warnings = append(p.Warnings, fmt.Sprintf("%s has no manifest (not made by aidb?): it cannot be checked or verified; restoring it as it is", req.File))
		p.Kind = backupfile.Full
		if req.DataOnly {
			p.Kind = backupfile.Data
		}
		// One read: the end of the file says it is whole, its lines which
		// tables it creates and loads.
		if tables, err = readDump(src); err != nil {
			return Plan{}, err
		}
	} else if err := p.takeManifest(src, *src.manifest); err != nil {
		return Plan{}, err
	}

	if err := e.RequireReady(ctx, req.DB); err != nil {
		return Plan{}, err
	}
	conn, err := pgx.Connect(ctx, e.ConnString(req.DB))
	if err != nil {
		return Plan{}, fmt.Errorf("connect to %s: %w", req.DB.Name, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()

	// A missing extension first: its advice names an image that has it,
	// of the backup's major or newer, which settles both.
	if p.Manifest != nil {
		if err := checkExtensions(ctx, conn, *p.Manifest, req.DB, req.File); err != nil {
			return Plan{}, err
		}
	}
	if err := p.checkMajor(conn, tables); err != nil {
		return Plan{}, err
	}
	if p.Manifest == nil && !req.DataOnly && req.AsDatabase == "" {
		if err := p.checkForeign(ctx, conn, tables); err != nil {
			return Plan{}, err
		}
	}
	if req.DataOnly {
		if err := p.planData(ctx, conn, tables); err != nil {
			return Plan{}, err
		}
	}
	return p, nil
}

// takeManifest checks the file against its manifest m (unsealing m's
// sealed part with the request's keys) and that m is of the target
// database and of the kind of restore asked for; p keeps m.
func (p *Plan) takeManifest(src source, m manifest.Manifest) error {
	req := p.Request
	if m.Sealed != nil {
		// The schema part and role passwords of an encrypted backup's
		// manifest are sealed with it (Preflight checked the keys open it).
		if req.Keys == nil {
			return &encryption.KeyError{File: req.File, Recipients: recipients(m)}
		}
		if err := m.Unseal(req.File, req.Keys.OpenText); err != nil {
			return &FileError{File: req.File, Next: RestoreAnother, Err: err}
		}
	}
	p.Manifest, p.Kind = &m, m.Kind
	// A repository backup is not read twice: its recorded size and
	// sha256 are checked here, its bytes as they stream (checkStored).
	check := func() error { return manifest.Check(src.path, m) }
	if req.Object != nil {
		check = func() error { return checkStored(req.Object, m) }
	}
	if err := check(); err != nil {
		return &FileError{File: req.File, Next: RestoreAnother, Err: err}
	}
	if m.Database != req.DB.Name && m.Database != req.AsDatabase {
		return &WrongDatabaseError{File: req.File, Backup: m.Database, Target: req.DB.Name}
	}
	if req.DataOnly != (m.Kind == backupfile.Data) {
		return &KindError{File: req.File, Backup: m.Kind, DataOnly: req.DataOnly}
	}
	return nil
}

// checkMajor refuses a backup of a newer major than the server's (its
// manifest's server version, or a plain file's header).
func (p *Plan) checkMajor(conn *pgx.Conn, tables dumpformat.Tables) error {
	backup, image := tables.SourceMajor, ""
	if p.Manifest != nil {
		backup, image = p.Manifest.ServerMajor(), p.Manifest.Image
	}
	server := dumpformat.LeadingNumber(conn.PgConn().ParameterStatus("server_version"))
	if backup == 0 || server == 0 || backup <= server {
		return nil
	}
	return &NewerMajorError{Database: p.DB.Name, File: p.File, Backup: backup, Server: server, Image: p.DB.Image, BackupImage: image}
}

func recipients(m manifest.Manifest) []string {
	if m.Encryption == nil {
		return nil
	}
	return m.Encryption.Recipients
}

// checkExtensions refuses, with an ExtensionError, a target whose server
// lacks an extension the backup's manifest lists.
func checkExtensions(ctx context.Context, conn *pgx.Conn, m manifest.Manifest, db compose.Database, file string) error {
	rows, err := conn.Query(ctx, "SELECT name FROM pg_catalog.pg_available_extensions")
	if err != nil {
		return fmt.Errorf("list available extensions of %s: %w", db.Name, err)
	}
	avail, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	return missingExtensions(m, avail, db, file)
}

// missingExtensions is the ExtensionError for the extensions of m that
// avail lacks, nil when it has them all.
func missingExtensions(m manifest.Manifest, avail []string, db compose.Database, file string) error {
	e := &ExtensionError{Database: db.Name, File: file, Image: db.Image, Images: map[string]string{}, BackupImage: m.Image}
	for _, x := range m.Extensions {
		if !slices.Contains(avail, x.Name) {
			e.Missing = append(e.Missing, x.Name)
			if img := pgimage.ImageWith(x.Name); img != "" {
				e.Images[x.Name] = img
			}
		}
	}
	if len(e.Missing) == 0 {
		return nil
	}
	return e
}

// planData lists the tables a data-only file loads and compares the
// target's tables and columns with the backup's (compareColumns), at a
// migration version not older than the backup's; a target that cannot
// take the data is refused with a SchemaError naming each difference.
// Columns the target has and the backup lacks, which the load fills with
// their defaults, become warnings.
func (p *Plan) planData(ctx context.Context, conn *pgx.Conn, tables dumpformat.Tables) error {
	p.Tables = dataTables(p.Manifest, tables)
	// aidb's data-only backups carry every large object of their
	// database (pg_dump --data-only does); a file without a manifest, those
	// its lines create.
	p.LargeObjects = p.Manifest != nil || tables.LargeObjects
	have, err := targetColumns(ctx, conn, p.DB.Name)
	if err != nil {
		return err
	}
	d := compareColumns(p.Tables, have)
	p.Warnings = append(p.Warnings, d.warnings...)
	var targetVersion int64
	if p.Manifest != nil && p.Manifest.MigrationTable != "" {
		if targetVersion, err = migrationVersion(ctx, conn, p.Manifest.MigrationTable); err != nil {
			return err
		}
	}
	older := p.Manifest != nil && !p.IgnoreMigrationVersion && targetVersion < p.Manifest.MigrationVersion
	if len(d.missing) == 0 && len(d.changed) == 0 && len(d.extra) == 0 && !older {
		return nil
	}
	e := p.cannotTakeData(d.missing, older, targetVersion, schemaBackupFor(ctx, p))
	e.Changed, e.Extra = d.changed, d.extra
	e.CarriesSchema = p.Manifest != nil && p.Manifest.Schema != nil
	return e
}

// dataTables are the tables a data-only file loads: the manifest's, or
// without one the file's COPY blocks.
func dataTables(m *manifest.Manifest, tables dumpformat.Tables) []fingerprint.Table {
	if m != nil {
		return m.Tables
	}
	var out []fingerprint.Table
	for _, t := range tables.Copies {
		out = append(out, fingerprint.Table{Schema: t.Schema, Name: t.Name, Columns: t.Columns})
	}
	return out
}

// column is one of the target's columns, as a data-only restore sees it.
type column struct {
	Name string
	// Type is written as fingerprint.Table.Types records it.
	Type string
	// NotNull, Default, Identity and Generated say how a row loaded
	// without the column fills it.
	NotNull, Default, Identity, Generated bool
}

// targetColumns reads the target's tables (schema.name) and, for each,
// its columns in order, their types written as a backup's manifest
// records them (under the value settings' search path).
func targetColumns(ctx context.Context, conn *pgx.Conn, db string) (map[string][]column, error) {
	have := map[string][]column{}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, dumpformat.SetLocal(dumpformat.ValueSettings())); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT n.nspname || '.' || c.relname, a.attname, `+fingerprint.ColumnType+`,
			       a.attnotnull, a.atthasdef, a.attidentity <> '', a.attgenerated <> ''
			FROM pg_catalog.pg_attribute a
			JOIN pg_catalog.pg_class c ON c.oid = a.attrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f')
			  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			ORDER BY 1, a.attnum`)
		if err != nil {
			return err
		}
		var t string
		var c column
		_, err = pgx.ForEachRow(rows, []any{&t, &c.Name, &c.Type, &c.NotNull, &c.Default, &c.Identity, &c.Generated}, func() error {
			have[t] = append(have[t], c)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the schema of %s: %w", db, err)
	}
	return have, nil
}

// columnDiffs is how a target's tables differ from a backup's.
type columnDiffs struct {
	// missing: "table a.b", "column a.b.c" the target lacks.
	missing []string
	// changed: "column a.b.c is text here, integer in the backup".
	changed []string
	// extra: columns the target has and the backup lacks that a loaded
	// row cannot leave empty (NOT NULL, no default): "column a.b.c".
	extra []string
	// warnings: the other columns the target has and the backup lacks;
	// the load fills them with their defaults.
	warnings []string
}

// compareColumns compares, in the order of tables, each table the backup
// loads with the target's (have): tables and columns the target lacks,
// columns of another type (where the manifest records types; older ones
// are compared by name), and columns the backup lacks. Of those, one that
// is NOT NULL without a default (nor identity, nor generated) would fail
// the load: it is a difference; any other only means the restored rows
// take its default, which is what a migration that added the column
// since the backup intends: a warning. Generated columns are computed and
// not compared.
func compareColumns(tables []fingerprint.Table, have map[string][]column) columnDiffs {
	var d columnDiffs
	for _, t := range tables {
		cols, ok := have[t.Key()]
		if !ok {
			d.missing = append(d.missing, "table "+t.Key())
			continue
		}
		byName := map[string]column{}
		for _, c := range cols {
			byName[c.Name] = c
		}
		typed := len(t.Types) == len(t.Columns)
		for i, name := range t.Columns {
			c, ok := byName[name]
			switch {
			case !ok:
				d.missing = append(d.missing, "column "+t.Key()+"."+name)
			case typed && c.Type != t.Types[i]:
				d.changed = append(d.changed, fmt.Sprintf("column %s.%s is %s here, %s in the backup", t.Key(), name, c.Type, t.Types[i]))
			}
		}
		for _, c := range cols {
			if c.Generated || slices.Contains(t.Columns, c.Name) {
				continue
			}
			switch {
			case c.NotNull && !c.Default && !c.Identity:
				d.extra = append(d.extra, "column "+t.Key()+"."+c.Name)
			case c.Default || c.Identity:
				d.warnings = append(d.warnings, fmt.Sprintf("column %s.%s is not in the backup: the restored rows get its default", t.Key(), c.Name))
			default:
				d.warnings = append(d.warnings, fmt.Sprintf("column %s.%s is not in the backup: it will be NULL in the restored rows", t.Key(), c.Name))
			}
		}
	}
	return d
}

// migrationVersion is the target's migration version: the highest
// version_id in the bookkeeping table named as the manifest names it
// (schema.name), 0 when the target has no such table.
func migrationVersion(ctx context.Context, conn *pgx.Conn, table string) (int64, error) {
	var reg *string
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1)::text", table).Scan(&reg); err != nil {
		return 0, err
	}
	if reg == nil {
		return 0, nil
	}
	// reg is the server's own quoted name of an existing table.
	var v int64
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version_id), 0) FROM "+*reg).Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// cannotTakeData is the refusal (a SchemaError) of a data-only restore
// whose target lacks tables or columns, or is at an older migration
// version than the backup; it names schema, a schema backup to restore, if
// there is one.
func (p *Plan) cannotTakeData(missing []string, older bool, targetVersion int64, schema string) *SchemaError {
	e := &SchemaError{Database: p.DB.Name, File: p.File, Missing: missing, Older: older, Version: targetVersion, SchemaBackup: schema}
	if older {
		e.BackupVersion = p.Manifest.MigrationVersion
	}
	return e
}

// schemaBackupFor is the newest intact schema backup of p's database at the
// data backup's migration version (any, for a file without a manifest).
func schemaBackupFor(ctx context.Context, p *Plan) string {
	var match func(manifest.Manifest) bool
	if p.Manifest != nil {
		want := p.Manifest.MigrationVersion
		match = func(m manifest.Manifest) bool { return m.MigrationVersion == want }
	}
	path, _, err := catalog.New(catalog.Folder{Dir: p.BackupDir}).Newest(ctx, p.DB.Name, backupfile.Schema, match)
	if err != nil {
		return ""
	}
	return path
}

// withDatabase is connString pointing at another database of its server.
func withDatabase(connString, dbname string) string {
	u, err := url.Parse(connString)
	if err != nil {
		return connString
	}
	u.Path = "/" + dbname
	return u.String()
}

// literal quotes s as an SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var numericRE = regexp.MustCompile(`^-?[0-9]+$`)
