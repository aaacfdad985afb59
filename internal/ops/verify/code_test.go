package verify

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/aidb/aidb/internal/fault"
)

func TestCodeMapsResultsToExitCodes(t *testing.T) {
	t.Parallel()
	pass, differ, failed := threeResults[0], threeResults[1], threeResults[2]
	tests := []struct {
		name    string
		results []Result
		kind    fault.Kind
		msg     string
	}{
		{name: "none", kind: fault.Failed},
		{name: "all equal", results: []Result{pass, pass}, kind: fault.Failed},
		{name: "a difference", results: []Result{pass, differ}, kind: fault.Differs,
			msg: "1 of 2 backup(s) differ from their manifests: [backups/memorydb-20250102-030405.sql]"},
		{name: "could not verify", results: []Result{failed, pass}, kind: fault.Failed,
			msg: "could not verify 1 of 2 backup(s): [backups/rulesdb-data-20250102-030405.sql]"},
		// A file that could not be verified may hide a difference: the run
		// failed, rather than found one.
		{name: "could not verify wins over a difference", results: []Result{differ, failed, pass}, kind: fault.Failed,
			msg: "could not verify 1 of 3 backup(s): [backups/rulesdb-data-20250102-030405.sql]"},
		// A result with an error is not also counted as differing, though
		// it is not OK.
		{name: "an error is not a difference", results: []Result{failed, failed}, kind: fault.Failed,
			msg: "could not verify 2 of 2 backup(s): [backups/rulesdb-data-20250102-030405.sql backups/rulesdb-data-20250102-030405.sql]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Code(t.Context(), tt.results)
			if tt.msg == "" {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tt.msg)
			// cmd maps the kind to the exit code: 3 for a difference, 1
			// for a failure.
			assert.Equal(t, tt.kind, fault.KindOf(err))
		})
	}
}

func TestCodeAfterCtrlCIsInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := Code(ctx, []Result{threeResults[0], threeResults[1]})
	assert.ErrorIs(t, err, context.Canceled, "cmd maps Ctrl-C to 130")
}
