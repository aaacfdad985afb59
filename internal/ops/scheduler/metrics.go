package scheduler

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the scheduler's Prometheus metrics, in a registry of their
// own (no package globals: two schedulers in one process, as in tests,
// do not share them).
type Metrics struct {
	registry     *prometheus.Registry
	lastSuccess  *prometheus.GaugeVec
	lastVerified *prometheus.GaugeVec
	duration     *prometheus.GaugeVec
	size         *prometheus.GaugeVec
	failures     *prometheus.CounterVec
	runs         *prometheus.CounterVec
	skipped      prometheus.Counter
}

// NewMetrics registers the metrics.
func NewMetrics() *Metrics {
	db := []string{"database"}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aidb_backup_last_success_timestamp_seconds",
			Help: "When the newest backup of the database was written (Unix time)."}, db),
		lastVerified: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aidb_backup_last_verified_timestamp_seconds",
			Help: "When a backup of the database was last verified equal to its manifest (Unix time)."}, db),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aidb_backup_duration_seconds",
			Help: "How long the database's last backup took."}, db),
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "aidb_backup_size_bytes",
			Help: "The size of the database's last backup file."}, db),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aidb_backup_failures_total",
			Help: "Steps (backup, verify, prune, push) that failed for the database."}, db),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "aidb_runs_total",
			Help: "Scheduled runs, by result (ok or failed)."}, []string{"result"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "aidb_runs_skipped_total",
			Help: "Scheduled runs not started because the one before still ran."}),
	}
	m.registry.MustRegister(m.lastSuccess, m.lastVerified, m.duration, m.size, m.failures, m.runs, m.skipped)
	m.runs.WithLabelValues("ok")
	m.runs.WithLabelValues("failed")
	return m
}

// Seed sets a database's last success and last verification from what the
// backup folder holds, so a restarted scheduler does not report them as
// never (zero times are left unset).
func (m *Metrics) Seed(database string, lastSuccess, lastVerified time.Time) {
	m.failures.WithLabelValues(database)
	if !lastSuccess.IsZero() {
		m.lastSuccess.WithLabelValues(database).Set(float64(lastSuccess.Unix()))
	}
	if !lastVerified.IsZero() {
		m.lastVerified.WithLabelValues(database).Set(float64(lastVerified.Unix()))
	}
}

// observe records a run's outcomes.
func (m *Metrics) observe(r Report) {
	result := "ok"
	if r.Failed() {
		result = "failed"
	}
	if len(r.Outcomes) > 0 {
		m.runs.WithLabelValues(result).Inc()
	}
	for _, o := range r.Outcomes {
		if o.Err != nil {
			m.failures.WithLabelValues(o.Database).Inc()
			continue
		}
		switch o.Step {
		case "backup":
			m.lastSuccess.WithLabelValues(o.Database).Set(float64(o.At.Unix()))
			m.duration.WithLabelValues(o.Database).Set(o.Seconds)
			m.size.WithLabelValues(o.Database).Set(float64(o.Size))
		case "verify":
			m.lastVerified.WithLabelValues(o.Database).Set(float64(o.At.Unix()))
		}
	}
}

// Register adds a collector of another concern (the WAL streams') to the
// registry Handler serves.
func (m *Metrics) Register(c prometheus.Collector) error { return m.registry.Register(c) }
