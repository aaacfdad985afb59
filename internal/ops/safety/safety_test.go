package safety

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/postgres/pgtools"
	"github.com/aidb/aidb/orchestrator"
)

// fake is a project's databases: their state ("missing", "exited",
// "running") and whether they hold tables; it writes what is done to log.
type fake struct {
	state    map[string]string
	data     map[string]bool
	startErr error
	log      []string
}

func (f *fake) Status(_ context.Context, dbs []compose.Database) ([]orchestrator.Status, error) {
	out := make([]orchestrator.Status, len(dbs))
	for i, db := range dbs {
		out[i] = orchestrator.Status{Name: db.Name, State: f.state[db.Name]}
	}
	return out, nil
}

func (f *fake) StartExisting(_ context.Context, dbs []compose.Database) ([]compose.Database, error) {
	for _, db := range dbs {
		f.log = append(f.log, "start "+db.Name)
	}
	if f.startErr != nil {
		return nil, f.startErr
	}
	return dbs, nil
}

func (f *fake) ConnString(db compose.Database) string { return "postgres://" + db.Name }

func (f *fake) hasData(_ context.Context, connString string) (bool, error) {
	f.log = append(f.log, "look into "+connString)
	return f.data[connString[len("postgres://"):]], nil
}

// request asks for a safety backup of names, recording the lock, the
// backup it runs and the databases found empty.
func (f *fake) request(backupErr error, names ...string) (Request, *[]backup.Request, *[]string) {
	var ran []backup.Request
	var empty []string
	dbs := make([]compose.Database, len(names))
	for i, n := range names {
		dbs[i] = compose.Database{Name: n}
	}
	return Request{
		Databases: dbs,
		Why:       manifest.Safety{Command: "aidb nuke", Reason: "the data before aidb nuke"},
		HasData:   f.hasData,
		NoData:    func(db string) { empty = append(empty, db) },
		Lock: func(context.Context) (func(), error) {
			f.log = append(f.log, "lock")
			return func() { f.log = append(f.log, "release") }, nil
		},
		Backup: func(_ context.Context, req backup.Request) (backup.Result, error) {
			ran = append(ran, req)
			f.log = append(f.log, "backup")
			if backupErr != nil {
				return backup.Result{}, backupErr
			}
			var res backup.Result
			for _, db := range req.Databases {
				res.Files = append(res.Files, backup.File{Database: db.Name, Path: "/b/" + db.Name + ".sql", Safety: req.Safety})
			}
			return res, nil
		},
	}, &ran, &empty
}

func TestTakeBacksUpTheDatabasesThatExistAndHoldData(t *testing.T) {
	f := &fake{
		state: map[string]string{"rulesdb": "exited", "memorydb": "running", "newdb": "missing", "emptydb": "running"},
		data:  map[string]bool{"rulesdb": true, "memorydb": true},
	}
	req, ran, empty := f.request(nil, "rulesdb", "memorydb", "newdb", "emptydb")
	files, err := Take(t.Context(), f, req)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"start rulesdb", "start memorydb", "start emptydb",
		"look into postgres://rulesdb", "look into postgres://memorydb", "look into postgres://emptydb",
		"lock", "backup", "release",
	}, f.log, "a missing database is neither started nor looked into; the lock is held for the backup only")
	assert.Equal(t, []string{"emptydb"}, *empty)
	require.Len(t, *ran, 1)
	r := (*ran)[0]
	assert.Equal(t, []compose.Database{{Name: "rulesdb"}, {Name: "memorydb"}}, r.Databases)
	assert.Equal(t, backupfile.Full, r.Kind)
	assert.Equal(t, backupfile.None, r.Compression)
	assert.Equal(t, pgtools.TransportAuto, r.Transport)
	require.NotNil(t, r.Safety, "marked as a safety backup")
	assert.Equal(t, req.Why, *r.Safety)
	require.Len(t, files, 2)
	assert.Equal(t, "/b/rulesdb.sql", files[0].Path)
}

func TestTakeWithNothingToKeepTakesNoLockAndNoBackup(t *testing.T) {
	for name, f := range map[string]*fake{
		"all missing": {state: map[string]string{"rulesdb": "missing", "memorydb": "missing"}},
		"all empty":   {state: map[string]string{"rulesdb": "running", "memorydb": "exited"}},
	} {
		req, ran, _ := f.request(nil, "rulesdb", "memorydb")
		files, err := Take(t.Context(), f, req)
		require.NoError(t, err, name)
		assert.Empty(t, files, name)
		assert.Empty(t, *ran, name)
		assert.NotContains(t, f.log, "lock", name)
	}
}

func TestTakeFailuresSayWhereTheyStopped(t *testing.T) {
	f := &fake{state: map[string]string{"rulesdb": "exited"}, startErr: errors.New("port taken")}
	req, ran, _ := f.request(nil, "rulesdb")
	_, err := Take(t.Context(), f, req)
	require.Error(t, err)
	assert.Equal(t, "start the databases for a safety backup: port taken", err.Error())
	assert.Empty(t, *ran)

	f = &fake{state: map[string]string{"rulesdb": "running"}, data: map[string]bool{"rulesdb": true}}
	req, _, _ = f.request(errors.New("no space left on device"), "rulesdb")
	_, err = Take(t.Context(), f, req)
	require.Error(t, err)
	assert.Equal(t, "safety backup: no space left on device", err.Error())
	assert.Equal(t, []string{"start rulesdb", "look into postgres://rulesdb", "lock", "backup", "release"}, f.log, "the lock is given up after a failed backup too")

	f = &fake{state: map[string]string{"rulesdb": "running"}}
	req, ran, _ = f.request(nil, "rulesdb")
	req.HasData = func(context.Context, string) (bool, error) { return false, errors.New("connection refused") }
	_, err = Take(t.Context(), f, req)
	require.Error(t, err)
	assert.Equal(t, "look into rulesdb for a safety backup: connection refused", err.Error())
	assert.Empty(t, *ran)
}
