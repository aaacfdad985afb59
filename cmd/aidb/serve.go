package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/internal/ops/routine"
	"github.com/aidb/aidb/internal/ops/scheduler"
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
		Long:  serveLong,
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return a.serve(cmd.Context(), o) },
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
	p, cfg, err := a.serveConfig(ctx, o)
	if err != nil {
		return err
	}
	s, err := scheduler.New(scheduler.Config{
		Spec: o.schedule, NotifyURL: o.notifyURL, PingURL: o.pingURL,
		Run:    func(ctx context.Context) scheduler.Report { return routine.Run(ctx, cfg) },
		Events: a.sayEvent,
	})
	if err != nil {
		return err
	}
	routine.SeedMetrics(ctx, s.Metrics(), p)
	if err := s.Metrics().Register(pitr.Collector{Statuses: a.pitrStatusesNow}); err != nil {
		return err
	}
	if o.metricsAddr != "" {
		stop, err := a.serveMetrics(ctx, o.metricsAddr, s.Handler())
		if err != nil {
			return err
		}
		defer stop()
	}
	a.say("serving %s: backups of %s into %s on %q", p.Name, strings.Join(p.DatabaseNames(), ", "), p.BackupDir, o.schedule)
	if p.Repository != "" {
		// Segments go off-site as they complete, beside the runs.
		defer routine.StartShipLoop(ctx, cfg, routine.DefaultShipEvery, a.sayShipped())()
	}
	if o.runNow {
		s.Tick(ctx)
	}
	err = s.Serve(ctx)
	a.say("stopped")
	return err
}

// serveConfig checks serve's flags and reads what each run needs once,
// before the first: a broken identity file or retention rule is refused
// now, not found by each run, which would then take no backup.
func (a *app) serveConfig(ctx context.Context, o serveOptions) (*compose.Project, routine.Config, error) {
	var cfg routine.Config
	if o.schedule == "" {
		return nil, cfg, fault.BadInput(errors.New(`--schedule is required: e.g. --schedule "30 2 * * *" (02:30 daily) or --schedule @every 6h`))
	}
	comp, err := backupfile.ParseCompression(o.compress)
	if err != nil {
		return nil, cfg, fault.BadInput(err)
	}
	if o.keepLast < 0 {
		return nil, cfg, fault.BadInput(fmt.Errorf("--keep-last %d: give 1 or more, or 0 for aidb.yaml's retention rules (none: no prune)", o.keepLast))
	}
	p, err := a.loadProject(ctx)
	if err != nil {
		return nil, cfg, err
	}
	recipients, keys, err := sealedKeys(p, !o.noVerify)
	if err != nil {
		return nil, cfg, err
	}
	// The prune: --keep-last, else aidb.yaml's retention rules, else none.
	policy, ok := routine.ConfiguredPolicy(p)
	if o.keepLast > 0 {
		policy, ok = retention.Policy{KeepLast: o.keepLast, SafetyKeepWithin: p.SafetyKeepWithin}, true
	}
	cfg = routine.Config{Project: p, Compression: comp, Verify: !o.noVerify, Recipients: recipients, Keys: keys,
		ToolVersion: toolVersion(), Explain: withAdvice,
		// Each run reads the project again, as a run started by hand would.
		Open: func(ctx context.Context) (routine.Session, error) { return a.openLocked(ctx, nil, "serve", true) }}
	if ok {
		if err := policy.Validate(); err != nil {
			return nil, cfg, fault.BadInput(fmt.Errorf("retention: %w", err))
		}
		cfg.Policy = &policy
	}
	return p, cfg, nil
}

// serveMetrics serves h on addr until the returned stop.
func (a *app) serveMetrics(ctx context.Context, addr string, h http.Handler) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("--metrics-addr %s: %w", addr, err))
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	a.say("metrics on http://%s/metrics", l.Addr())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// sayShipped says what the WAL shipping sent, and a failure once until
// it ships again (the folder keeps what waits).
func (a *app) sayShipped() func([]pitr.Shipped, error) {
	failing := false
	return func(shipped []pitr.Shipped, err error) {
		for _, x := range shipped {
			if len(x.Segments)+len(x.Bases) > 0 {
				a.say("%s: %d WAL segment(s) and %d base backup(s) sent to %s", x.Database, len(x.Segments), len(x.Bases), x.Location)
			}
		}
		switch {
		case err != nil && !failing:
			a.say("wal-push failed: %v (the folder keeps the segments; retrying every %s)", err, routine.DefaultShipEvery)
		case err == nil && failing:
			a.say("wal-push: the repository answers again")
		}
		failing = err != nil
	}
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

const serveLong = `Run the backup routine on a schedule until SIGTERM or Ctrl-C: a full backup of
each database (each on its own, so one that is down does not stop the others),
its verification (unless --no-verify; <db>-latest moves only to a verified
file); a base backup of each database with point-in-time recovery on, then,
with aidb.yaml's retention.pitr_keep_window, a prune of the base backups and
WAL that window does not need; then a prune (by --keep-last, else aidb.yaml's
retention rules; none given, no prune), in the folder and the repository, and,
when a repository is set (AIDB_REPOSITORY), a push of what it lacks.
One run at a time: a run due while the one before still runs is skipped and
counted. SPEC is five cron fields ("30 2 * * *") or a descriptor ("@daily",
"@every 6h"), in the local time zone.

--metrics-addr serves Prometheus metrics on /metrics and /healthz.
--notify-url gets a JSON POST ({database, step, error, file, at}) for each
failed step; --ping-url a GET after each run whose steps all succeeded (for
dead-man switches). On SIGTERM the running step is undone as on Ctrl-C, no
helper or throwaway container is left, and serve exits 143.`

// pitrStatusesNow are the statuses of the databases with PITR on, read
// at a metrics scrape (none when the project cannot be read).
func (a *app) pitrStatusesNow(ctx context.Context) []pitr.Status {
	s, err := a.open(ctx, nil)
	if err != nil {
		return nil
	}
	defer func() { _ = s.Close() }()
	st, _ := pitrStatuses(ctx, s)
	return st
}
