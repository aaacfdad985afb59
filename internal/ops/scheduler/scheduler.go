// Package scheduler runs aidb's routine (backup, verify, prune, and push
// where a repository is set) on a schedule, one run at a time, and tells
// the world how it went: Prometheus metrics, a JSON POST to a notify URL
// on each failure, and a GET to a ping URL after each run that succeeded
// (dead-man switches such as healthchecks alarm when pings stop).
//
// The routine itself is the caller's (a Run): this package knows when to
// run it, that only one runs at a time, and what its outcomes mean. It
// speaks no CLI and prints nothing; Events reports what happens.
package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/robfig/cron/v3"

	"github.com/aidb/aidb/internal/fault"
)

// Outcome is one step of a run for one database.
type Outcome struct {
	Database string `json:"database"`
	// Step is "backup", "upload", "verify", "base-backup", "pitr-prune",
	// "prune" or "push".
	Step string `json:"step"`
	File string `json:"file,omitempty"`
	// Err is why the step failed; nil when it succeeded.
	Err error `json:"-"`
	// Size and Seconds are a backup's size and duration.
	Size    int64   `json:"size,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	// At is when the step ended.
	At time.Time `json:"at"`
}

// Report is what one run did.
type Report struct {
	Outcomes []Outcome
}

// Failed says whether a step of the run failed.
func (r Report) Failed() bool {
	for _, o := range r.Outcomes {
		if o.Err != nil {
			return true
		}
	}
	return false
}

// Run is the routine: it runs every step for every database and reports
// each outcome. ctx is cancelled when the scheduler stops (SIGTERM): the
// step that runs then undoes its partial work and returns.
type Run func(ctx context.Context) Report

// Event is something the scheduler did, for the caller to show.
type Event struct {
	Kind EventKind
	// Next is when the next run is due (Waiting).
	Next time.Time
	// Report is the run's (Finished).
	Report Report
	// Err is what failed (NotifyFailed, PingFailed).
	Err error
}

// EventKind says what an Event is.
type EventKind uint8

const (
	// Waiting means nothing runs; Next is when the next run is due.
	Waiting EventKind = iota
	// Started means a run started.
	Started
	// Skipped means a run was due while the one before still ran; it was not
	// started (counted in aidb_runs_skipped_total).
	Skipped
	// Finished means a run ended; Report says how.
	Finished
	// NotifyFailed means the notify URL could not be reached; the run's
	// outcome stands.
	NotifyFailed
	// PingFailed means the ping URL could not be reached; the run's
	// outcome stands.
	PingFailed
)

// Config is a scheduler's settings.
type Config struct {
	// Spec is when to run: five cron fields ("30 2 * * *"), or a
	// descriptor ("@daily", "@every 6h"), in the local time zone.
	Spec string
	Run  Run
	// NotifyURL, if set, gets a JSON POST for each failed step.
	NotifyURL string
	// PingURL, if set, gets a GET after each run whose steps all succeeded.
	PingURL string
	// Client makes the notify and ping requests; default: 10 s timeout.
	Client *http.Client
	// Events, if set, is told what the scheduler does.
	Events func(Event)
}

// Scheduler runs a Run on a schedule, one at a time.
type Scheduler struct {
	cfg      Config
	schedule cron.Schedule
	metrics  *Metrics
	running  sync.Mutex
	wg       sync.WaitGroup
	// active counts the scheduled runs Serve started that have not ended.
	active atomic.Int32
}

// ErrStoppedIdle is Serve's error (with ctx's) when it was stopped between
// runs: no run was in progress, so nothing was stopped or undone.
var ErrStoppedIdle = errors.New("stopped between runs: no run was in progress")

// New checks cfg and returns its scheduler. A schedule that does not parse
// is bad input.
func New(cfg Config) (*Scheduler, error) {
	if cfg.Run == nil {
		return nil, errors.New("scheduler: no routine to run")
	}
	sched, err := cron.ParseStandard(cfg.Spec)
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("schedule %q: %w; write five cron fields (minute hour day month weekday, e.g. \"30 2 * * *\" for 02:30 daily) or a descriptor (@daily, @hourly, @every 6h)", cfg.Spec, err))
	}
	// cron takes "@every 0s" and "@every -5s" and rounds them up to a
	// second: serve would run back to back. An interval is at least one
	// second, as cron can keep it.
	if rest, ok := strings.CutPrefix(strings.TrimSpace(cfg.Spec), "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(rest)); err == nil && d < time.Second {
			return nil, fault.BadInput(fmt.Errorf("schedule %q: the interval must be at least 1s (a backup every %s would run back to back); e.g. @every 6h", cfg.Spec, d))
		}
	}
	for _, u := range []string{cfg.NotifyURL, cfg.PingURL} {
		if u == "" {
			continue
		}
		if _, err := http.NewRequest(http.MethodGet, u, nil); err != nil {
			return nil, fault.BadInput(fmt.Errorf("URL %q: %w", u, err))
		}
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Events == nil {
		cfg.Events = func(Event) {}
	}
	return &Scheduler{cfg: cfg, schedule: sched, metrics: NewMetrics()}, nil
}

// Metrics is the scheduler's metrics, for seeding from what the backup
// folder already holds and for serving.
func (s *Scheduler) Metrics() *Metrics { return s.metrics }

// Next is when the schedule is due after t.
func (s *Scheduler) Next(t time.Time) time.Time { return s.schedule.Next(t) }

// Handler serves /metrics (Prometheus' text format) and /healthz (200
// while the scheduler serves).
func (s *Scheduler) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	return mux
}

// Serve runs the routine each time the schedule is due until ctx is
// cancelled; then it waits for a run in progress (which sees ctx
// cancelled and undoes its partial work) and returns ctx's error, joined
// with ErrStoppedIdle when no run was in progress.
func (s *Scheduler) Serve(ctx context.Context) error {
	defer s.wg.Wait()
	for {
		next := s.schedule.Next(time.Now())
		s.cfg.Events(Event{Kind: Waiting, Next: next})
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			if s.active.Load() == 0 {
				return fmt.Errorf("%w (%w)", ErrStoppedIdle, ctx.Err())
			}
			return ctx.Err()
		case <-timer.C:
		}
		s.wg.Add(1)
		s.active.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.active.Add(-1)
			s.Tick(ctx)
		}()
	}
}

// Tick runs the routine now, unless a run is in progress: then it counts
// the run as skipped and returns false.
func (s *Scheduler) Tick(ctx context.Context) bool {
	if !s.running.TryLock() {
		s.metrics.skipped.Inc()
		s.cfg.Events(Event{Kind: Skipped})
		return false
	}
	defer s.running.Unlock()
	s.cfg.Events(Event{Kind: Started})
	rep := s.cfg.Run(ctx)
	s.metrics.observe(rep)
	// Reports go out even when the scheduler is stopping: the failure (or
	// success) happened.
	octx := context.WithoutCancel(ctx)
	for _, o := range rep.Outcomes {
		if o.Err != nil && s.cfg.NotifyURL != "" {
			if err := s.notify(octx, o); err != nil {
				s.cfg.Events(Event{Kind: NotifyFailed, Err: err})
			}
		}
	}
	if !rep.Failed() && len(rep.Outcomes) > 0 && s.cfg.PingURL != "" {
		if err := s.ping(octx); err != nil {
			s.cfg.Events(Event{Kind: PingFailed, Err: err})
		}
	}
	s.cfg.Events(Event{Kind: Finished, Report: rep})
	return true
}

// Notification is the JSON body POSTed to the notify URL for a failed step.
type Notification struct {
	Database string    `json:"database"`
	Step     string    `json:"step"`
	Error    string    `json:"error"`
	File     string    `json:"file,omitempty"`
	At       time.Time `json:"at"`
}

func (s *Scheduler) notify(ctx context.Context, o Outcome) error {
	body, err := json.Marshal(Notification{Database: o.Database, Step: o.Step, Error: o.Err.Error(), File: o.File, At: o.At.UTC()})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.NotifyURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return s.send(req, "notify")
}

func (s *Scheduler) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.PingURL, nil)
	if err != nil {
		return err
	}
	return s.send(req, "ping")
}

// send makes the request; a status other than 2xx is an error.
func (s *Scheduler) send(req *http.Request, what string) error {
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, req.URL.Redacted(), err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", what, req.URL.Redacted(), resp.Status)
	}
	return nil
}
