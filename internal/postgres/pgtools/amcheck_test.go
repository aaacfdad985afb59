package pgtools

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// pg_amcheck prints one header line per relation it found damaged and
// indents what it found below it; each relation becomes one report.
func TestAmcheckReportsOnePerRelation(t *testing.T) {
	t.Parallel()
	out := `btree index "rulesdb.public.t_r_idx":
    ERROR:  heap tuple (0,1) from table "t" lacks matching index tuple within index "t_r_idx"
    HINT:  Retrying verification using the function bt_index_parent_check() might provide a more specific error.
heap table "rulesdb.public.u", block 0, offset 3:
    xmin 100 precedes relation freeze threshold 0:700

`
	assert.Equal(t, []string{
		`btree index "rulesdb.public.t_r_idx": ERROR:  heap tuple (0,1) from table "t" lacks matching index tuple within index "t_r_idx" HINT:  Retrying verification using the function bt_index_parent_check() might provide a more specific error.`,
		`heap table "rulesdb.public.u", block 0, offset 3: xmin 100 precedes relation freeze threshold 0:700`,
	}, amcheckReports(out))
	assert.Empty(t, amcheckReports(""), "no output, no report")
	assert.Empty(t, amcheckReports("    an indented line with no header\n"), "a detail line without its relation is not a report of its own")
}
