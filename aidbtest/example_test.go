package aidbtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/aidb/aidb/aidbtest"
)

// A test gets a fresh rulesdb of its own, made from the newest snapshot
// (aidb snapshot rulesdb), and removed when the test ends. It needs the
// databases up (make -f Makefile.ai ai-db-up) and aidb on PATH, so this
// example only compiles; it has no output to check.
func ExampleClone() {
	testRules := func(t *testing.T) {
		t.Parallel()
		db := aidbtest.Clone(t, "rulesdb")
		conn, err := pgx.Connect(t.Context(), db.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close(context.WithoutCancel(t.Context())) }()
		if _, err := conn.Exec(t.Context(), "DELETE FROM rules"); err != nil {
			t.Fatal(err) // only this test's clone lost its rules
		}
	}
	_ = testRules
}
