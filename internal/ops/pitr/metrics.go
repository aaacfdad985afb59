package pitr

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the WAL streams' state at each scrape, read then
// (Statuses), so a scrape shows the stream as it is, not as at the last
// scheduled run:
//
//	aidb_wal_stream_up{database}                        1 running, 0 not
//	aidb_wal_lag_bytes{database}                        Slot.Lag
//	aidb_wal_slot_retained_bytes{database}              Slot.Retained
//	aidb_wal_last_segment_timestamp_seconds{database}   the window's end
//	aidb_pitr_earliest_recoverable_timestamp_seconds{database} its start
//
// A value that is not known (the database does not answer, no base
// backup yet) is left out rather than reported as 0.
type Collector struct {
	// Statuses reads the databases with PITR on; it is given Timeout.
	Statuses func(ctx context.Context) []Status
	Timeout  time.Duration
}

var (
	descUp = prometheus.NewDesc("aidb_wal_stream_up",
		"Whether the database's WAL stream container runs (1) or not (0).", []string{"database"}, nil)
	descLag = prometheus.NewDesc("aidb_wal_lag_bytes",
		"WAL the server wrote that the stream has not yet flushed to the folder.", []string{"database"}, nil)
	descRetained = prometheus.NewDesc("aidb_wal_slot_retained_bytes",
		"WAL the stream's replication slot holds back on the server.", []string{"database"}, nil)
	descLast = prometheus.NewDesc("aidb_wal_last_segment_timestamp_seconds",
		"The latest time a recovery can reach: the end of the newest whole segment (Unix time).", []string{"database"}, nil)
	descEarliest = prometheus.NewDesc("aidb_pitr_earliest_recoverable_timestamp_seconds",
		"The earliest time a recovery can reach: the oldest base backup's end (Unix time).", []string{"database"}, nil)
)

// Describe sends the metrics' descriptions.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descLag, descRetained, descLast, descEarliest} {
		ch <- d
	}
}

// Collect reads the statuses and sends what is known of each.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, st := range c.Statuses(ctx) {
		for _, m := range metricsOf(st) {
			ch <- m
		}
	}
}

// metricsOf is what one status says, as metrics.
func metricsOf(st Status) []prometheus.Metric {
	var out []prometheus.Metric
	gauge := func(d *prometheus.Desc, v float64) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, st.Database))
	}
	up := 0.0
	if st.Stream != nil && st.Stream.Running {
		up = 1
	}
	gauge(descUp, up)
	if st.Slot != nil {
		gauge(descLag, float64(st.Slot.Lag))
		gauge(descRetained, float64(st.Slot.Retained))
	}
	if st.Window != nil {
		gauge(descLast, float64(st.Window.To.Unix()))
		gauge(descEarliest, float64(st.Window.From.Unix()))
	}
	return out
}
