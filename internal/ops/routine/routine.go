// Package routine is aidb's backup routine, written once: a full backup of
// each database (each on its own, so one that is down does not stop the
// others), its verification, <db>-latest moved only to a file that proved
// restorable, a push of what the repository lacks, then the prune of the
// folder and the repository. serve runs it on a schedule (package
// scheduler); backup --verify and prune use its rules (PointLatest,
// Prune).
package routine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/archive/verifylog"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/ops/scheduler"
	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/store/catalog"
	"github.com/aidb/aidb/internal/store/freshness"
	"github.com/aidb/aidb/internal/store/repository"
	"github.com/aidb/aidb/internal/store/retention"
)

// Session is what one run works on: the project's databases with the
// engine connected and the run's locks held; Close gives them up.
type Session interface {
	Databases() []compose.Database
	Dumper() backup.Dumper
	Verifier() verify.Throwaways
	Streams() pitr.Streams
	Close() error
}

// Config is what each run does.
type Config struct {
	Project *compose.Project
	// Open connects and takes the locks of a run.
	Open func(ctx context.Context) (Session, error)
	// Compression of the new backups.
	Compression backupfile.Compression
	// Verify each new backup (and move <db>-latest only to a verified one).
	Verify bool
	// Policy prunes after each run; nil: no prune.
	Policy     *retention.Policy
	Recipients *encryption.Recipients
	Keys       *encryption.Keys
	// ToolVersion goes into each manifest.
	ToolVersion string
	// Explain, if set, adds what to do next to a failed verification's
	// message (the CLI's advice).
	Explain func(msg string, err error) string
}

// report collects a run's outcomes from several goroutines.
type report struct {
	mu  sync.Mutex
	rep scheduler.Report
}

func (r *report) add(o scheduler.Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o.At = time.Now()
	r.rep.Outcomes = append(r.rep.Outcomes, o)
}

// Run is one run of the routine. Every step's outcome is in the report; a
// failed step does not stop the others that do not depend on it.
func Run(ctx context.Context, cfg Config) scheduler.Report {
	var r report
	s, err := cfg.Open(ctx)
	if err != nil {
		for _, db := range cfg.Project.DatabaseNames() {
			r.add(scheduler.Outcome{Database: db, Step: "backup", Err: err})
		}
		return r.rep
	}
	defer func() { _ = s.Close() }()
	var wg sync.WaitGroup
	for _, db := range s.Databases() {
		wg.Go(func() { backupOne(ctx, cfg, s, db, r.add) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return r.rep
	}
	repo, repoErr := repository.ForProject(ctx, cfg.Project)
	for _, db := range s.Databases() {
		pitrOne(ctx, cfg, s, db, repo, r.add)
	}
	// Push first: the repository gets the new backups before any prune,
	// there or here, removes older ones. Push and prune read the folder
	// only: an error of one is its own outcome, and the other still runs.
	local := catalog.Folder{Dir: cfg.Project.BackupDir}
	stores := []catalog.Store{local}
	switch {
	case repoErr != nil:
		r.add(scheduler.Outcome{Database: "*", Step: "push", Err: repoErr})
	case repo != nil:
		res, err := repo.Push(ctx, local, nil)
		r.add(scheduler.Outcome{Database: "*", Step: "push", Err: err, File: fmt.Sprintf("%s: %d uploaded", repo.Location(), len(res.Uploaded))})
		stores = append(stores, repo)
		shipped, err := ShipStreams(ctx, s.Databases(), cfg.Project.BackupDir, repo, sealer(cfg))
		if len(shipped) > 0 || err != nil {
			r.add(scheduler.Outcome{Database: "*", Step: "wal-push", Err: err, File: fmt.Sprintf("%s: %s", repo.Location(), countShipped(shipped))})
		}
	}
	if cfg.Policy != nil {
		for _, st := range stores {
			removed, err := Prune(ctx, []catalog.Store{st}, *cfg.Policy)
			if err != nil {
				r.add(scheduler.Outcome{Database: "*", Step: "prune", File: st.Location(), Err: err})
				continue
			}
			r.add(scheduler.Outcome{Database: "*", Step: "prune", File: fmt.Sprintf("%s: %d file(s) removed", st.Location(), removed)})
		}
	}
	return r.rep
}

// sealer is what shipped streams are sealed with (nil: plain).
func sealer(cfg Config) pitr.Sealer {
	if cfg.Recipients == nil {
		return nil
	}
	return cfg.Recipients
}

// countShipped says what a ship sent.
func countShipped(s []pitr.Shipped) string {
	segs, bases := 0, 0
	for _, x := range s {
		segs += len(x.Segments)
		bases += len(x.Bases)
	}
	return fmt.Sprintf("%d WAL segment(s) and %d base backup(s) shipped", segs, bases)
}

// pitrOne takes a base backup of a database with point-in-time recovery
// on (a WAL stream), so a recovery replays at most a run's worth of WAL;
// then, with a window configured (aidb.yaml retention.pitr_keep_window),
// it removes the base backups and WAL that window does not need
// (pitr.Prune). A database without a stream has neither step.
func pitrOne(ctx context.Context, cfg Config, s Session, db compose.Database, repo *repository.Repository, add func(scheduler.Outcome)) {
	st, err := s.Streams().WALStream(ctx, db)
	if err != nil {
		add(scheduler.Outcome{Database: db.Name, Step: "base-backup", Err: err})
		return
	}
	if st == nil {
		return
	}
	start := time.Now()
	b, err := pitr.TakeBaseBackup(ctx, s.Streams(), db, cfg.Project.BackupDir)
	add(scheduler.Outcome{Database: db.Name, Step: "base-backup", File: filepath.Join(pitr.FoldersOf(cfg.Project.BackupDir, db).Base, b.Name),
		Seconds: time.Since(start).Seconds(), Err: err})
	if err != nil || cfg.Project.PITRKeepWindow <= 0 {
		return
	}
	req := pitr.PruneRequest{DB: db, BackupDir: cfg.Project.BackupDir, Keep: cfg.Project.PITRKeepWindow, Yes: true}
	if repo != nil {
		req.Remote = repo
	}
	p, err := pitr.Prune(ctx, req)
	add(scheduler.Outcome{Database: db.Name, Step: "pitr-prune", Err: err,
		File: fmt.Sprintf("%d base backup(s) and %d WAL segment(s) removed (%d object(s) in the repository); recoverable: %s", len(p.RemovedBases), len(p.RemovedSegments), p.RemovedShipped, p.After)})
}

// backupOne backs one database up, verifies the file and, once it is
// verified, moves <db>-latest to it.
func backupOne(ctx context.Context, cfg Config, s Session, db compose.Database, add func(scheduler.Outcome)) {
	req := backup.Request{Databases: []compose.Database{db}, Kind: backupfile.Full, Compression: cfg.Compression,
		Dir: cfg.Project.BackupDir, ToolVersion: cfg.ToolVersion, HoldLatest: cfg.Verify, Recipients: cfg.Recipients}
	// With a repository, the file goes up as it is written; a failed
	// upload is this step's failure, and the push step tries it again.
	if err := UploadTo(ctx, cfg.Project, &req); err != nil {
		add(scheduler.Outcome{Database: db.Name, Step: "backup", Err: err})
		return
	}
	res, err := backup.Run(ctx, s.Dumper(), req)
	var upErr *backup.UploadError
	if err != nil && !errors.As(err, &upErr) {
		add(scheduler.Outcome{Database: db.Name, Step: "backup", Err: err})
		return
	}
	f := res.Files[0]
	add(scheduler.Outcome{Database: db.Name, Step: "backup", File: f.Path, Size: f.Size, Seconds: f.Seconds})
	if upErr != nil {
		// The local file is whole: it is still verified.
		add(scheduler.Outcome{Database: db.Name, Step: "upload", File: f.Path, Err: upErr})
	}
	if !cfg.Verify {
		return
	}
	v := verify.Files(ctx, s.Verifier(), []string{f.Path}, verify.Options{Project: cfg.Project, Jobs: 1, Transport: pgtools.TransportAuto,
		Dir: cfg.Project.BackupDir, Record: true, Keys: cfg.Keys})
	out := scheduler.Outcome{Database: db.Name, Step: "verify", File: f.Path, Err: verifyError(ctx, cfg, v[0])}
	add(out)
	for _, l := range PointLatest(ctx, cfg.Project.BackupDir, res.Files, v) {
		if l.Err != nil && out.Err == nil {
			add(scheduler.Outcome{Database: db.Name, Step: "verify", File: f.Path, Err: l.Err})
		}
	}
}

// verifyError is a verification's outcome as an error; nil when equal.
func verifyError(ctx context.Context, cfg Config, r verify.Result) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case r.Error != "":
		if cfg.Explain != nil {
			return errors.New(cfg.Explain(r.Error, r.Err))
		}
		return errors.New(r.Error)
	case !r.OK:
		return fmt.Errorf("differs from its manifest: %v", r.Differences)
	}
	return nil
}

// Latest is what became of one database's <db>-latest pointer after a
// backup's verification.
type Latest struct {
	Database string
	// Pointer is the pointer's name, File the new backup's path.
	Pointer, File string
	// Moved says the pointer now names File; otherwise Err says why not
	// (NotVerifiedError when the file did not prove restorable).
	Moved bool
	Err   error
}

// NotVerifiedError says a pointer stayed because its new file was not
// proven restorable.
type NotVerifiedError struct{ File string }

func (e *NotVerifiedError) Error() string {
	return filepath.Base(e.File) + " was not verified"
}

// PointLatest is the rule that <db>-latest, what users restore from, moves
// only to a full backup that verification found equal: of each full file
// of files, it moves the pointer where its result is equal (and the run
// was not interrupted), and says of the others why it stayed. It runs
// under context.WithoutCancel: after Ctrl-C a proven file's pointer still
// moves, an unproven one's stays.
func PointLatest(ctx context.Context, dir string, files []backup.File, results []verify.Result) []Latest {
	ok := map[string]bool{}
	for _, r := range results {
		ok[r.File] = r.OK && r.Error == "" && ctx.Err() == nil
	}
	var out []Latest
	for _, f := range files {
		if f.Kind != backupfile.Full {
			continue
		}
		l := Latest{Database: f.Database, Pointer: backupfile.LatestName(f.Database, f.Codec), File: f.Path}
		if !ok[f.Path] {
			l.Err = &NotVerifiedError{File: f.Path}
		} else if _, err := backup.PointLatest(context.WithoutCancel(ctx), dir, f.Database, f.Codec, f.Path); err != nil {
			l.Err = fmt.Errorf("point %s at %s: %w", l.Pointer, filepath.Base(f.Path), err)
		} else {
			l.Moved = true
		}
		out = append(out, l)
	}
	return out
}

// Prune plans the prune of every store before it removes anything (so a
// store that cannot be read changes nothing anywhere), then prunes each;
// it returns how many backups it removed.
func Prune(ctx context.Context, stores []catalog.Store, p retention.Policy) (int, error) {
	plans, err := Plan(ctx, stores, p)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pl := range plans {
		if err := pl.Catalog.Prune(ctx, pl.Plan); err != nil {
			return n, err
		}
		n += len(pl.Plan.Remove)
	}
	return n, nil
}

// Planned is one store's prune plan.
type Planned struct {
	Catalog *catalog.Catalog
	Plan    catalog.PrunePlan
}

// Plan makes the prune plan of each store, in order; nothing is removed.
func Plan(ctx context.Context, stores []catalog.Store, p retention.Policy) ([]Planned, error) {
	now := time.Now()
	out := make([]Planned, 0, len(stores))
	for _, st := range stores {
		c := catalog.New(st)
		plan, err := c.PlanPrune(ctx, p, now)
		if err != nil {
			return nil, err
		}
		out = append(out, Planned{Catalog: c, Plan: plan})
	}
	return out, nil
}

// Stores are the project's stores of backups: the folder and, when one is
// set, the repository (opened; an error when it cannot be).
func Stores(ctx context.Context, p *compose.Project) ([]catalog.Store, error) {
	stores := []catalog.Store{catalog.Folder{Dir: p.BackupDir}}
	repo, err := repository.ForProject(ctx, p)
	if err != nil {
		return nil, err
	}
	if repo != nil {
		stores = append(stores, repo)
	}
	return stores, nil
}

// UploadTo makes req upload each file to the project's repository as it
// is written, when one is set (not a safety backup's); NoLocal without
// one is bad input.
func UploadTo(ctx context.Context, p *compose.Project, req *backup.Request) error {
	if req.Safety != nil {
		// A safety backup undoes a command on this machine: it is taken
		// even when the repository does not answer (push uploads it).
		return nil
	}
	repo, err := repository.ForProject(ctx, p)
	if err != nil {
		return err
	}
	if repo == nil {
		if req.NoLocal {
			return fault.BadInput(fmt.Errorf("--no-local: no repository to upload to: set AIDB_REPOSITORY=s3://BUCKET[/PREFIX] (or repository: in %s)", p.ConfigFile))
		}
		return nil
	}
	req.Upload = func(ctx context.Context, name string) backup.Upload { return repo.Upload(ctx, name) }
	req.UploadSet = repo.PutSmall
	return nil
}

// ConfiguredPolicy is aidb.yaml's retention as a policy (its keep rules
// and safety_keep_within); ok is false when it sets no keep rule.
func ConfiguredPolicy(p *compose.Project) (policy retention.Policy, ok bool) {
	k := p.Keep
	return retention.Policy{KeepLast: k.Last, KeepHourly: k.Hourly, KeepDaily: k.Daily, KeepWeekly: k.Weekly,
		KeepMonthly: k.Monthly, KeepYearly: k.Yearly, SafetyKeepWithin: p.SafetyKeepWithin}, k.Any()
}

// SeedMetrics sets each database's last backup and verification from the
// folder, so a restarted serve does not report them as never.
func SeedMetrics(ctx context.Context, m *scheduler.Metrics, p *compose.Project) {
	c := catalog.New(catalog.Folder{Dir: p.BackupDir})
	log, _ := c.Verifications(ctx)
	for _, db := range p.DatabaseNames() {
		var last, verified time.Time
		if path, man, err := c.Newest(ctx, db, backupfile.Full, func(m manifest.Manifest) bool { return m.Safety == nil }); err == nil && path != "" {
			last = man.Created
		}
		for _, r := range log {
			if r.Database == db && r.Kind == backupfile.Full && r.Outcome == verifylog.Equal && r.At.After(verified) {
				verified = r.At
			}
		}
		m.Seed(db, last, verified)
	}
}

// Listing is every backup of a project's stores: the folder's, then the
// repository's.
type Listing struct {
	Backups []catalog.Listed
	// Repository is the repository's location when it was listed.
	Repository string
	// RepositoryErr says why a repository that is set was not listed;
	// the folder is listed whatever the repository does.
	RepositoryErr error
	// PITR is each database's base backups and recoverable window.
	PITR []pitr.Listed
}

// List lists the backups of the folder and, when one is set, of the
// repository, each checked against its manifest (catalog.List).
func List(ctx context.Context, p *compose.Project) (Listing, error) {
	items, err := catalog.New(catalog.Folder{Dir: p.BackupDir}).List(ctx)
	if err != nil {
		return Listing{}, err
	}
	l := Listing{Backups: items}
	if l.PITR, err = pitr.ListFolder(p.BackupDir, p.Databases); err != nil {
		return l, err
	}
	repo, err := repository.ForProject(ctx, p)
	if err == nil && repo != nil {
		var remote []catalog.Listed
		if remote, err = catalog.New(repo).List(ctx); err == nil {
			l.Backups = append(l.Backups, remote...)
			l.Repository = repo.Location()
		}
	}
	if err != nil {
		l.RepositoryErr = fmt.Errorf("the repository %s was not listed: %w", p.Repository, err)
	}
	return l, nil
}

// Check says whether each named database has a fresh (and, as pol asks,
// verified) backup in the folder or, when one is set, the repository: the
// newest of either counts (freshness.Check).
func Check(ctx context.Context, p *compose.Project, names []string, pol freshness.Policy, now time.Time) ([]freshness.Status, error) {
	stores, err := Stores(ctx, p)
	if err != nil {
		return nil, err
	}
	var backups freshness.Catalog = catalog.New(stores[0])
	for _, st := range stores[1:] {
		backups = freshness.Union(backups, catalog.New(st))
	}
	return freshness.Check(ctx, backups, names, pol, now)
}

// AllBackups are the backups verify --all proves: the folder's files and,
// with a repository, the URLs of its backups, each one with its manifest,
// except those the folder holds under the same name with the same sha256
// (the same bytes, verified from the folder). An object without its
// manifest is an upload cut short, not a backup.
func AllBackups(ctx context.Context, p *compose.Project) ([]string, error) {
	local := catalog.New(catalog.Folder{Dir: p.BackupDir})
	files, err := local.Files(ctx)
	if err != nil {
		return nil, err
	}
	repo, err := repository.ForProject(ctx, p)
	if repo == nil || err != nil {
		return files, err
	}
	here := map[string]string{}
	described, err := local.Describe(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range described {
		if d.Err == nil {
			here[d.Name] = d.Manifest.SHA256
		}
	}
	theirs, err := catalog.New(repo).Describe(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range theirs {
		switch {
		case errors.Is(d.Err, manifest.ErrMissing):
			continue
		case d.Err == nil && here[d.Name] == d.Manifest.SHA256:
			continue
		}
		files = append(files, d.Path)
	}
	return files, nil
}
