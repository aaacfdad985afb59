package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aidb/aidb/internal/fault"
)

var at = time.Date(2026, 11, 30, 2, 30, 0, 0, time.UTC)

func okRun(context.Context) Report {
	return Report{Outcomes: []Outcome{
		{Database: "rulesdb", Step: "backup", File: "rulesdb-1.sql", Size: 1234, Seconds: 2.5, At: at},
		{Database: "rulesdb", Step: "verify", File: "rulesdb-1.sql", At: at.Add(time.Minute)},
	}}
}

func TestNewRefusesBadSchedulesAndURLs(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"", "every day", "61 * * * *", "@every nonsense"} {
		_, err := New(Config{Spec: spec, Run: okRun})
		if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "five cron fields") {
			t.Errorf("schedule %q: err = %v, want bad input naming the forms", spec, err)
		}
	}
	for _, spec := range []string{"@every 0s", "@every -5s", "@every 500ms"} {
		_, err := New(Config{Spec: spec, Run: okRun})
		if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "at least 1s") {
			t.Errorf("schedule %q: err = %v, want bad input: the interval must be at least 1s", spec, err)
		}
	}
	_, err := New(Config{Spec: "@daily", Run: okRun, NotifyURL: "://nope"})
	if fault.KindOf(err) != fault.Invalid {
		t.Errorf("bad notify URL: err = %v, want bad input", err)
	}
	for _, spec := range []string{"30 2 * * *", "@daily", "@every 6h", "@every 1s", "*/5 * * * *"} {
		if _, err := New(Config{Spec: spec, Run: okRun}); err != nil {
			t.Errorf("schedule %q: %v", spec, err)
		}
	}
}

func TestNextFollowsTheSpec(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Spec: "30 2 * * *", Run: okRun})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 30, 3, 0, 0, 0, time.Local)
	if got, want := s.Next(from), time.Date(2026, 12, 1, 2, 30, 0, 0, time.Local); !got.Equal(want) {
		t.Errorf("Next(%v) = %v, want %v", from, got, want)
	}
}

func TestTickRecordsMetricsAndPings(t *testing.T) {
	t.Parallel()
	var pings atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			pings.Add(1)
		}
	}))
	defer srv.Close()
	s, err := New(Config{Spec: "@daily", Run: okRun, PingURL: srv.URL + "/ping"})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Tick(t.Context()) {
		t.Fatal("tick did not run")
	}
	m := s.Metrics()
	if got := testutil.ToFloat64(m.lastSuccess.WithLabelValues("rulesdb")); got != float64(at.Unix()) {
		t.Errorf("last success = %v, want %v", got, at.Unix())
	}
	if got := testutil.ToFloat64(m.lastVerified.WithLabelValues("rulesdb")); got != float64(at.Add(time.Minute).Unix()) {
		t.Errorf("last verified = %v", got)
	}
	if got := testutil.ToFloat64(m.size.WithLabelValues("rulesdb")); got != 1234 {
		t.Errorf("size = %v, want 1234", got)
	}
	if got := testutil.ToFloat64(m.duration.WithLabelValues("rulesdb")); got != 2.5 {
		t.Errorf("duration = %v, want 2.5", got)
	}
	if got := testutil.ToFloat64(m.runs.WithLabelValues("ok")); got != 1 {
		t.Errorf("ok runs = %v, want 1", got)
	}
	if pings.Load() != 1 {
		t.Errorf("pings = %d, want 1 after a run that succeeded", pings.Load())
	}
}

func TestFailuresNotifyAndDoNotPing(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []Notification
	var pings atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			pings.Add(1)
			return
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("notify content type %q", r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		var n Notification
		if err := json.Unmarshal(b, &n); err != nil {
			t.Errorf("notify body %s: %v", b, err)
		}
		mu.Lock()
		got = append(got, n)
		mu.Unlock()
	}))
	defer srv.Close()
	run := func(context.Context) Report {
		return Report{Outcomes: []Outcome{
			{Database: "memorydb", Step: "backup", File: "memorydb-1.sql", Size: 10, At: at},
			{Database: "memorydb", Step: "verify", File: "memorydb-1.sql", Err: errors.New("table public.memories differs"), At: at},
			{Database: "rulesdb", Step: "backup", Err: errors.New("rulesdb is not up"), At: at},
		}}
	}
	s, err := New(Config{Spec: "@daily", Run: run, NotifyURL: srv.URL + "/notify", PingURL: srv.URL + "/ping"})
	if err != nil {
		t.Fatal(err)
	}
	s.Tick(t.Context())
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("notifications %+v, want one per failed step (2)", got)
	}
	if got[0].Database != "memorydb" || got[0].Step != "verify" || got[0].File != "memorydb-1.sql" || !strings.Contains(got[0].Error, "differs") {
		t.Errorf("first notification %+v", got[0])
	}
	if got[1].Database != "rulesdb" || got[1].Step != "backup" {
		t.Errorf("second notification %+v", got[1])
	}
	if pings.Load() != 0 {
		t.Error("a failed run pinged the dead-man switch")
	}
	m := s.Metrics()
	if v := testutil.ToFloat64(m.failures.WithLabelValues("memorydb")); v != 1 {
		t.Errorf("memorydb failures = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.failures.WithLabelValues("rulesdb")); v != 1 {
		t.Errorf("rulesdb failures = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.runs.WithLabelValues("failed")); v != 1 {
		t.Errorf("failed runs = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.lastVerified.WithLabelValues("memorydb")); v != 0 {
		t.Errorf("a failed verification set last verified to %v", v)
	}
}

func TestUnreachableNotifyIsAnEventNotAFailure(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	var events []Event
	run := func(context.Context) Report {
		return Report{Outcomes: []Outcome{{Database: "rulesdb", Step: "backup", Err: errors.New("boom"), At: at}}}
	}
	s, err := New(Config{Spec: "@daily", Run: run, NotifyURL: srv.URL, Events: func(e Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	s.Tick(t.Context())
	var failed bool
	for _, e := range events {
		if e.Kind == NotifyFailed && strings.Contains(e.Err.Error(), "500") {
			failed = true
		}
	}
	if !failed {
		t.Errorf("events %+v: want a NotifyFailed naming the 500", events)
	}
}

// A run due while the one before still runs is skipped and counted.
func TestOverlappingRunIsSkipped(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{})
	var runs atomic.Int32
	run := func(context.Context) Report {
		runs.Add(1)
		close(started)
		<-release
		return okRun(context.Background())
	}
	s, err := New(Config{Spec: "@daily", Run: run})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan bool)
	go func() { done <- s.Tick(t.Context()) }()
	<-started
	if s.Tick(t.Context()) {
		t.Fatal("a second run started while the first ran")
	}
	close(release)
	if !<-done {
		t.Fatal("the first run did not report running")
	}
	if runs.Load() != 1 {
		t.Errorf("runs = %d, want 1", runs.Load())
	}
	if v := testutil.ToFloat64(s.Metrics().skipped); v != 1 {
		t.Errorf("skipped = %v, want 1", v)
	}
}

// Serve runs on schedule and, once cancelled, waits for the run in
// progress, which sees the cancellation, before it returns.
func TestServeStopsAfterTheRunningStepUndoes(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 10)
	undoing, release := make(chan struct{}), make(chan struct{})
	var undone atomic.Bool
	run := func(ctx context.Context) Report {
		started <- struct{}{}
		<-ctx.Done()
		// The step's undo: it lasts until the test lets it end.
		close(undoing)
		<-release
		undone.Store(true)
		return Report{Outcomes: []Outcome{{Database: "rulesdb", Step: "backup", Err: ctx.Err(), At: time.Now()}}}
	}
	s, err := New(Config{Spec: "@every 1s", Run: run})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error)
	go func() { errc <- s.Serve(ctx) }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("no run within 10 s of an @every 1s schedule")
	}
	cancel()
	<-undoing
	// While the step undoes, Serve must not return; a Serve that did not
	// wait for it would return at once on its cancellation.
	select {
	case err := <-errc:
		t.Fatalf("Serve returned (%v) while the running step was still undoing its work", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrStoppedIdle) {
			t.Errorf("Serve = %v, want context.Canceled, not ErrStoppedIdle (a run was in progress)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10 s of its cancellation")
	}
	if !undone.Load() {
		t.Error("Serve returned before the running step had undone its work")
	}
}

// Serve stopped while it waits for the next run says that no run was in
// progress.
func TestServeStoppedBetweenRunsSaysSo(t *testing.T) {
	t.Parallel()
	ran, waiting := make(chan struct{}, 1), make(chan struct{}, 1)
	s, err := New(Config{
		Spec: "@every 1h",
		Run:  func(context.Context) Report { ran <- struct{}{}; return Report{} },
		Events: func(e Event) {
			if e.Kind == Waiting {
				waiting <- struct{}{}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error)
	go func() { errc <- s.Serve(ctx) }()
	<-waiting
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrStoppedIdle) || !errors.Is(err, context.Canceled) {
			t.Errorf("Serve = %v, want ErrStoppedIdle and context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10 s of its cancellation")
	}
	if len(ran) != 0 {
		t.Error("a run started on an @every 1h schedule")
	}
}

func TestHandlerServesMetricsAndHealth(t *testing.T) {
	t.Parallel()
	s, err := New(Config{Spec: "@daily", Run: okRun})
	if err != nil {
		t.Fatal(err)
	}
	s.Metrics().Seed("memorydb", at, time.Time{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if h := get("/healthz"); strings.TrimSpace(h) != "ok" {
		t.Errorf("/healthz = %q", h)
	}
	body := get("/metrics")
	for _, want := range []string{
		`aidb_backup_last_success_timestamp_seconds{database="memorydb"} ` + strconv.FormatFloat(float64(at.Unix()), 'g', -1, 64),
		`aidb_backup_failures_total{database="memorydb"} 0`,
		`aidb_runs_skipped_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `aidb_backup_last_verified_timestamp_seconds{database="memorydb"}`) {
		t.Error("a database never verified has a last-verified time")
	}
}
