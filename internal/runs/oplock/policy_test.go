package oplock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/runs/litter"
)

// fakeDatabases says which databases are up.
type fakeDatabases map[string]bool

func (f fakeDatabases) RequireReady(_ context.Context, db compose.Database) error {
	if !f[db.Name] {
		return errors.New(db.Name + " is not up")
	}
	return nil
}

func (f fakeDatabases) ConnString(db compose.Database) string { return "postgres://" + db.Name }

// recorder is a set of lockers that write what they do into a log; a
// lock named in fail is refused.
type recorder struct {
	log  []string
	fail string
	// waiting names a lock another operation holds: its onWait is told.
	waiting string
	// stops, if set, is called as the lock named in fail is refused: the
	// database stops meanwhile.
	stops func()
}

func (r *recorder) lockers() lockers {
	return lockers{
		database: func(_ context.Context, connString, op string, _ time.Duration, onWait func(string)) (func(context.Context), error) {
			if connString == r.waiting && onWait != nil {
				onWait("aidb backup (pid 1)")
			}
			if connString == r.fail {
				if r.stops != nil {
					r.stops()
				}
				return nil, errors.New("refused " + connString)
			}
			r.log = append(r.log, "lock "+connString+" for "+op)
			return func(context.Context) { r.log = append(r.log, "release "+connString) }, nil
		},
		folder: func(_ context.Context, dir, op string, _ time.Duration, onWait func(string)) (func(context.Context), error) {
			if dir == r.waiting && onWait != nil {
				onWait("aidb backup (pid 1)")
			}
			if dir == r.fail {
				return nil, errors.New("refused " + dir)
			}
			r.log = append(r.log, "lock folder "+dir+" for "+op)
			return func(context.Context) { r.log = append(r.log, "release folder "+dir) }, nil
		},
		ensure: func(dir string) error {
			r.log = append(r.log, "ensure "+dir)
			return nil
		},
		clear: func(_ context.Context, opts litter.Options) (litter.Report, error) {
			r.log = append(r.log, "clear "+opts.Dir)
			return litter.Report{UnownedFiles: []string{opts.Dir + "/x.partial"}}, nil
		},
	}
}

func dbs(names ...string) []compose.Database {
	out := make([]compose.Database, len(names))
	for i, n := range names {
		out[i] = compose.Database{Name: n}
	}
	return out
}

func TestTakeLocksUpDatabasesInNameOrderThenTheFolderThenClears(t *testing.T) {
	r := &recorder{}
	var cleared []litter.Report
	h, err := r.lockers().take(t.Context(), Request{
		Op: "aidb restore", Databases: dbs("rulesdb", "memorydb", "downdb"),
		Lifecycle: fakeDatabases{"rulesdb": true, "memorydb": true},
		Folder:    "/b", Timeout: time.Second,
		Cleared: func(rep litter.Report, err error) {
			assert.NoError(t, err)
			cleared = append(cleared, rep)
		},
	})
	require.NoError(t, err)
	assert.Equal(t, []string{
		"lock postgres://memorydb for aidb restore",
		"lock postgres://rulesdb for aidb restore",
		"ensure /b",
		"lock folder /b for aidb restore",
		"clear /b",
	}, r.log, "databases in name order, a database that is not up skipped, the folder last, cleared holding it")
	require.Len(t, cleared, 1)
	assert.Equal(t, []string{"/b/x.partial"}, cleared[0].UnownedFiles)

	r.log = nil
	h.Release()
	assert.Equal(t, []string{"release postgres://memorydb", "release postgres://rulesdb", "release folder /b"}, r.log)
	r.log = nil
	h.Release()
	assert.Empty(t, r.log, "a second Release gives nothing up twice")
}

func TestTakeWithoutAFolderNeitherLocksNorClearsIt(t *testing.T) {
	r := &recorder{}
	h, err := r.lockers().take(t.Context(), Request{
		Op: "aidb migrate", Databases: dbs("rulesdb"), Lifecycle: fakeDatabases{"rulesdb": true},
		Cleared: func(litter.Report, error) { t.Error("cleared without the folder lock") },
	})
	require.NoError(t, err)
	assert.Equal(t, []string{"lock postgres://rulesdb for aidb migrate"}, r.log)
	h.Release()
}

func TestTakeFolderOnlyNeedsNoLifecycle(t *testing.T) {
	r := &recorder{}
	h, err := r.lockers().take(t.Context(), Request{Op: "aidb prune", Folder: "/b"})
	require.NoError(t, err)
	assert.Equal(t, []string{"ensure /b", "lock folder /b for aidb prune", "clear /b"}, r.log)
	h.Release()
}

func TestTakeGivesUpWhatItTookWhenALockIsRefused(t *testing.T) {
	for _, tc := range []struct {
		fail string
		want []string
	}{
		{"postgres://rulesdb", []string{"lock postgres://memorydb for aidb backup", "release postgres://memorydb"}},
		{"/b", []string{"lock postgres://memorydb for aidb backup", "lock postgres://rulesdb for aidb backup", "ensure /b",
			"release postgres://memorydb", "release postgres://rulesdb"}},
	} {
		r := &recorder{fail: tc.fail}
		h, err := r.lockers().take(t.Context(), Request{
			Op: "aidb backup", Databases: dbs("rulesdb", "memorydb"),
			Lifecycle: fakeDatabases{"rulesdb": true, "memorydb": true}, Folder: "/b",
		})
		require.Error(t, err, tc.fail)
		assert.Contains(t, err.Error(), "refused "+tc.fail)
		assert.Nil(t, h)
		assert.Equal(t, tc.want, r.log, "refused %s: every lock taken is given up, nothing cleared", tc.fail)
	}
}

func TestTakeSkipsADatabaseThatStopsWhileItIsLocked(t *testing.T) {
	up := fakeDatabases{"rulesdb": true, "memorydb": true}
	r := &recorder{fail: "postgres://memorydb", stops: func() { up["memorydb"] = false }}
	h, err := r.lockers().take(t.Context(), Request{
		Op: "aidb serve", Databases: dbs("rulesdb", "memorydb"), Lifecycle: up, Folder: "/b",
	})
	require.NoError(t, err, "memorydb went down between the readiness check and its lock: skipped as down")
	assert.Equal(t, []string{"lock postgres://rulesdb for aidb serve", "ensure /b", "lock folder /b for aidb serve", "clear /b"}, r.log)
	h.Release()

	// The same refusal of a database still up is the operation's error.
	up["memorydb"] = true
	r = &recorder{fail: "postgres://memorydb"}
	h, err = r.lockers().take(t.Context(), Request{
		Op: "aidb serve", Databases: dbs("rulesdb", "memorydb"), Lifecycle: up, Folder: "/b",
	})
	require.Error(t, err)
	assert.Nil(t, h)
	assert.Empty(t, r.log, "nothing held: memorydb is locked first and refused")
}

func TestTakeTellsWhoIsWaitedFor(t *testing.T) {
	for _, waiting := range []string{"postgres://rulesdb", "/b"} {
		r := &recorder{waiting: waiting}
		var told []string
		h, err := r.lockers().take(t.Context(), Request{
			Op: "aidb backup", Databases: dbs("rulesdb"), Lifecycle: fakeDatabases{"rulesdb": true}, Folder: "/b",
			WaitDatabase: func(db, holder string) { told = append(told, db+": "+holder) },
			WaitFolder:   func(holder string) { told = append(told, "folder: "+holder) },
		})
		require.NoError(t, err)
		h.Release()
		want := "rulesdb: aidb backup (pid 1)"
		if waiting == "/b" {
			want = "folder: aidb backup (pid 1)"
		}
		assert.Equal(t, []string{want}, told)
	}
}
