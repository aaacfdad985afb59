package pitr

import (
	"testing"

	"github.com/stretchr/testify/assert"

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
