// Package backup takes backups that prove themselves: pg_dump (from the
// database's own image) streams plain SQL into the backup folder while the
// fingerprint of the same snapshot is taken, and the manifest written beside
// the file says exactly what it holds.
package backup

import (
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
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/aidb/aidb/backupdir"
	"github.com/aidb/aidb/backupfile"
	"github.com/aidb/aidb/catalog"
	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/fingerprint"
	"github.com/aidb/aidb/manifest"
	"github.com/aidb/aidb/migrations"
	"github.com/aidb/aidb/orchestrator"
	"github.com/aidb/aidb/pgdump"
	"github.com/aidb/aidb/pgrun"
)

// Engine is what a backup needs of the engine: the database (package
// orchestrator) and pg_dump run against it (package pgrun).
type Engine interface {
	RequireReady(ctx context.Context, db compose.Database) error
	ConnString(db compose.Database) string
	Dump(ctx context.Context, db compose.Database, args []string, w io.Writer) error
	Image(ctx context.Context, db compose.Database) (string, error)
	Resolve(t pgrun.Transport) pgrun.Transport
	StartStreams(ctx context.Context, db compose.Database, role, workDir string) (*pgrun.Streams, error)
}

// Request says what to back up.
type Request struct {
	Databases   []compose.Database
	Kind        backupfile.Kind
	Compression backupfile.Compression
	// Dir is the backup folder.
	Dir string
	// Transport is how pg_dump's output reaches the folder.
	Transport pgrun.Transport
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
}

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
func Run(ctx context.Context, e Engine, req Request) (Result, error) {
	if req.Now == nil {
		req.Now = time.Now
	}
	if err := backupdir.Ensure(req.Dir); err != nil {
		return Result{}, err
	}
	for _, db := range req.Databases {
		if err := e.RequireReady(ctx, db); err != nil {
			return Result{}, err
		}
	}
	at := backupdir.FreeTime(req.Dir, req.Now(), func(t time.Time) []string {
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
	if len(files) > 1 {
		set := manifest.Set{Format: manifest.Format, Created: at, Kind: req.Kind, Safety: req.Safety}
		for _, f := range files {
			set.Files = append(set.Files, manifest.SetFile{Database: f.Database, File: filepath.Base(f.Path), SHA256: f.SHA256})
		}
		res.Set = filepath.Join(req.Dir, manifest.SetName(req.Kind, at))
		b, err := jsonIndent(set)
		if err == nil {
			err = backupdir.WriteFileAtomic(res.Set, b)
		}
		if err != nil {
			return res, fmt.Errorf("write set manifest: %w", err)
		}
	}
	return res, nil
}

// one backs up one database.
func one(ctx context.Context, e Engine, req Request, db compose.Database, at time.Time) (File, error) {
	start := time.Now()
	out := File{Database: db.Name, Kind: req.Kind, Codec: req.Compression}
	image, err := e.Image(ctx, db)
	if err != nil {
		return out, err
	}
	// On a local engine the dump's helper container starts now, while the
	// snapshot is taken and the dump planned; it waits for its runs.
	var streams *pgrun.Streams
	if e.Resolve(req.Transport) == pgrun.TransportHelper {
		if streams, err = e.StartStreams(ctx, db, orchestrator.RoleDump, req.Dir); err != nil {
			return out, fmt.Errorf("dump %s: %w", db.Name, err)
		}
		defer streams.Close(context.WithoutCancel(ctx))
	}

	// The snapshot: a held REPEATABLE READ transaction exports it, pg_dump
	// imports it, and the fingerprint reads in it, so the manifest
	// describes exactly the rows in the file even while writers are busy.
	conn, err := pgx.Connect(ctx, e.ConnString(db))
	if err != nil {
		return out, fmt.Errorf("connect to %s: %w", db.Name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return out, fmt.Errorf("begin snapshot on %s: %w", db.Name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var snapshot string
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&snapshot); err != nil {
		return out, fmt.Errorf("export snapshot of %s: %w", db.Name, err)
	}
	if err := fingerprint.Prepare(ctx, tx); err != nil {
		return out, err
	}
	migTable, err := migrationTable(ctx, tx)
	if err != nil {
		return out, err
	}

	args := []string{"--format=plain", "--no-owner", "--no-privileges", "--snapshot=" + snapshot}
	var exclude, dataOf []string
	// then are pg_dumps whose output follows the first's, in the same
	// snapshot.
	var then [][]string
	switch req.Kind {
	case backupfile.Schema:
		args = append(args, "--schema-only")
		if migTable != "" {
			// The schema's migration bookkeeping rows (and its identity
			// sequence) travel with it, so that a database restored from
			// it knows its migration version: pg_dump --schema-only holds
			// no rows, so a data-only pg_dump of just that table follows.
			then = append(then, []string{"--format=plain", "--no-owner", "--no-privileges", "--snapshot=" + snapshot,
				"--data-only", "--table=" + migTable})
			dataOf = append(dataOf, unquote(migTable))
		}
	case backupfile.Data:
		args = append(args, "--data-only")
		if migTable != "" {
			// Migration bookkeeping belongs to the schema the target was
			// migrated to, not to the data.
			args = append(args, "--exclude-table="+migTable)
			exclude = append(exclude, unquote(migTable))
		}
	}

	bf, err := backupdir.Create(req.Dir, backupfile.Name(db.Name, req.Kind, at, req.Compression))
	if err != nil {
		return out, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = bf.Abort()
		}
	}()
	sink, err := newSink(bf, req.Kind != backupfile.Schema, req.Compression, func(n int64) {
		if req.Progress != nil {
			req.Progress(db.Name, n)
		}
	})
	if err != nil {
		return out, err
	}
	defer sink.stop()

	helper := streams != nil
	var split []splitTable
	var encoding string
	lanes := splitLanes(len(req.Databases))
	if req.Kind != backupfile.Schema && req.SplitOver > 0 && helper && lanes >= 2 {
		if split, err = largeTables(ctx, tx, req.SplitOver, exclude, lanes, req.Kind == backupfile.Data); err != nil {
			return out, err
		}
		if err := tx.QueryRow(ctx, "SELECT current_setting('server_encoding')").Scan(&encoding); err != nil {
			return out, fmt.Errorf("read the encoding of %s: %w", db.Name, err)
		}
	}
	for _, t := range split {
		out.Split = append(out.Split, SplitTable{Table: t.Schema + "." + t.Name, Parts: t.Parts})
	}

	// The dump and the fingerprint of the schema run at the same time; the
	// rows are counted and hashed from the dump's stream as it passes.
	var fp fingerprint.Fingerprint
	var dumpDur, scanDur time.Duration
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		t0 := time.Now()
		defer func() { dumpDur = time.Since(t0) }()
		var err error
		if helper {
			err = helperDump(gctx, streams, args, then, req.Kind == backupfile.Full, snapshot, encoding, split, lanes, sink)
		} else {
			for _, a := range append([][]string{args}, then...) {
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
	g.Go(func() error {
		t0 := time.Now()
		defer func() { scanDur = time.Since(t0) }()
		var err error
		fp, err = fingerprint.Take(gctx, tx, fingerprint.Options{Exclude: exclude, MigrationTable: migTable, DataOf: dataOf})
		return err
	})
	if err := g.Wait(); err != nil {
		return out, err
	}
	if sink.rows != nil {
		sink.stop()
		if err := sink.rows.Fill(fp.Tables); err != nil {
			return out, fmt.Errorf("dump %s: %w", db.Name, err)
		}
	}

	if err := bf.Commit(); err != nil {
		return out, err
	}
	m := manifest.Manifest{
		Format:           manifest.Format,
		ToolVersion:      req.ToolVersion,
		Database:         db.Name,
		Kind:             req.Kind,
		File:             filepath.Base(bf.Path()),
		Created:          at,
		ServerVersion:    fp.ServerVersion,
		Image:            image,
		MigrationVersion: fp.MigrationVersion,
		MigrationTable:   unquote(migTable),
		Compression:      req.Compression,
		Size:             sink.size(),
		SHA256:           sink.sum(),
		Extensions:       fp.Extensions,
		SchemaHash:       fp.SchemaHash,
		Tables:           fp.Tables,
		Sequences:        sink.sequences(),
		DumpSeconds:      dumpDur.Seconds(),
		ScanSeconds:      scanDur.Seconds(),
		Safety:           req.Safety,
	}
	if m.Sequences == nil {
		m.Sequences = []fingerprint.Sequence{}
	}
	if err := manifest.Write(bf.Path(), m); err != nil {
		// A file without its manifest proves nothing: remove both.
		_ = removeQuietly(bf.Path())
		return out, err
	}
	committed = true
	out.Safety = req.Safety
	// <db>-latest names the user's newest full backup; a safety backup of
	// what a restore or nuke replaced is not one.
	if req.Kind == backupfile.Full && req.Safety == nil {
		if err := catalog.New(catalog.Folder{Dir: req.Dir}).PointLatest(ctx, db.Name, req.Compression, filepath.Base(bf.Path())); err != nil {
			return out, err
		}
		out.Latest = filepath.Join(req.Dir, backupfile.LatestName(db.Name, req.Compression))
	}
	out.Path, out.Manifest = bf.Path(), manifest.PathFor(bf.Path())
	out.Size, out.SHA256, out.Tables = m.Size, m.SHA256, len(m.Tables)
	for _, t := range m.Tables {
		if t.Rows != nil {
			out.Rows += *t.Rows
		}
	}
	out.Seconds = time.Since(start).Seconds()
	return out, nil
}

// migrationTable finds the migration bookkeeping table, quoted and schema
// qualified; "" when the database has none.
func migrationTable(ctx context.Context, q fingerprint.Querier) (string, error) {
	var name *string
	err := q.QueryRow(ctx, `
		SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relname = $1 AND c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		ORDER BY n.nspname = 'public' DESC, n.nspname LIMIT 1`, migrations.Table).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find the migration table: %w", err)
	}
	return *name, nil
}

// sink is where the dump's bytes go: the setval scanner and the row hasher
// see the plain SQL, then the compressor, then the file, counted and hashed.
type sink struct {
	mu       sync.Mutex
	seqs     pgdump.SetvalScanner
	rows     *fingerprint.RowHasher // nil for schema-only dumps
	behind   *behind                // runs rows on a goroutine of its own
	compress io.WriteCloser         // nil for none
	counted  *countingWriter
	h        hash.Hash
}

func newSink(f io.Writer, data bool, c backupfile.Compression, progress func(int64)) (*sink, error) {
	s := &sink{h: sha256.New()}
	if data {
		s.rows = &fingerprint.RowHasher{}
		s.behind = newBehind(s.rows)
	}
	s.counted = &countingWriter{w: io.MultiWriter(f, s.h), progress: progress}
	switch c {
	case backupfile.Gzip:
		s.compress = gzip.NewWriter(s.counted)
	case backupfile.Zstd:
		zw, err := zstd.NewWriter(s.counted)
		if err != nil {
			return nil, err
		}
		s.compress = zw
	}
	return s, nil
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seqs.Scan(p)
	if s.behind != nil {
		s.behind.write(p)
	}
	if s.compress != nil {
		return s.compress.Write(p)
	}
	return s.counted.Write(p)
}

// Close flushes the compressor and waits for the row hasher.
func (s *sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop()
	if s.compress != nil {
		return s.compress.Close()
	}
	return nil
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
	t, err := pgdump.ParseName(qualified)
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
	defer conn.Close(context.WithoutCancel(ctx))
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
