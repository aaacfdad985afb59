package owner

import (
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// procs is a fake process table: pid to start time.
type procs map[int]uint64

func (p procs) StartTime(pid int) (uint64, bool) {
	start, ok := p[pid]
	return start, ok
}

func TestJudge(t *testing.T) {
	t.Parallel()
	self := Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 100, Start: 5000}
	table := procs{100: 5000, 200: 7000, 300: 9000}
	for _, c := range []struct {
		name string
		o    Owner
		want Verdict
	}{
		{"a live run", Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 200, Start: 7000}, Alive},
		{"a pid that no longer runs", Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 250, Start: 7100}, Dead},
		{"a pid reused by a later process", Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 300, Start: 8000}, Dead},
		{"an earlier boot of this host", Owner{Host: "aaaaaa", Boot: "cccccc", PID: 200, Start: 7000}, Dead},
		{"another host, its pid not running here", Owner{Host: "dddddd", Boot: "bbbbbb", PID: 250, Start: 1}, Elsewhere},
		{"another host, another boot", Owner{Host: "dddddd", Boot: "cccccc", PID: 250, Start: 1}, Elsewhere},
		{"this very process", self, Alive},
		{"an earlier process with this pid", Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 100, Start: 10}, Dead},
		{"a running pid whose start time is unknown", Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 200}, Alive},
	} {
		assert.Equal(t, c.want, Judge(c.o, self, table), c.name)
	}

	// A process table that cannot tell start times: a running pid is alive.
	assert.Equal(t, Alive, Judge(Owner{Host: "aaaaaa", Boot: "bbbbbb", PID: 200, Start: 1}, self, procs{200: 0}))
}

func TestNameRoundTrip(t *testing.T) {
	t.Parallel()
	me := Self()
	assert.Equal(t, os.Getpid(), me.PID)
	assert.NotZero(t, me.Start, "this host has /proc")
	name := Name("rulesdb-20250517-093005.sql", ".partial")
	o, ok := FromName(name)
	require.True(t, ok, name)
	assert.Equal(t, me, o)
	o, ok = FromName(Name(".aidb-dump-0a1b2c.3", ".fifo"))
	require.True(t, ok)
	assert.Equal(t, me, o)
	assert.Equal(t, Alive, Judge(me, me, Local()), "this process runs")

	for _, other := range []string{"rulesdb-20250517-093005.sql.partial", ".aidb-dump-0a1b2c.fifo", "a~b.partial", "a~1-2-zzzzzz-bbbbbb.fifo", "a~0-2-aaaaaa-bbbbbb.fifo"} {
		_, ok := FromName(other)
		assert.False(t, ok, other)
	}
}

func TestStatStart(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	start, zombie := statStart("4711 (aidb (x) y) S 1 4711 4711 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 8 0 123456 1000 10")
	assert.Equal(t, uint64(123456), start)
	assert.False(t, zombie)
	_, zombie = statStart("4711 (aidb) Z 1 4711 4711 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 8 0 123456 1000 10")
	assert.True(t, zombie, "a killed process its parent has not collected yet has ended")
	start, _ = statStart("garbage")
	assert.Zero(t, start)
}
