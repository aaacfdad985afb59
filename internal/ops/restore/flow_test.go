package restore

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
)

// flowLog records, in order, the steps a job takes; a step named in
// refuse fails.
type flowLog struct {
	log    []string
	refuse string
}

func (f *flowLog) step(name string) error {
	f.log = append(f.log, name)
	if name == f.refuse {
		return errors.New(name + " refused")
	}
	return nil
}

func (f *flowLog) steps() steps {
	return steps{
		preflight: func(_ context.Context, _ Server, req Request) (Plan, error) {
			if err := f.step("preflight " + req.DB.Name); err != nil {
				return Plan{}, err
			}
			return Plan{Request: req, Path: req.File, Size: 10, Warnings: []string{req.File + " has no manifest"}}, nil
		},
		full: func(_ context.Context, _ Server, p Plan) (Result, error) {
			p.Phase(PhaseLoad)
			p.Progress(5, 10)
			return Result{Database: p.DB.Name, File: p.File}, f.step("full " + p.DB.Name)
		},
		dataOnly: func(_ context.Context, _ Server, p Plan) (Result, error) {
			return Result{Database: p.DB.Name, File: p.File}, f.step("data-only " + p.DB.Name)
		},
		all: func(_ context.Context, _ Server, plans []Plan) ([]Result, error) {
			var out []Result
			for _, p := range plans {
				out = append(out, Result{Database: p.DB.Name, File: p.File})
			}
			return out, f.step("all")
		},
	}
}

// job restores each named database from "<db>.sql", recording its
// callbacks in f.
func (f *flowLog) job(all, dataOnly bool, names ...string) Job {
	j := Job{
		All:          all,
		Warn:         func(w string) { f.log = append(f.log, "warn "+w) },
		Confirm:      func(plans []Plan) error { return f.step("confirm " + planNames(plans)) },
		SafetyBackup: func(_ context.Context, plans []Plan) error { return f.step("safety " + planNames(plans)) },
		Progress:     func(p Plan, _, _ int64) { f.log = append(f.log, "progress "+p.DB.Name) },
		Phase:        func(p Plan, ph Phase) { f.log = append(f.log, "phase "+p.DB.Name+" "+string(ph)) },
	}
	for _, n := range names {
		j.Requests = append(j.Requests, Request{DB: compose.Database{Name: n}, File: n + ".sql", DataOnly: dataOnly})
	}
	return j
}

func planNames(plans []Plan) string {
	s := ""
	for _, p := range plans {
		s += p.DB.Name + ";"
	}
	return s
}

func TestRunChecksEverythingThenConfirmsThenBacksUpThenRestores(t *testing.T) {
	f := &flowLog{}
	res, err := f.steps().run(t.Context(), nil, f.job(true, false, "rulesdb", "memorydb"))
	require.NoError(t, err)
	assert.Equal(t, []string{
		"preflight rulesdb", "warn rulesdb.sql has no manifest",
		"preflight memorydb", "warn memorydb.sql has no manifest",
		"confirm rulesdb;memorydb;",
		"safety rulesdb;memorydb;",
		"all",
	}, f.log)
	assert.Equal(t, []Result{{Database: "rulesdb", File: "rulesdb.sql"}, {Database: "memorydb", File: "memorydb.sql"}}, res)
}

func TestRunDispatchesOneRestoreByItsKind(t *testing.T) {
	f := &flowLog{}
	res, err := f.steps().run(t.Context(), nil, f.job(false, false, "rulesdb"))
	require.NoError(t, err)
	assert.Equal(t, []string{"preflight rulesdb", "warn rulesdb.sql has no manifest", "confirm rulesdb;", "safety rulesdb;",
		"phase rulesdb load", "progress rulesdb", "full rulesdb"}, f.log, "the restore's progress reaches the job's callbacks with its plan")
	assert.Equal(t, []Result{{Database: "rulesdb", File: "rulesdb.sql"}}, res)

	f = &flowLog{}
	_, err = f.steps().run(t.Context(), nil, f.job(false, true, "memorydb"))
	require.NoError(t, err)
	assert.Equal(t, "data-only memorydb", f.log[len(f.log)-1])
}

func TestRunRefusalsRestoreNothing(t *testing.T) {
	for _, tc := range []struct {
		refuse string
		want   []string
	}{
		// The second preflight's refusal: nobody is asked, nothing backed up.
		{"preflight memorydb", []string{"preflight rulesdb", "warn rulesdb.sql has no manifest", "preflight memorydb"}},
		{"confirm rulesdb;memorydb;", []string{"preflight rulesdb", "warn rulesdb.sql has no manifest", "preflight memorydb",
			"warn memorydb.sql has no manifest", "confirm rulesdb;memorydb;"}},
		{"safety rulesdb;memorydb;", []string{"preflight rulesdb", "warn rulesdb.sql has no manifest", "preflight memorydb",
			"warn memorydb.sql has no manifest", "confirm rulesdb;memorydb;", "safety rulesdb;memorydb;"}},
	} {
		f := &flowLog{refuse: tc.refuse}
		res, err := f.steps().run(t.Context(), nil, f.job(true, false, "rulesdb", "memorydb"))
		require.EqualError(t, err, tc.refuse+" refused")
		assert.Empty(t, res)
		assert.Equal(t, tc.want, f.log, "refused at %s", tc.refuse)
	}
}

func TestRunWithoutASafetyBackupOrAQuestion(t *testing.T) {
	f := &flowLog{}
	j := f.job(false, false, "rulesdb")
	j.Confirm, j.SafetyBackup, j.Warn = nil, nil, nil
	_, err := f.steps().run(t.Context(), nil, j)
	require.NoError(t, err)
	assert.Equal(t, []string{"preflight rulesdb", "phase rulesdb load", "progress rulesdb", "full rulesdb"}, f.log)
}

func TestRunRefusesSeveralRequestsWithoutAll(t *testing.T) {
	f := &flowLog{}
	_, err := f.steps().run(t.Context(), nil, f.job(false, false, "rulesdb", "memorydb"))
	require.Error(t, err)
	assert.Empty(t, f.log, "nothing checked, nothing restored")
	_, err = f.steps().run(t.Context(), nil, Job{All: true})
	require.Error(t, err)
}
