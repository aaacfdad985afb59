// Package verify proves a backup restorable: it restores the file into a
// throwaway container of the image the backup came from (so its extensions
// are there), or of another one for an upgrade rehearsal, with the restore package's own checks, and compares what
// arrived with the manifest table by table. A data-only backup is verified
// on the schema it carries (the schema it was taken from); one made before
// data-only backups carried their schema, on the migrations at the
// manifest's version, or the matching schema backup.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/archive/verifylog"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/migrations"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/postgres/roles"
	"github.com/aidb/aidb/internal/store/catalog"
)

// Throwaways starts throwaway containers.
type Throwaways interface {
	StartThrowaway(ctx context.Context, image, service, user string) (*pgtools.Throwaway, error)
}

// Result is one file's verification.
type Result struct {
	File        string          `json:"file"`
	Database    string          `json:"database"`
	Kind        backupfile.Kind `json:"kind"`
	OK          bool            `json:"ok"`
	Tables      int             `json:"tables"`
	Rows        int64           `json:"rows"`
	Seconds     float64         `json:"duration_s"`
	Differences []string        `json:"differences"`
	// RolesCreated lists the roles created in the throwaway before the
	// file loaded: the roles the backup's database refers to that the
	// throwaway server lacked.
	RolesCreated []string `json:"roles_created"`
	// Error says why the file could not be verified (exit 1), as opposed
	// to a difference found (exit 3).
	Error string `json:"error,omitempty"`
	// Err is that error itself (a NoManifestError, a NoSchemaError, ...),
	// for a caller that adds advice to it.
	Err error `json:"-"`
	// SHA256 and Image are the file's checksum and the image it was
	// restored into, from its manifest (empty without one).
	SHA256 string `json:"sha256,omitempty"`
	Image  string `json:"image,omitempty"`
	// Amcheck is what pg_amcheck found after the compare (Options.Amcheck):
	// an index that does not match its table is a difference.
	Amcheck *pgtools.Amcheck `json:"amcheck,omitempty"`
	// ReusedThrowaway says the file was restored into a throwaway that an
	// earlier file of the same run had used, put back as it started
	// (pgtools.Throwaway.Clean), not into a new one.
	ReusedThrowaway bool `json:"reused_throwaway"`
	// Warnings are what went wrong beside the verification itself (its
	// record could not be written, a throwaway could not be removed).
	Warnings []string `json:"warnings,omitempty"`
	// remote says File is a backup in a repository.
	remote bool
}

// NoManifestError is a file without a manifest: there is nothing to verify
// it against. A plain pg_dump file restores, unverified.
type NoManifestError struct{ File string }

func (e *NoManifestError) Error() string {
	return fmt.Sprintf("%s has no manifest, so there is nothing to verify it against (a plain pg_dump file restores, unverified)", e.File)
}

// NoSchemaError is a data-only backup that cannot be verified: its
// database has no migrations at its version, and Dir no intact schema
// backup at that version to load it on.
type NoSchemaError struct {
	File     string
	Database string
	Version  int64
	Dir      string
}

func (e *NoSchemaError) Error() string {
	return fmt.Sprintf("%s is data-only and %s has no migrations at version %d and no intact schema backup at that version in %s",
		e.File, e.Database, e.Version, e.Dir)
}

// Options configures a run.
type Options struct {
	// Project supplies each database's migrations (for data-only backups).
	Project *compose.Project
	// Jobs is how many files are verified at once (default 1).
	Jobs int
	// LoadJobs is how many sessions each file loads on in its throwaway
	// (restore.Request.Jobs: 0 the cores, at least 2; 1 one psql stream).
	LoadJobs int
	// Transport is how files reach psql in the throwaway.
	Transport pgtools.Transport
	// Dir is the backup folder: schema backups for data-only files, and
	// the helper transport's pipes.
	Dir string
	// Image, if set, is the image every file is restored into instead of
	// the one its manifest names: an upgrade rehearsal (a backup of 15 on
	// postgres:17), compared with its manifest as any verification is.
	Image string
	// Amcheck, after an equal compare, checks the restored database's
	// physical integrity with pg_amcheck --heapallindexed (every btree
	// index against its table: what a row compare cannot see, such as an
	// index built under another collation); corruption is a difference.
	Amcheck bool
	// Keys open encrypted backups (nil: an encrypted one is not verified).
	Keys *encryption.Keys
	// Record writes each verification's outcome into the verification log
	// beside its file (package verifylog), for check and list.
	Record bool
	// Started, if set, is told when a file's verification starts.
	Started func(file string)
	// Progress and Phase, if set, follow the restore of each file into
	// its throwaway (see restore.Request).
	Progress func(file string, read, total int64)
	Phase    func(file string, ph restore.Phase)
	// Locate, if set, finds the backups that are in a repository: the
	// object a file names (its URL), or nil for a file in a folder. Such a
	// backup is streamed from the repository, never copied whole.
	Locate func(ctx context.Context, file string) (restore.Object, error)
}

// Files verifies each file, opts.Jobs at a time; results come in the
// order of files. It returns no error: each result says whether its file
// was equal, differed or could not be verified (Result.Error), and Code
// turns the results into the command's outcome.
//
// A throwaway serves several files in turn: each is restored into a
// server put back as it started (see pool), so only the first file of
// each image and database pays for a container and its initdb.
func Files(ctx context.Context, e Throwaways, files []string, opts Options) []Result {
	results := make([]Result, len(files))
	p := throwaways(e, opts.Jobs)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, opts.Jobs))
	for i, f := range files {
		g.Go(func() error {
			if opts.Started != nil {
				opts.Started(f)
			}
			results[i] = one(gctx, p, f, opts)
			// A repository backup is recorded in the backup folder's log
			// (record).
			if opts.Record && gctx.Err() == nil {
				record(&results[i], opts.Dir)
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := p.close(ctx); err != nil && len(results) > 0 {
		last := &results[len(results)-1]
		last.Warnings = append(last.Warnings, err.Error())
	}
	return results
}

// Code is the outcome of results as an error: nil when every file is
// equal, an error naming the files that could not be verified, else one of
// the kind fault.Differs naming those that differ; ctx's error wins
// (Ctrl-C). cmd/aidb makes them exit 0, 1 and 3.
func Code(ctx context.Context, results []Result) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var failed, differ []string
	refused := 0
	for _, r := range results {
		switch {
		case r.Error != "":
			failed = append(failed, r.File)
			// A refusal of what was asked (a key missing or wrong, a backup
			// of a newer major than the image's): bad input, nothing ran.
			// A damaged file is not: it could not be verified (exit 1).
			var ke *encryption.KeyError
			var me *restore.NewerMajorError
			if errors.As(r.Err, &ke) || errors.As(r.Err, &me) {
				refused++
			}
		case !r.OK:
			differ = append(differ, r.File)
		}
	}
	if len(failed) > 0 {
		err := fmt.Errorf("could not verify %d of %d backup(s): %v", len(failed), len(results), failed)
		if refused == len(failed) {
			return fault.BadInput(err)
		}
		return err
	}
	if len(differ) > 0 {
		return fault.New(fault.Differs, fmt.Errorf("%d of %d backup(s) differ from their manifests: %v", len(differ), len(results), differ))
	}
	return nil
}

// one verifies one file in a throwaway container of its manifest's image,
// taken from p and given back (to serve the next file, or removed) before
// it returns. A difference goes into the result's Differences, any other
// failure into its Error.
func one(ctx context.Context, p *pool[*pgtools.Throwaway], file string, opts Options) (res Result) {
	start := time.Now()
	res = Result{File: file, Differences: []string{}, RolesCreated: []string{}}
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	fail := func(err error) Result {
		var de *restore.DifferenceError
		if errors.As(err, &de) {
			res.Differences = de.Differences
			return res
		}
		var mm *manifest.MismatchError
		if errors.As(err, &mm) {
			res.Differences = []string{mm.Error()}
			return res
		}
		res.Error, res.Err = err.Error(), err
		return res
	}

	sub, err := readSubject(ctx, file, opts, &res)
	if err != nil {
		return fail(err)
	}
	m, db, image := sub.m, sub.db, sub.image
	key := poolKey{image, m.Database, superuser(m, db)}
	t, reused, err := p.take(ctx, key)
	if err != nil {
		return fail(fmt.Errorf("start a throwaway container of %s: %w", image, err))
	}
	res.ReusedThrowaway = reused
	defer func() {
		var outcome error
		if res.Error != "" {
			outcome = errDone
		}
		if err := p.give(ctx, key, t, outcome); err != nil && res.Error == "" {
			res.Error, res.Err = err.Error(), err
		}
	}()
	target := t.DB
	target.Name = m.Database // the file's database, as the restore checks it

	r, err := load(ctx, t, target, file, sub, opts)
	if err != nil {
		return fail(err)
	}
	res.OK, res.Tables, res.Rows = r.Verified, r.Tables, r.Rows
	if r.RolesCreated != nil {
		res.RolesCreated = r.RolesCreated
	}
	if opts.Amcheck && res.OK {
		a, err := t.Amcheck(ctx, target.DBName)
		if err != nil {
			return fail(err)
		}
		res.Amcheck = &a
		if len(a.Corruption) > 0 {
			res.OK = false
			for _, c := range a.Corruption {
				res.Differences = append(res.Differences, "amcheck: "+c)
			}
		}
	}
	return res
}

// subject is the file one verifies: its manifest, where it is, the
// database it is of and the image to restore it in.
type subject struct {
	obj   restore.Object // nil for a file in the folder
	m     manifest.Manifest
	db    compose.Database
	image string
}

// readSubject reads what one needs of file before it starts a throwaway: its
// manifest (unsealed), checked as far as it can be without restoring it,
// and the keys that open it. res gets the file's database, kind, sha256
// and image.
func readSubject(ctx context.Context, file string, opts Options, res *Result) (subject, error) {
	var obj restore.Object
	if opts.Locate != nil {
		o, err := opts.Locate(ctx, file)
		if err != nil {
			return subject{}, err
		}
		obj, res.remote = o, o != nil
	}
	var m manifest.Manifest
	var err error
	if obj != nil {
		m = obj.Manifest()
	} else if m, err = manifest.Read(file); err != nil {
		if errors.Is(err, manifest.ErrMissing) {
			return subject{}, &NoManifestError{File: file}
		}
		return subject{}, err
	}
	image := m.Image
	if opts.Image != "" {
		image = opts.Image
	}
	res.Database, res.Kind, res.SHA256, res.Image = m.Database, m.Kind, m.SHA256, image
	// A schema part that does not match its sha256 is a damaged backup,
	// found before a throwaway is started for it.
	if err := manifest.CheckSchema(file, m); err != nil {
		return subject{}, err
	}
	db := compose.Database{Name: m.Database}
	if opts.Project != nil {
		if d, ok := opts.Project.Database(m.Database); ok {
			db = d
		}
	}

	// An encrypted file its keys cannot open is refused before a
	// throwaway container starts.
	checkKeys := func() error { return restore.CheckKeys(file, &m, opts.Keys) }
	if obj != nil {
		checkKeys = func() error { return restore.CheckObjectKeys(ctx, obj, opts.Keys) }
	}
	if err := checkKeys(); err != nil {
		return subject{}, err
	}
	if m.Sealed != nil {
		// The schema part and role passwords are sealed with the file.
		if opts.Keys == nil {
			return subject{}, &encryption.KeyError{File: file}
		}
		if err := m.Unseal(file, opts.Keys.OpenText); err != nil {
			return subject{}, err
		}
	}
	return subject{obj: obj, m: m, db: db, image: image}, nil
}

// load restores file (of sub) into the throwaway t's database target,
// loading the schema of a data-only backup first.
func load(ctx context.Context, t *pgtools.Throwaway, target compose.Database, file string, sub subject, opts Options) (restore.Result, error) {
	m, db, obj := sub.m, sub.db, sub.obj
	var err error
	usedSchemaBackup := false
	if m.Kind == backupfile.Data {
		if m.Schema != nil {
			err = loadSchemaPart(ctx, t, target, m, opts)
		} else {
			usedSchemaBackup, err = prepareSchema(ctx, t, db, m, opts)
		}
		if err != nil {
			return restore.Result{}, err
		}
	}
	plan, err := restore.Preflight(ctx, t, restore.Request{
		DB: target, File: file, DataOnly: m.Kind == backupfile.Data, Jobs: opts.LoadJobs,
		Transport: opts.Transport, WorkDir: opts.Dir, BackupDir: opts.Dir, Keys: opts.Keys, Object: obj,
		// A schema backup made before schema backups carried the
		// migration bookkeeping rows leaves the version at 0.
		IgnoreMigrationVersion: m.Kind == backupfile.Data && usedSchemaBackup,
	})
	if opts.Progress != nil {
		plan.Progress = func(read, total int64) { opts.Progress(file, read, total) }
	}
	if opts.Phase != nil {
		plan.Phase = func(ph restore.Phase) { opts.Phase(file, ph) }
	}
	if err != nil {
		return restore.Result{}, err
	}
	if m.Kind == backupfile.Data {
		return restore.DataOnly(ctx, t, plan)
	}
	return restore.Full(ctx, t, plan)
}

// record writes res into the verification log of its file's folder; a
// file without a manifest has nothing to be verified against and is not
// recorded. A pointer (<db>-latest) is recorded as the file it names.
// A repository backup (a URL) is recorded in the backup folder dir, by its
// name and sha256: the same bytes under the same name are the same backup
// wherever they are.
func record(res *Result, dir string) {
	var ke *encryption.KeyError
	if res.SHA256 == "" || errors.As(res.Err, &ke) {
		return // nothing to verify against, or nothing was tried
	}
	path, err := filepath.EvalSymlinks(res.File)
	if err != nil {
		path = res.File
	}
	if res.remote {
		path = filepath.Join(dir, res.File[strings.LastIndex(res.File, "/")+1:])
	}
	rec := verifylog.Record{File: filepath.Base(path), SHA256: res.SHA256, Database: res.Database, Kind: res.Kind,
		At: time.Now(), Image: res.Image, Outcome: verifylog.Equal}
	switch {
	case res.Error != "":
		rec.Outcome, rec.Detail = verifylog.Failed, res.Error
	case !res.OK:
		rec.Outcome, rec.Detail = verifylog.Differs, strings.Join(res.Differences, "; ")
	}
	if err := verifylog.Append(filepath.Dir(path), rec); err != nil {
		res.Warnings = append(res.Warnings, err.Error())
	}
}

// superuser is the name the throwaway's superuser gets: the source
// server's, as the manifest records it, or for a manifest from before it
// did, the database's configured POSTGRES_USER (empty when the project
// does not know the database: the throwaway's own default).
func superuser(m manifest.Manifest, db compose.Database) string {
	if m.Superuser != "" {
		return m.Superuser
	}
	return db.User
}

// loadSchemaPart builds, in the throwaway's database (target), the schema
// a data-only backup carries (manifest.Schema, checked against its sha256
// before), in one transaction, and compares it with the manifest's schema
// hash: a difference is a restore.DifferenceError (exit 3). The part holds
// the migration bookkeeping rows, so the throwaway is at the backup's
// migration version, as the data-only restore's check expects.
func loadSchemaPart(ctx context.Context, t *pgtools.Throwaway, target compose.Database, m manifest.Manifest, opts Options) error {
	// The roles the schema names (owners, grants, policies) must exist
	// before it loads: the missing ones are created first, in the same
	// transaction.
	script := io.MultiReader(strings.NewReader("BEGIN;\n"), strings.NewReader(roles.SQL(m.Roles)), strings.NewReader(m.Schema.SQL), strings.NewReader("\nCOMMIT;\n"))
	if err := t.Psql(ctx, target, target.DBName, opts.Transport, opts.Dir, script); err != nil {
		return fmt.Errorf("load the schema %s carries into the throwaway: %w", m.File, err)
	}
	conn, err := pgx.Connect(ctx, t.ConnString(target))
	if err != nil {
		return fmt.Errorf("connect to the throwaway: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if err := fingerprint.Prepare(ctx, conn); err != nil {
		return err
	}
	got, err := fingerprint.SchemaHash(ctx, conn, m.SchemaForm())
	if err != nil {
		return err
	}
	if got != m.SchemaHash {
		return &restore.DifferenceError{Database: m.Database, Differences: []string{
			fmt.Sprintf("schema: the schema %s carries loads with hash %s, the backup has %s", m.File, got, m.SchemaHash)}}
	}
	return nil
}

// prepareSchema builds the schema a data-only backup made before they
// carried their schema needs in the throwaway: the database's migrations up to the manifest's version, or
// else the newest schema backup of the database at that version.
// It says whether it used a schema backup.
func prepareSchema(ctx context.Context, t *pgtools.Throwaway, db compose.Database, m manifest.Manifest, opts Options) (bool, error) {
	src, ok, err := migrations.SourceFor(db.Name, db.Migrations)
	if err != nil {
		return false, err
	}
	if ok && m.MigrationVersion > 0 {
		r, err := migrations.Open(t.ConnString(t.DB), src, migrations.Options{})
		if err != nil {
			return false, err
		}
		defer func() { _ = r.Close() }()
		if _, err := r.UpTo(ctx, m.MigrationVersion); err != nil {
			return false, fmt.Errorf("migrate the throwaway to version %d for %s: %w", m.MigrationVersion, m.File, err)
		}
		return false, nil
	}
	schema, err := schemaBackup(ctx, opts.Dir, m)
	if err != nil {
		return false, err
	}
	target := t.DB
	target.Name = m.Database
	plan, err := restore.Preflight(ctx, t, restore.Request{DB: target, File: schema, Jobs: opts.LoadJobs, Transport: opts.Transport, WorkDir: opts.Dir, BackupDir: opts.Dir, Keys: opts.Keys})
	if err != nil {
		return true, err
	}
	_, err = restore.Full(ctx, t, plan)
	return true, err
}

// schemaBackup finds the newest schema backup of the manifest's database
// at its migration version.
func schemaBackup(ctx context.Context, dir string, m manifest.Manifest) (string, error) {
	path, _, err := catalog.New(catalog.Folder{Dir: dir}).Newest(ctx, m.Database, backupfile.Schema, func(sm manifest.Manifest) bool {
		return sm.MigrationVersion == m.MigrationVersion
	})
	if err != nil || path != "" {
		return path, err
	}
	return "", &NoSchemaError{File: m.File, Database: m.Database, Version: m.MigrationVersion, Dir: dir}
}
