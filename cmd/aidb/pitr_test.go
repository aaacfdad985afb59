package main

import (
	"testing"

	"github.com/aidb/aidb/internal/fault"
)

// restore's point-in-time flags: one of them, one database; a bad time is
// bad input before anything is opened.
func TestRestoreTimeOptionsCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		o    restoreTimeOptions
		args []string
		ok   bool
	}{
		{"to-time", restoreTimeOptions{toTime: "2026-12-05 15:01:30"}, []string{"rulesdb"}, true},
		{"to-latest", restoreTimeOptions{toLatest: true}, []string{"rulesdb"}, true},
		{"finish", restoreTimeOptions{finish: true}, []string{"rulesdb"}, true},
		{"two of them", restoreTimeOptions{toLatest: true, rollback: true}, []string{"rulesdb"}, false},
		{"no database", restoreTimeOptions{toLatest: true}, nil, false},
		{"a file too", restoreTimeOptions{toLatest: true}, []string{"rulesdb", "latest"}, false},
		{"no time", restoreTimeOptions{toTime: "soon"}, []string{"rulesdb"}, false},
	} {
		_, err := tc.o.check(tc.args)
		if tc.ok != (err == nil) || (err != nil && fault.KindOf(err) != fault.Invalid) {
			t.Errorf("%s: check = %v; want ok %t, else bad input", tc.name, err, tc.ok)
		}
	}
	if (&restoreTimeOptions{}).set() {
		t.Error("no point-in-time flag counts as set")
	}
}
