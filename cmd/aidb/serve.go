package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/archive/verifylog"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/ops/scheduler"
	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/internal/store/catalog"
	"github.com/aidb/aidb/internal/store/repository"
	"github.com/aidb/aidb/internal/store/retention"
)

// serveOptions are serve's flags.
type serveOptions struct {
	schedule, metricsAddr, notifyURL, pingURL string
	compress                                  string
	noVerify                                  bool
	keepLast                                  int
	runNow                                    bool
}

func (a *app) serveCommand() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --schedule SPEC",
		Short: "Back up, verify and prune on a schedule, with metrics and failure notices, until stopped",
		Long: `Run the backup routine on a schedule until SIGTERM or Ctrl-C: a full backup of
each database (each on its own, so one that is down does not stop the others),
its verification (unless --no-verify; <db>-latest moves only to a verified
file), then a prune (by --keep-last, else aidb.yaml's retention rules; none given,
no prune), in the folder and the repository, and, when a repository is set
(AIDB_REPOSITORY), a push of what it lacks.
One run at a time: a run due while the one before still runs is skipped and
counted. SPEC is five cron fields ("30 2 * * *") or a descriptor ("@daily",
"@every 6h"), in the local time zone.

--metrics-addr serves Prometheus metrics on /metrics and /healthz.
--notify-url gets a JSON POST ({database, step, error, file, at}) for each
failed step; --ping-url a GET after each run whose steps all succeeded (for
dead-man switches). On SIGTERM the running step is undone as on Ctrl-C, no
helper or throwaway container is left, and serve exits 143.`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.serve(cmd.Context(), o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.schedule, "schedule", "", `when to run: cron fields ("30 2 * * *") or @daily, @hourly, @every 6h`)
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics and /healthz on this address (e.g. 127.0.0.1:9187)")
	f.StringVar(&o.notifyURL, "notify-url", "", "POST a JSON notice here for each failed step")
	f.StringVar(&o.pingURL, "ping-url", "", "GET this URL after each run that succeeded (a dead-man switch)")
	f.StringVar(&o.compress, "compress", "none", "none, gzip or zstd")
	f.BoolVar(&o.noVerify, "no-verify", false, "do not verify each new backup")
	f.IntVar(&o.keepLast, "keep-last", 0, "after each run, prune to the newest N intact backups of each database and kind (0: aidb.yaml's retention rules, or no prune)")
	f.BoolVar(&o.runNow, "run-now", false, "run once at start too, then on the schedule")
	return cmd
}

func (a *app) serve(ctx context.Context, o serveOptions) error {
	if o.schedule == "" {
		return fault.BadInput(errors.New(`--schedule is required: e.g. --schedule "30 2 * * *" (02:30 daily) or --schedule @every 6h`))
	}
	comp, err := backupfile.ParseCompression(o.compress)
	if err != nil {
		return fault.BadInput(err)
	}
	if o.keepLast < 0 {
		return fault.BadInput(fmt.Errorf("--keep-last %d: give 1 or more, or 0 for aidb.yaml's retention rules (none: no prune)", o.keepLast))
	}
	p, err := a.loadProject(ctx)
	if err != nil {
		return err
	}
	// Keys are read once, here: a broken identity file is refused now,
	// not found by each run, which would then take no backup.
	recipients, keys, err := sealedKeys(p, !o.noVerify)
	if err != nil {
		return err
	}
	// The prune: --keep-last, else aidb.yaml's retention rules, else none.
	var policy *retention.Policy
	switch {
	case o.keepLast > 0:
		policy = &retention.Policy{KeepLast: o.keepLast, SafetyKeepWithin: p.SafetyKeepWithin}
	case p.Keep.Any():
		policy = &retention.Policy{KeepLast: p.Keep.Last, KeepHourly: p.Keep.Hourly, KeepDaily: p.Keep.Daily,
			KeepWeekly: p.Keep.Weekly, KeepMonthly: p.Keep.Monthly, KeepYearly: p.Keep.Yearly, SafetyKeepWithin: p.SafetyKeepWithin}
	}
	if policy != nil {
		if err := policy.Validate(); err != nil {
			return fault.BadInput(fmt.Errorf("retention: %w", err))
		}
	}
	s, err := scheduler.New(scheduler.Config{
		Spec: o.schedule, NotifyURL: o.notifyURL, PingURL: o.pingURL,
		Run: func(ctx context.Context) scheduler.Report {
			return a.routine(ctx, routineOptions{comp: comp, verify: !o.noVerify, policy: policy, recipients: recipients, keys: keys})
		},
		Events: a.sayEvent,
	})
	if err != nil {
		return err
	}
	a.seedMetrics(ctx, s.Metrics(), p)
	if o.metricsAddr != "" {
		l, err := net.Listen("tcp", o.metricsAddr)
		if err != nil {
			return fault.BadInput(fmt.Errorf("--metrics-addr %s: %v", o.metricsAddr, err))
		}
		srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		a.say("metrics on http://%s/metrics", l.Addr())
	}
	a.say("serving %s: backups of %s into %s on %q", p.Name, strings.Join(p.DatabaseNames(), ", "), p.BackupDir, o.schedule)
	if o.runNow {
		s.Tick(ctx)
	}
	err = s.Serve(ctx)
	a.say("stopped")
	return err
}

// sayEvent shows what the scheduler does, one line each.
func (a *app) sayEvent(e scheduler.Event) {
	switch e.Kind {
	case scheduler.Waiting:
		a.say("next run at %s", e.Next.Format(time.RFC3339))
	case scheduler.Started:
		a.say("run started")
	case scheduler.Skipped:
		a.say("run skipped: the one before still runs")
	case scheduler.Finished:
		for _, o := range e.Report.Outcomes {
			if o.Err != nil {
				a.say("%s: %s failed: %v", o.Database, o.Step, o.Err)
			} else if o.File != "" {
				a.say("%s: %s ok: %s", o.Database, o.Step, o.File)
			} else {
				a.say("%s: %s ok", o.Database, o.Step)
			}
		}
		if e.Report.Failed() {
			a.say("run failed")
		} else {
			a.say("run ok")
		}
	case scheduler.NotifyFailed, scheduler.PingFailed:
		a.say("warning: %v", e.Err)
	}
}

// routine is one scheduled run: each database backed up on its own (one
// that is down does not stop the others), each new file verified and
// <db>-latest moved to it once verified, then the prune.
// routineOptions are what each run does.
type routineOptions struct {
	comp       backupfile.Compression
	verify     bool
	policy     *retention.Policy
	recipients *encryption.Recipients
	keys       *encryption.Keys
}

func (a *app) routine(ctx context.Context, o routineOptions) scheduler.Report {
	var rep scheduler.Report
	var mu sync.Mutex
	add := func(o scheduler.Outcome) {
		mu.Lock()
		defer mu.Unlock()
		o.At = time.Now()
		rep.Outcomes = append(rep.Outcomes, o)
	}
	s, err := a.openLocked(ctx, nil, "serve", true)
	if err != nil {
		p, perr := a.loadProject(ctx)
		names := []string{"*"}
		if perr == nil {
			names = p.DatabaseNames()
		}
		for _, db := range names {
			add(scheduler.Outcome{Database: db, Step: "backup", Err: err})
		}
		return rep
	}
	defer s.Close()
	var wg sync.WaitGroup
	for _, db := range s.dbs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.backupOne(ctx, s, db, o, add)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return rep
	}
	// Push and prune read the folder only: an error of one is its own
	// outcome, and the other still runs.
	var repo *repository.Repository
	if s.project.Repository != "" {
		if repo, err = openRepository(ctx, s.project); err != nil {
			add(scheduler.Outcome{Database: "*", Step: "push", Err: err})
		}
	}
	// Push first: the repository gets the new backups before any prune,
	// there or here, removes older ones.
	if repo != nil {
		res, err := repo.Push(ctx, catalog.Folder{Dir: s.project.BackupDir}, nil)
		add(scheduler.Outcome{Database: "*", Step: "push", Err: err, File: fmt.Sprintf("%s: %d uploaded", repo.Location(), len(res.Uploaded))})
	}
	if o.policy != nil {
		stores := []catalog.Store{catalog.Folder{Dir: s.project.BackupDir}}
		if repo != nil {
			stores = append(stores, repo)
		}
		for _, st := range stores {
			c := catalog.New(st)
			plan, err := c.PlanPrune(ctx, *o.policy, time.Now())
			if err == nil {
				err = c.Prune(ctx, plan)
			}
			if err != nil {
				add(scheduler.Outcome{Database: "*", Step: "prune", File: st.Location(), Err: err})
			} else {
				add(scheduler.Outcome{Database: "*", Step: "prune", File: fmt.Sprintf("%s: %d file(s) removed", st.Location(), len(plan.Remove))})
			}
		}
	}
	return rep
}

// backupOne backs one database up and verifies the file.
func (a *app) backupOne(ctx context.Context, s *session, db compose.Database, o routineOptions, add func(scheduler.Outcome)) {
	comp, verifyFiles, recipients, keys := o.comp, o.verify, o.recipients, o.keys
	req := backup.Request{Databases: []compose.Database{db}, Kind: backupfile.Full, Compression: comp,
		Dir: s.project.BackupDir, ToolVersion: toolVersion(), HoldLatest: verifyFiles, Recipients: recipients}
	// With a repository, the file goes up as it is written; a failed
	// upload is this step's failure, and the push step tries it again.
	if err := withUpload(ctx, s.project, &req); err != nil {
		add(scheduler.Outcome{Database: db.Name, Step: "backup", Err: err})
		return
	}
	res, err := backup.Run(ctx, s.eng, req)
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
	if !verifyFiles {
		return
	}
	r := verify.Files(ctx, s.tools, []string{f.Path}, verify.Options{Project: s.project, Jobs: 1, Transport: pgtools.TransportAuto,
		Dir: s.project.BackupDir, Record: true, Keys: keys})[0]
	switch {
	case ctx.Err() != nil:
		add(scheduler.Outcome{Database: db.Name, Step: "verify", File: f.Path, Err: ctx.Err()})
	case r.Error != "":
		add(scheduler.Outcome{Database: db.Name, Step: "verify", File: f.Path, Err: errors.New(withAdvice(r.Error, r.Err))})
	case !r.OK:
		add(scheduler.Outcome{Database: db.Name, Step: "verify", File: f.Path, Err: fmt.Errorf("differs from its manifest: %v", r.Differences)})
	default:
		add(scheduler.Outcome{Database: db.Name, Step: "verify", File: f.Path})
		if _, err := backup.PointLatest(context.WithoutCancel(ctx), s.project.BackupDir, db.Name, f.Codec, f.Path); err != nil {
			add(scheduler.Outcome{Database: db.Name, Step: "verify", File: f.Path, Err: fmt.Errorf("point %s at %s: %w", backupfile.LatestName(db.Name, f.Codec), filepath.Base(f.Path), err)})
		}
	}
}

// seedMetrics sets each database's last backup and verification from the
// folder, so a restarted serve does not report them as never.
func (a *app) seedMetrics(ctx context.Context, m *scheduler.Metrics, p *compose.Project) {
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
