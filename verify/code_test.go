package verify

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/aidb/aidb/exitcode"
)

func TestCodeMapsResultsToExitCodes(t *testing.T) {
	t.Parallel()
	pass, differ, failed := threeResults[0], threeResults[1], threeResults[2]
	tests := []struct {
		name    string
		results []Result
		code    int
		msg     string
	}{
		{name: "none", code: exitcode.OK},
		{name: "all equal", results: []Result{pass, pass}, code: exitcode.OK},
		{name: "a difference", results: []Result{pass, differ}, code: exitcode.Differs,
			msg: "1 of 2 backup(s) differ from their manifests: [backups/memorydb-20250102-030405.sql]"},
		{name: "could not verify", results: []Result{failed, pass}, code: exitcode.Failed,
			msg: "could not verify 1 of 2 backup(s): [backups/rulesdb-data-20250102-030405.sql]"},
		// A file that could not be verified may hide a difference: the run
		// failed, rather than found one.
		{name: "could not verify wins over a difference", results: []Result{differ, failed, pass}, code: exitcode.Failed,
			msg: "could not verify 1 of 3 backup(s): [backups/rulesdb-data-20250102-030405.sql]"},
		// A result with an error is not also counted as differing, though
		// it is not OK.
		{name: "an error is not a difference", results: []Result{failed, failed}, code: exitcode.Failed,
			msg: "could not verify 2 of 2 backup(s): [backups/rulesdb-data-20250102-030405.sql backups/rulesdb-data-20250102-030405.sql]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Code(t.Context(), tt.results)
			assert.Equal(t, tt.code, exitcode.Of(err))
			if tt.msg == "" {
				assert.NoError(t, err)
			} else {
				assert.EqualError(t, err, tt.msg)
			}
		})
	}
}

func TestCodeAfterCtrlCIsInterrupted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := Code(ctx, []Result{threeResults[0], threeResults[1]})
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, exitcode.Interrupted, exitcode.Of(err))
}
