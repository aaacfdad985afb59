package pitr

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/orchestrator"
)

// A stream keeps up when it runs, its slot holds its WAL and no more than
// the limit is not yet streamed; each other case names what to do.
func TestBehind(t *testing.T) {
	t.Parallel()
	running := &orchestrator.WALStream{Container: "p-rulesdb-wal", Slot: "aidb_rulesdb", Running: true}
	stopped := &orchestrator.WALStream{Container: "p-rulesdb-wal", Slot: "aidb_rulesdb"}
	slot := func(lag int64, status string) *Slot {
		return &Slot{Name: "aidb_rulesdb", Active: true, WALStatus: status, Lag: lag}
	}
	for _, c := range []struct {
		name string
		st   Status
		want string // a part of the answer; "" when it keeps up
	}{
		{"keeps up", Status{Database: "rulesdb", Stream: running, Slot: slot(100, "reserved")}, ""},
		{"at the limit", Status{Database: "rulesdb", Stream: running, Slot: slot(1000, "reserved")}, ""},
		{"past the limit", Status{Database: "rulesdb", Stream: running, Slot: slot(1001, "extended")}, "1001 bytes of WAL not yet streamed, more than 1000"},
		{"no stream", Status{Database: "rulesdb"}, "aidb pitr enable rulesdb"},
		{"stopped", Status{Database: "rulesdb", Stream: stopped, Slot: slot(0, "reserved")}, "is not running: aidb up starts it"},
		{"slot missing", Status{Database: "rulesdb", Stream: running, Problem: "slot aidb_rulesdb is missing"}, "slot aidb_rulesdb is missing"},
		{"slot lost WAL", Status{Database: "rulesdb", Stream: running, Slot: slot(0, "lost")}, "lost WAL past max_slot_wal_keep_size"},
	} {
		got := c.st.Behind(1000)
		if c.want == "" {
			assert.Empty(t, got, c.name)
		} else {
			assert.Contains(t, got, c.want, c.name)
		}
	}
}

// The collector sends what each status knows, and leaves out what it
// does not: no slot, no lag; no window, no window's times.
func TestCollector(t *testing.T) {
	t.Parallel()
	from, to := time.Unix(1000, 0), time.Unix(2000, 0)
	c := Collector{Statuses: func(context.Context) []Status {
		return []Status{
			{Database: "rulesdb", Stream: &orchestrator.WALStream{Running: true}, Slot: &Slot{Lag: 7, Retained: 9}, Window: &Window{From: from, To: to}},
			{Database: "memorydb", Stream: &orchestrator.WALStream{}},
		}
	}}
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	want := `
# HELP aidb_pitr_earliest_recoverable_timestamp_seconds The earliest time a recovery can reach: the oldest base backup's end (Unix time).
# TYPE aidb_pitr_earliest_recoverable_timestamp_seconds gauge
aidb_pitr_earliest_recoverable_timestamp_seconds{database="rulesdb"} 1000
# HELP aidb_wal_lag_bytes WAL the server wrote that the stream has not yet flushed to the folder.
# TYPE aidb_wal_lag_bytes gauge
aidb_wal_lag_bytes{database="rulesdb"} 7
# HELP aidb_wal_last_segment_timestamp_seconds The latest time a recovery can reach: the end of the newest whole segment (Unix time).
# TYPE aidb_wal_last_segment_timestamp_seconds gauge
aidb_wal_last_segment_timestamp_seconds{database="rulesdb"} 2000
# HELP aidb_wal_slot_retained_bytes WAL the stream's replication slot holds back on the server.
# TYPE aidb_wal_slot_retained_bytes gauge
aidb_wal_slot_retained_bytes{database="rulesdb"} 9
# HELP aidb_wal_stream_up Whether the database's WAL stream container runs (1) or not (0).
# TYPE aidb_wal_stream_up gauge
aidb_wal_stream_up{database="memorydb"} 0
aidb_wal_stream_up{database="rulesdb"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want)))
}
