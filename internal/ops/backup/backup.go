// Package backup takes backups that prove themselves: pg_dump (from the
// database's own image) streams plain SQL into the backup folder while the
// fingerprint of the same snapshot is taken, and the manifest written beside
// the file says exactly what it holds.
package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/migrations"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/postgres/roles"
	"github.com/aidb/aidb/internal/store/catalog"
	"github.com/aidb/aidb/internal/store/folder"
	"github.com/aidb/aidb/orchestrator"
)

// Dumper is what a backup needs of the engine: the database (package
// orchestrator) and pg_dump run against it (package pgrun).
type Dumper interface {
	RequireReady(ctx context.Context, db compose.Database) error
	ConnString(db compose.Database) string
	Dump(ctx context.Context, db compose.Database, args []string, w io.Writer) error
	Image(ctx context.Context, db compose.Database) (string, error)
	StartStreams(ctx context.Context, db compose.Database, role, workDir string, t pgtools.Transport) (*pgtools.Streams, error)
}

// Request says what to back up.
type Request struct {
	Databases   []compose.Database
	Kind        backupfile.Kind
	Compression backupfile.Compression
	// Dir is the backup folder.
	Dir string
	// Transport is how pg_dump's output reaches the folder.
	Transport pgtools.Transport
	// SplitOver is the table size from which a table's rows are read in
	// parts at the same time (helper transport only); 0 never splits.
	SplitOver int64
	// ToolVersion goes into the manifests.
	ToolVersion string
	// Now is the clock (default time.Now); one timestamp names every file.
	Now func() time.Time
	// Progress, if set, is told the bytes written so far per database,
	// at most a few times a second.
	Progress func(database string, written int64)
	// Safety, if set, marks every file (and the set) as a safety backup
	// taken by aidb before a command replaced or removed data: it does not
	// move <db>-latest, and retention keeps it by its own rule.
	Safety *manifest.Safety
	// HoldLatest leaves <db>-latest where it is: the caller verifies the
	// new files first and points it with PointLatest only at a file that
	// proved restorable (a pointer is what users restore from).
	HoldLatest bool
	// NoOwner takes the backup without owners (pg_dump --no-owner): its
	// objects belong to whoever restores it, for another environment.
	// Privileges (GRANTs) are kept either way.
	NoOwner bool
	// RolePasswords puts the password hashes of the roles the database
	// refers to into the file and the manifest, which then hold secrets.
	RolePasswords bool
	// Recipients, if set, encrypt every file with age as it is written
	// (the compression becomes Compression.Sealed(): ….sql.zst.age).
	Recipients *encryption.Recipients
	// Upload, if set, starts the upload of each file to a repository,
	// which is sent the file's bytes as they are written (package
	// repository's Repository.Upload); its manifest goes up once the file
	// is whole (data object first, then manifest object, then the set
	// manifest). An upload that fails leaves the local backup whole: Run
	// returns an *UploadError after finishing every file.
	Upload func(ctx context.Context, name string) Upload
	// UploadSet, with Upload, writes the set manifest to the repository
	// once every file of the set is there.
	UploadSet func(ctx context.Context, name string, b []byte) error
	// NoLocal removes each file and its manifest from the folder once
	// its upload is complete (with Upload only): the folder then keeps
	// one backup's file at a time while it is written. A file whose upload
	// failed stays.
	NoLocal bool
}

// Upload is one file's upload to a repository as it is written.
type Upload interface {
	io.Writer
	// URL is where the file goes.
	URL() string
	// Finish completes the upload of size bytes with sha256 sum, then
	// writes the manifest object (its bytes).
	Finish(size int64, sum string, manifest []byte) error
	// Abort drops an upload not finished.
	Abort() error
}

// UploadError says files were backed up into the folder but not uploaded
// to the repository: the repository does not list them (their uploads
// were aborted); aidb push uploads them once it answers.
type UploadError struct {
	Files []string
	Err   error
}

func (e *UploadError) Error() string {
	return fmt.Sprintf("upload %s: %v; the backup is whole in the folder: run aidb push when the repository answers", strings.Join(e.Files, ", "), e.Err)
}

func (e *UploadError) Unwrap() error { return e.Err }

// File is one written backup.
type File struct {
	Database string                 `json:"database"`
	Kind     backupfile.Kind        `json:"kind"`
	Path     string                 `json:"file"`
	Manifest string                 `json:"manifest"`
	Size     int64                  `json:"size"`
	SHA256   string                 `json:"sha256"`
	Tables   int                    `json:"tables"`
	Rows     int64                  `json:"rows"`
	Seconds  float64                `json:"duration_s"`
	Latest   string                 `json:"latest,omitempty"`
	Codec    backupfile.Compression `json:"compression"`
	// Split names the tables whose rows were read in parts.
	Split []SplitTable `json:"split,omitempty"`
	// URL is where the file was uploaded, with Request.Upload ("" when
	// its upload failed: UploadErr says why).
	URL       string `json:"url,omitempty"`
	UploadErr error  `json:"-"`
	// Safety marks a safety backup (see Request.Safety).
	Safety *manifest.Safety `json:"safety,omitempty"`
}

// SplitTable is a table whose rows a backup read in parts at the same time.
type SplitTable struct {
	Table string `json:"table"`
	Parts int    `json:"parts"`
}

// Result is what Run wrote.
type Result struct {
	Files []File `json:"files"`
	// Set is the set manifest naming every file, when there are several.
	Set string `json:"set,omitempty"`
}

// Run backs up every requested database, in parallel, all named with one
// timestamp. Each file appears whole or not at all: on any error, or
// Ctrl-C, no file with a final name is left for a database that failed,
// and the partial files are removed.
func Run(ctx context.Context, e Dumper, req Request) (_ Result, retErr error) {
	if req.Now == nil {
		req.Now = time.Now
	}
	if req.Recipients != nil {
		req.Compression = req.Compression.Sealed()
	}
	if err := folder.Ensure(req.Dir); err != nil {
		return Result{}, err
	}
	for _, db := range req.Databases {
		if err := e.RequireReady(ctx, db); err != nil {
			return Result{}, err
		}
	}
	at := folder.FreeTime(req.Dir, req.Now(), func(t time.Time) []string {
		var names []string
		for _, db := range req.Databases {
			names = append(names, backupfile.Name(db.Name, req.Kind, t, req.Compression))
		}
		return append(names, manifest.SetName(req.Kind, t))
	})

	files := make([]File, len(req.Databases))
	g, gctx := errgroup.WithContext(ctx)
	for i, db := range req.Databases {
		g.Go(func() error {
			f, err := one(gctx, e, req, db, at)
			files[i] = f
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	res := Result{Files: files}
	var upErr *UploadError
	for _, f := range files {
		if f.UploadErr != nil {
			if upErr == nil {
				upErr = &UploadError{}
			}
			upErr.Files = append(upErr.Files, f.Path)
			upErr.Err = errors.Join(upErr.Err, f.UploadErr)
		}
	}
	if upErr != nil {
		// The set manifest is written locally; push uploads it with its
		// files.
		defer func() { retErr = errors.Join(retErr, upErr) }()
	}
	if len(files) > 1 {
		set := manifest.Set{Format: manifest.Format, Created: at, Kind: req.Kind, Safety: req.Safety}
		for _, f := range files {
			set.Files = append(set.Files, manifest.SetFile{Database: f.Database, File: filepath.Base(f.Path), SHA256: f.SHA256})
		}
		res.Set = filepath.Join(req.Dir, manifest.SetName(req.Kind, at))
		b, err := jsonIndent(set)
		if err == nil {
			err = folder.WriteFileAtomic(res.Set, b)
		}
		if err != nil {
			return res, fmt.Errorf("write set manifest: %w", err)
		}
		if req.UploadSet != nil && upErr == nil {
			if err := req.UploadSet(ctx, filepath.Base(res.Set), b); err != nil {
				return res, &UploadError{Files: []string{res.Set}, Err: err}
			}
			if req.NoLocal {
				if err := removeQuietly(res.Set); err != nil {
					return res, err
				}
			}
		}
	}
	return res, nil
}

// one backs up one database, in steps: the helper container starts, the
// snapshot is opened, the dump planned, the file created, the large tables
// chosen for reading in parts; then the dump and the fingerprint run; the
// file is committed, its manifest written beside it, and <db>-latest moved.
// A failure at any step removes the partial file (and a committed file
// whose manifest could not be written).
func one(ctx context.Context, e Dumper, req Request, db compose.Database, at time.Time) (File, error) {
	start := time.Now()
	out := File{Database: db.Name, Kind: req.Kind, Codec: req.Compression}
	image, err := e.Image(ctx, db)
	if err != nil {
		return out, err
	}
	streams, err := startHelper(ctx, e, req, db)
	if err != nil {
		return out, err
	}
	if streams != nil {
		defer func() { _ = streams.Close(context.WithoutCancel(ctx)) }()
	}
	snap, err := openSnapshot(ctx, e, db)
	if err != nil {
		return out, err
	}
	defer snap.close(ctx)
	plan := planDump(req.Kind, snap.id, snap.migTable, req.NoOwner)
	w, err := readWrapping(ctx, snap, req, db)
	if err != nil {
		return out, err
	}

	var up Upload
	if req.Upload != nil {
		up = req.Upload(ctx, backupfile.Name(db.Name, req.Kind, at, req.Compression))
		defer func() { _ = up.Abort() }() // nothing once finished
	}
	bf, sink, err := createFile(req, db, at, w.preamble, w.postscript, up)
	if err != nil {
		return out, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = bf.Abort()
		}
	}()
	defer sink.stop()

	if err := plan.chooseSplit(ctx, snap.tx, req, db, streams != nil); err != nil {
		return out, err
	}
	for _, t := range plan.split {
		out.Split = append(out.Split, SplitTable{Table: t.Schema + "." + t.Name, Parts: t.Parts})
	}
	taken, err := dumpAndFingerprint(ctx, e, db, streams, snap.tx, plan, sink)
	if err != nil {
		return out, err
	}

	if err := bf.Commit(); err != nil {
		return out, err
	}
	m := newManifest(req, db, image, at, bf.Path(), snap.migTable, sink, taken)
	m.Roles = w.roles
	m.DatabaseProperties = w.props
	if m.Encryption != nil {
		// No schema SQL or password hash in plain text beside a file
		// that hides them.
		if err := m.Seal(req.Recipients.SealText); err != nil {
			return out, err
		}
	}
	if err := manifest.Write(bf.Path(), m); err != nil {
		// A file without its manifest proves nothing: remove both.
		_ = removeQuietly(bf.Path())
		return out, err
	}
	committed = true
	out.Safety = req.Safety
	out.Path, out.Manifest = bf.Path(), manifest.PathFor(bf.Path())
	if err := place(ctx, req, db, m, up, &out); err != nil {
		return out, err
	}
	out.Seconds = time.Since(start).Seconds()
	return out, nil
}

// wrapping is what a file holds around pg_dump's output, read in the
// backup's snapshot.
type wrapping struct {
	// roles are those the database refers to: a full or schema file
	// creates those a server lacks (preamble) before its objects name
	// them, so plain psql restores it onto an empty server.
	roles    []roles.Role
	preamble string
	// props is what belongs to the database rather than to its schema
	// (its settings, comment, ACL, owner), which pg_dump leaves out
	// without --create: at the end of the file (postscript), and in the
	// manifest. A data-only file has neither.
	props      *fingerprint.Database
	postscript string
}

// readWrapping reads db's roles and properties in snap for a file of
// req.Kind.
func readWrapping(ctx context.Context, snap *snapshot, req Request, db compose.Database) (wrapping, error) {
	var w wrapping
	rs, err := roles.Read(ctx, snap.tx, req.RolePasswords)
	if err != nil {
		return w, fmt.Errorf("back up %s: %w", db.Name, err)
	}
	w.roles = rs
	if req.Kind == backupfile.Data {
		return w, nil
	}
	w.preamble = roles.File(rs)
	d, err := fingerprint.ReadDatabase(ctx, snap.tx, !req.NoOwner)
	if err != nil {
		return w, fmt.Errorf("back up %s: %w", db.Name, err)
	}
	w.props, w.postscript = &d, databaseEntry(d)
	return w, nil
}

// place finishes a committed file out with manifest m where it goes: the
// upload up finished (and the local copy removed with req.NoLocal, once
// uploaded), or else the <db>-latest pointer moved to it; out records
// where it is and what it holds.
func place(ctx context.Context, req Request, db compose.Database, m manifest.Manifest, up Upload, out *File) error {
	local := true
	if up != nil {
		if out.UploadErr = finishUpload(up, m, out.Manifest); out.UploadErr == nil {
			out.URL = up.URL()
			if req.NoLocal {
				if err := errors.Join(removeQuietly(out.Path), removeQuietly(out.Manifest)); err != nil {
					return err
				}
				local = false
			}
		}
	}
	if local {
		var err error
		if out.Latest, err = pointLatest(ctx, req, db, out.Path); err != nil {
			return err
		}
	}
	out.Size, out.SHA256, out.Tables = m.Size, m.SHA256, len(m.Tables)
	for _, t := range m.Tables {
		if t.Rows != nil {
			out.Rows += *t.Rows
		}
	}
	return nil
}

// finishUpload completes a file's upload with the manifest written at
// manifestPath (its very bytes go up).
func finishUpload(up Upload, m manifest.Manifest, manifestPath string) error {
	b, err := os.ReadFile(manifestPath)
	if err != nil {
		_ = up.Abort()
		return err
	}
	return up.Finish(m.Size, m.SHA256, b)
}

// startHelper starts the dump's helper container where the transport's
// path is the helper (package pgrun tries it once per run), so that it
// starts while the snapshot is taken and the dump planned; it waits for its
// runs. It returns nil streams for the exec stream. The caller closes the
// streams.
func startHelper(ctx context.Context, e Dumper, req Request, db compose.Database) (*pgtools.Streams, error) {
	streams, err := e.StartStreams(ctx, db, orchestrator.RoleDump, req.Dir, req.Transport)
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", db.Name, err)
	}
	return streams, nil
}

// snapshot is the transaction a backup reads in: a held REPEATABLE READ
// transaction exports it, pg_dump imports it, and the fingerprint reads in
// it, so the manifest describes exactly the rows in the file even while
// writers are busy.
type snapshot struct {
	conn *pgx.Conn
	tx   pgx.Tx
	// id is the exported snapshot, for pg_dump --snapshot.
	id string
	// migTable is the migration bookkeeping table, quoted and schema
	// qualified; "" when the database has none.
	migTable string
}

// openSnapshot connects to the database, begins the snapshot's read-only
// transaction, exports it, sets the fingerprint's session settings in it
// and finds the migration table. On failure it closes what it opened; on
// success the caller closes the snapshot.
func openSnapshot(ctx context.Context, e Dumper, db compose.Database) (_ *snapshot, retErr error) {
	conn, err := pgx.Connect(ctx, e.ConnString(db))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", db.Name, err)
	}
	s := &snapshot{conn: conn}
	defer func() {
		if retErr != nil {
			s.close(ctx)
		}
	}()
	if s.tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}); err != nil {
		return nil, fmt.Errorf("begin snapshot on %s: %w", db.Name, err)
	}
	if err := s.tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&s.id); err != nil {
		return nil, fmt.Errorf("export snapshot of %s: %w", db.Name, err)
	}
	if err := fingerprint.Prepare(ctx, s.tx); err != nil {
		return nil, err
	}
	if s.migTable, err = migrations.FindTable(ctx, s.tx); err != nil {
		return nil, err
	}
	return s, nil
}

// close ends the snapshot's transaction and its connection, also after
// Ctrl-C.
func (s *snapshot) close(ctx context.Context) {
	if s.tx != nil {
		_ = s.tx.Rollback(context.WithoutCancel(ctx))
	}
	_ = s.conn.Close(context.WithoutCancel(ctx))
}

// dumpPlan is what one database's dump runs.
type dumpPlan struct {
	kind     backupfile.Kind
	snapshot string
	// migTable is the migration table as quoted and qualified ("" none).
	migTable string
	// args are the first pg_dump's arguments; then are pg_dumps whose
	// output follows the first's, in the same snapshot.
	args []string
	then [][]string
	// schema are the pg_dumps of a data-only backup's schema part, in the
	// same snapshot: their output goes into the manifest, not the file.
	schema [][]string
	// exclude lists tables (a.b) the dump leaves out, dataOf tables whose
	// rows a schema-only dump holds: the fingerprint does the same.
	exclude, dataOf []string
	// split are the tables read in parts (helper transport only), lanes
	// how many parts run at once, encoding the server's (for the parts).
	split    []splitTable
	lanes    int
	encoding string
	// noOwner is pg_dump --no-owner: the data comments name no owner.
	noOwner bool
}

// dumpArgs are the options every pg_dump of a backup runs with, in the
// backup's snapshot: a full dump, a schema-only one and a data-only
// backup's schema part take them from here, so they keep (or leave out)
// the same owners and privileges.
func dumpArgs(snapshot string, noOwner bool) []string {
	if noOwner {
		return []string{"--format=plain", "--no-owner", "--snapshot=" + snapshot}
	}
	return []string{"--format=plain", "--snapshot=" + snapshot}
}

// planDump returns the pg_dump runs of a backup of kind in snapshot, for a
// database whose migration table is migTable (quoted; "" for none). Owners
// and privileges are kept (ALTER ... OWNER TO, GRANT, ALTER DEFAULT
// PRIVILEGES), owners only without noOwner.
func planDump(kind backupfile.Kind, snapshot, migTable string, noOwner bool) dumpPlan {
	p := dumpPlan{kind: kind, snapshot: snapshot, migTable: migTable, noOwner: noOwner}
	p.args = dumpArgs(snapshot, noOwner)
	switch kind {
	case backupfile.Schema:
		p.args = append(p.args, "--schema-only")
		if migTable != "" {
			// The schema's migration bookkeeping rows (and its identity
			// sequence) travel with it, so that a database restored from
			// it knows its migration version: pg_dump --schema-only holds
			// no rows, so a data-only pg_dump of just that table follows.
			p.then = append(p.then, append(dumpArgs(snapshot, noOwner), "--data-only", "--table="+migTable))
			p.dataOf = append(p.dataOf, unquote(migTable))
		}
	case backupfile.Data:
		p.args = append(p.args, "--data-only")
		if migTable != "" {
			// Migration bookkeeping belongs to the schema the target was
			// migrated to, not to the data.
			p.args = append(p.args, "--exclude-table="+migTable)
			p.exclude = append(p.exclude, unquote(migTable))
		}
		// The schema the data was taken from travels with it (in the
		// manifest): what a schema backup of the same snapshot holds, so
		// the data is verified on the schema it came from, tables made
		// outside the migrations included.
		sp := planDump(backupfile.Schema, snapshot, migTable, noOwner)
		p.schema = append([][]string{sp.args}, sp.then...)
	}
	return p
}

// createFile creates the backup's partial file in the folder and the sink
// the dump writes it through, which puts preamble after the dump's header.
// The caller commits or aborts the file, and stops the sink.
func createFile(req Request, db compose.Database, at time.Time, preamble, postscript string, up Upload) (*folder.File, *sink, error) {
	bf, err := folder.Create(req.Dir, backupfile.Name(db.Name, req.Kind, at, req.Compression))
	if err != nil {
		return nil, nil, err
	}
	var w io.Writer = bf
	if up != nil {
		w = io.MultiWriter(bf, up) // the upload drops what it cannot send
	}
	s, err := newSink(w, req.Kind != backupfile.Schema, req.Compression, req.Recipients, preamble, postscript, func(n int64) {
		if req.Progress != nil {
			req.Progress(db.Name, n)
		}
	})
	if err != nil {
		_ = bf.Abort()
		return nil, nil, err
	}
	return bf, s, nil
}

// chooseSplit picks the tables whose rows are read in parts (see
// largeTables), locking them in the snapshot's transaction, and reads the
// server's encoding for the parts. Only a backup with rows, through the
// helper container, with SplitOver set and two lanes or more splits; else
// it leaves the plan as it is.
func (p *dumpPlan) chooseSplit(ctx context.Context, tx pgx.Tx, req Request, db compose.Database, helper bool) error {
	p.lanes = splitLanes(len(req.Databases))
	if p.kind == backupfile.Schema || req.SplitOver <= 0 || !helper || p.lanes < 2 {
		return nil
	}
	var err error
	if p.split, err = largeTables(ctx, tx, req.SplitOver, p.exclude, p.lanes, p.kind == backupfile.Data); err != nil {
		return err
	}
	if p.noOwner {
		for i := range p.split {
			p.split[i].Owner = ""
		}
	}
	if err := tx.QueryRow(ctx, "SELECT current_setting('server_encoding')").Scan(&p.encoding); err != nil {
		return fmt.Errorf("read the encoding of %s: %w", db.Name, err)
	}
	return nil
}

// taken is what dumpAndFingerprint measured.
type taken struct {
	fp      fingerprint.Fingerprint
	dumpDur time.Duration
	scanDur time.Duration
	// schema is a data-only backup's schema part (nil for other kinds).
	schema []byte
}

// dumpAndFingerprint runs the dump into sink (through the helper's streams,
// or the engine's exec when streams is nil) and the fingerprint of the
// schema in tx, at the same time; the rows are counted and hashed from the
// dump's stream as it passes, and filled into the fingerprint's tables. It
// returns the fingerprint and how long each side took.
func dumpAndFingerprint(ctx context.Context, e Dumper, db compose.Database, streams *pgtools.Streams, tx pgx.Tx, p dumpPlan, sink *sink) (taken, error) {
	var t taken
	var schema bytes.Buffer
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		t0 := time.Now()
		defer func() { t.dumpDur = time.Since(t0) }()
		var err error
		if streams != nil {
			err = helperDump(gctx, streams, p.args, p.then, p.schema, &schema, p.kind == backupfile.Full, p.snapshot, p.encoding, p.split, p.lanes, sink)
		} else {
			for _, a := range append([][]string{p.args}, p.then...) {
				if err = e.Dump(gctx, db, a, sink); err != nil {
					break
				}
			}
		}
		if err != nil {
			return fmt.Errorf("dump %s: %w", db.Name, err)
		}
		return sink.Close()
	})
	if streams == nil && len(p.schema) > 0 {
		// The schema part, beside the data (the helper runs it in a lane
		// of its own).
		g.Go(func() error {
			for _, a := range p.schema {
				if err := e.Dump(gctx, db, a, &schema); err != nil {
					return fmt.Errorf("dump the schema of %s: %w", db.Name, err)
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		t0 := time.Now()
		defer func() { t.scanDur = time.Since(t0) }()
		var err error
		privs := fingerprint.WithOwners
		if p.noOwner {
			privs = fingerprint.WithoutOwners
		}
		t.fp, err = fingerprint.Take(gctx, tx, fingerprint.Options{Exclude: p.exclude, MigrationTable: p.migTable, DataOf: p.dataOf, Privileges: privs})
		return err
	})
	if err := g.Wait(); err != nil {
		return t, err
	}
	if sink.rows != nil {
		sink.stop()
		if err := sink.rows.Fill(t.fp.Tables); err != nil {
			return t, fmt.Errorf("dump %s: %w", db.Name, err)
		}
	}
	if len(p.schema) > 0 {
		t.schema = schema.Bytes()
	}
	return t, nil
}

// newManifest is the manifest of the committed file at path: what the
// fingerprint found and what the sink wrote.
func newManifest(req Request, db compose.Database, image string, at time.Time, path, migTable string, s *sink, t taken) manifest.Manifest {
	m := manifest.Manifest{
		Format:           manifest.Format,
		ToolVersion:      req.ToolVersion,
		Database:         db.Name,
		Kind:             req.Kind,
		File:             filepath.Base(path),
		Created:          at,
		ServerVersion:    t.fp.ServerVersion,
		Superuser:        t.fp.Superuser,
		Image:            image,
		MigrationVersion: t.fp.MigrationVersion,
		MigrationTable:   unquote(migTable),
		Compression:      req.Compression,
		Size:             s.size(),
		SHA256:           s.sum(),
		Extensions:       t.fp.Extensions,
		SchemaHash:       t.fp.SchemaHash,
		Tables:           t.fp.Tables,
		Sequences:        s.sequences(),
		Privileges:       t.fp.Privileges,
		RolePasswords:    req.RolePasswords,
		NoOwner:          req.NoOwner,
		DumpSeconds:      t.dumpDur.Seconds(),
		ScanSeconds:      t.scanDur.Seconds(),
		Safety:           req.Safety,
	}
	if req.Compression.IsSealed() && req.Recipients != nil {
		m.Encryption = &manifest.Encryption{Method: "age", Recipients: req.Recipients.Names()}
		m.PlainSHA256 = s.plainSum()
	}
	if m.Sequences == nil {
		m.Sequences = []fingerprint.Sequence{}
	}
	if t.schema != nil {
		m.Schema = manifest.NewSchema(t.schema)
	}
	return m
}

// pointLatest points <db>-latest at the file at path and returns the
// pointer's path, for a full backup that is not a safety backup and not
// held for verification (HoldLatest); else it does nothing and returns "". <db>-latest names the user's newest full
// backup; a safety backup of what a restore or nuke replaced is not one.
func pointLatest(ctx context.Context, req Request, db compose.Database, path string) (string, error) {
	if req.Kind != backupfile.Full || req.Safety != nil || req.HoldLatest {
		return "", nil
	}
	return PointLatest(ctx, req.Dir, db.Name, req.Compression, path)
}

// PointLatest points dir's <db>-latest pointer (of the file's compression)
// at the backup file path, and returns the pointer's path: what a backup
// taken with HoldLatest does once its files are verified.
func PointLatest(ctx context.Context, dir, db string, c backupfile.Compression, path string) (string, error) {
	if err := catalog.New(catalog.Folder{Dir: dir}).PointLatest(ctx, db, c, filepath.Base(path)); err != nil {
		return "", err
	}
	return filepath.Join(dir, backupfile.LatestName(db, c)), nil
}

// sink is where the dump's bytes go: the setval scanner and the row hasher
// see the plain SQL as pg_dump wrote it, then the preamble (the roles) is
// put in after its header, then the compressor, then the file, counted and
// hashed: the file's size and sha256 cover all of it.
type sink struct {
	mu       sync.Mutex
	seqs     dumpformat.SetvalScanner
	rows     *fingerprint.RowHasher // nil for schema-only dumps
	behind   *behind                // runs rows on a goroutine of its own
	preamble *dumpformat.Preamble
	// postscript puts the database's own properties in before the
	// dump's closing comment.
	postscript *dumpformat.Postscript
	compress   io.WriteCloser // nil for none
	seal       io.WriteCloser // age encryption under the compression; nil for none
	plain      hash.Hash      // of the plain SQL, when sealed
	counted    *countingWriter
	// out gathers what goes to counted (the file's bytes: compressed,
	// sealed) into writes of outBuffer bytes: the exec stream hands the
	// dump over in pieces of 32 KiB or less, and one write (and one
	// hashing, one upload copy) per piece cost more than the bytes.
	// Progress moves in steps of it.
	out *bufio.Writer
	h   hash.Hash
}

// outBuffer is the size of the sink's writes to the file.
const outBuffer = 256 << 10

func newSink(f io.Writer, data bool, c backupfile.Compression, to *encryption.Recipients, preamble, postscript string, progress func(int64)) (*sink, error) {
	s := &sink{h: sha256.New()}
	if data {
		s.rows = &fingerprint.RowHasher{}
		s.behind = newBehind(s.rows)
	}
	s.counted = &countingWriter{w: io.MultiWriter(f, s.h), progress: progress}
	s.out = bufio.NewWriterSize(s.counted, outBuffer)
	var under io.Writer = s.out
	if c.IsSealed() {
		if to == nil {
			return nil, fmt.Errorf("compression %s without recipients to encrypt to", c)
		}
		seal, err := to.Seal(s.out)
		if err != nil {
			return nil, fmt.Errorf("encrypt: %w", err)
		}
		s.seal, s.plain, under = seal, sha256.New(), seal
	}
	out := under
	switch c.Inner() {
	case backupfile.Gzip:
		s.compress = gzip.NewWriter(under)
		out = s.compress
	case backupfile.Zstd:
		zw, err := zstd.NewWriter(under)
		if err != nil {
			return nil, err
		}
		s.compress = zw
		out = zw
	}
	if s.plain != nil {
		// The plain SQL's sha256 (the preamble included): what a
		// decryption and then a decompression give back.
		out = io.MultiWriter(out, s.plain)
	}
	s.postscript = dumpformat.NewPostscript(out, postscript)
	s.preamble = dumpformat.NewPreamble(s.postscript, preamble)
	return s, nil
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs.Scan(p)
	if s.behind != nil {
		s.behind.write(p)
	}
	return s.preamble.Write(p)
}

// Close checks that the preamble went in, flushes the compressor and waits
// for the row hasher.
func (s *sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop()
	if err := s.preamble.Close(); err != nil {
		return err
	}
	if err := s.postscript.Close(); err != nil {
		return err
	}
	if s.compress != nil {
		if err := s.compress.Close(); err != nil {
			return err
		}
	}
	if s.seal != nil {
		if err := s.seal.Close(); err != nil {
			return err
		}
	}
	return s.out.Flush()
}

// stop ends the row hasher's goroutine once it has read everything
// written; Close calls it, and a failed backup must too.
func (s *sink) stop() {
	if s.behind != nil {
		s.behind.wait()
	}
}

func (s *sink) size() int64 { return s.counted.n }
func (s *sink) sum() string { return hex.EncodeToString(s.h.Sum(nil)) }

// plainSum is the sha256 of the plain SQL of a sealed file.
func (s *sink) plainSum() string { return hex.EncodeToString(s.plain.Sum(nil)) }

// sequences are the values the dump sets, nil for none.
func (s *sink) sequences() []fingerprint.Sequence {
	var out []fingerprint.Sequence
	for _, q := range s.seqs.Sequences() {
		out = append(out, fingerprint.Sequence{Name: q.Name, Value: q.Value, Called: q.Called})
	}
	return out
}

// unquote turns a quoted qualified name ("a"."b" or a.b), as quote_ident
// writes it, into a.b.
func unquote(qualified string) string {
	t, err := dumpformat.ParseName(qualified)
	if err != nil {
		return qualified
	}
	return t.Key()
}

// countingWriter counts bytes and reports progress at most every 200 ms.
type countingWriter struct {
	w        io.Writer
	n        int64
	progress func(int64)
	last     time.Time
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if now := time.Now(); c.progress != nil && now.Sub(c.last) > 200*time.Millisecond {
		c.last = now
		c.progress(c.n)
	}
	return n, err
}

// HasData says whether the database holds any table of its own: an empty
// database needs no safety backup.
func HasData(ctx context.Context, connString string) (bool, error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var has bool
	err = conn.QueryRow(ctx, `
		SELECT EXISTS (
			SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
			  AND n.nspname NOT LIKE 'pg\_toast%')`).Scan(&has)
	return has, err
}

// behind runs a writer that never fails on a goroutine of its own, so its
// work (hashing every row) takes another core while the dump goes on. It
// is handed batches of behindBatch bytes (one hand-over per exec-stream
// frame would cost more than the hashing); at most behindQueue batches
// wait, then the dump waits.
type behind struct {
	w    io.Writer
	buf  []byte
	ch   chan []byte
	free chan []byte
	done chan struct{}
	once sync.Once
}

const (
	behindBatch = 256 << 10
	behindQueue = 4
)

func newBehind(w io.Writer) *behind {
	b := &behind{w: w, ch: make(chan []byte, behindQueue), free: make(chan []byte, behindQueue+2), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for p := range b.ch {
			_, _ = b.w.Write(p)
			select {
			case b.free <- p[:0]:
			default:
			}
		}
	}()
	return b
}

func (b *behind) write(p []byte) {
	if b.buf == nil {
		select {
		case b.buf = <-b.free:
		default:
			b.buf = make([]byte, 0, behindBatch)
		}
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= behindBatch {
		b.ch <- b.buf
		b.buf = nil
	}
}

// wait returns once everything written has been processed.
func (b *behind) wait() {
	b.once.Do(func() {
		if len(b.buf) > 0 {
			b.ch <- b.buf
		}
		close(b.ch)
	})
	<-b.done
}

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

func removeQuietly(path string) error {
	err := os.Remove(path)
	if os.IsNotExist(err) {
		return nil
	}
	return err
}
