package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/scheduler"
	"github.com/aidb/aidb/orchestrator"
)

// TestServeRunsTheRoutineAndSaysHowItWent: aidb serve backs up and
// verifies both databases on its schedule, pings after a run that
// succeeded, serves metrics and /healthz, skips (and counts) a run due
// while one runs, POSTs a notice naming the database and step when one
// fails while the other is still backed up, and on SIGTERM undoes the
// running step, leaves no helper or throwaway container, and exits 143.
func TestServeRunsTheRoutineAndSaysHowItWent(t *testing.T) {
	t.Parallel()
	p := newProject(t, "serve")
	dir := p.backupDir()
	p.seeded("30")

	var mu sync.Mutex
	var notices []scheduler.Notification
	pings := 0
	hook := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/ping":
			pings++
		case "/notify":
			b, _ := io.ReadAll(r.Body)
			var n scheduler.Notification
			assert.NoError(t, json.Unmarshal(b, &n), "%s", b)
			notices = append(notices, n)
		}
	}))
	defer hook.Close()
	metricsPort := freePort(t)
	metricsURL := "http://127.0.0.1:" + strconv.Itoa(metricsPort)

	// @every 1s: each run (two backups and their verifications) takes
	// longer, so runs fall due while one runs and are skipped.
	cmd, stderr, exited := p.background(t.Context(), "serve", "--schedule", "@every 1s", "--metrics-addr", "127.0.0.1:"+strconv.Itoa(metricsPort),
		"--notify-url", hook.URL+"/notify", "--ping-url", hook.URL+"/ping", "--keep-last", "2")

	waitFor(t, 5*time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return pings > 0
	})
	metrics := func() string {
		t.Helper()
		resp, err := http.Get(metricsURL + "/metrics")
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	value := func(body, metric string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(metric) + ` (\S+)$`).FindStringSubmatch(body)
		require.NotNil(t, m, "%s missing from\n%s", metric, body)
		v, err := strconv.ParseFloat(m[1], 64)
		require.NoError(t, err)
		return v
	}
	body := metrics()
	for _, db := range []string{"rulesdb", "memorydb"} {
		assert.InDelta(t, float64(time.Now().Unix()), value(body, `aidb_backup_last_success_timestamp_seconds{database="`+db+`"}`), 600, db)
		assert.InDelta(t, float64(time.Now().Unix()), value(body, `aidb_backup_last_verified_timestamp_seconds{database="`+db+`"}`), 600, db)
		assert.Greater(t, value(body, `aidb_backup_size_bytes{database="`+db+`"}`), 1000.0, db)
		assert.Greater(t, value(body, `aidb_backup_duration_seconds{database="`+db+`"}`), 0.0, db)
		assert.Zero(t, value(body, `aidb_backup_failures_total{database="`+db+`"}`), db)
	}
	assert.GreaterOrEqual(t, value(body, `aidb_runs_total{result="ok"}`), 1.0)
	assert.Greater(t, value(body, `aidb_runs_skipped_total`), 0.0, "runs due every second while one ran for longer")
	resp, err := http.Get(metricsURL + "/healthz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	c := p.aidb("check", "--max-age", "1h", "--verified")
	assert.Equal(t, 0, c.code, "the scheduled run's backups are fresh and verified: %s", c.stderr)

	// memorydb down: its step fails and is notified; rulesdb goes on.
	okBefore := value(body, `aidb_backup_last_success_timestamp_seconds{database="rulesdb"}`)
	d := p.aidb("down", "memorydb")
	require.Equal(t, 0, d.code, d.stderr)
	waitFor(t, 5*time.Minute, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, n := range notices {
			if n.Database == "memorydb" && n.Step == "backup" {
				return true
			}
		}
		return false
	})
	waitFor(t, 5*time.Minute, func() bool {
		return value(metrics(), `aidb_backup_last_success_timestamp_seconds{database="rulesdb"}`) > okBefore
	})
	body = metrics()
	assert.GreaterOrEqual(t, value(body, `aidb_backup_failures_total{database="memorydb"}`), 1.0)
	assert.GreaterOrEqual(t, value(body, `aidb_runs_total{result="failed"}`), 1.0)
	mu.Lock()
	for _, n := range notices {
		assert.Equal(t, "memorydb", n.Database, "only memorydb failed: %+v", n)
		assert.NotEmpty(t, n.Error)
	}
	mu.Unlock()
	assert.Contains(t, stderr.String(), "memorydb: backup failed: ")

	// SIGTERM while a run is in progress.
	runs := strings.Count(stderr.String(), "run started")
	waitFor(t, 2*time.Minute, func() bool { return strings.Count(stderr.String(), "run started") > runs })
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop within 60 s of SIGTERM:\n%s", stderr.String())
	}
	assert.Equal(t, 143, cmd.ProcessState.ExitCode(), stderr.String())
	assert.Empty(t, partials(t, dir), "no partial file or pipe left")
	cs, err := docker.ContainerList(context.WithoutCancel(t.Context()), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", orchestrator.LabelProject+"="+p.name)})
	require.NoError(t, err)
	for _, ctr := range cs.Items {
		assert.Equal(t, orchestrator.RoleDatabase, ctr.Labels[orchestrator.LabelRole], "left behind: %v", ctr.Names)
	}
}
