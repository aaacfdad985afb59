package migrations

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
)

// upDatabases says which databases are up, and records who asked.
type upDatabases struct {
	up    map[string]bool
	asked []string
}

func (u *upDatabases) RequireReady(_ context.Context, db compose.Database) error {
	u.asked = append(u.asked, db.Name)
	if !u.up[db.Name] {
		return errors.New(db.Name + " is not up")
	}
	return nil
}

func (u *upDatabases) ConnString(db compose.Database) string {
	return "postgres://aidb@127.0.0.1:1/" + db.Name // never dialled: fn runs no migration
}

func TestEachSkipsDatabasesWithoutMigrationsAndStopsAtOneNotUp(t *testing.T) {
	d := &upDatabases{up: map[string]bool{"rulesdb": true, "memorydb": false}}
	var ran, skipped []string
	err := Each(t.Context(), d, []compose.Database{{Name: "rulesdb"}, {Name: "otherdb"}, {Name: "memorydb"}},
		EachOptions{NoMigrations: func(db string) { skipped = append(skipped, db) }},
		func(_ context.Context, db compose.Database, src Source, r *Runner) error {
			assert.NotNil(t, r)
			ran = append(ran, db.Name+" from "+src.Name)
			return nil
		})
	require.EqualError(t, err, "memorydb is not up")
	assert.Equal(t, []string{"rulesdb from (embedded) rulesdb"}, ran)
	assert.Equal(t, []string{"otherdb"}, skipped, "a database without migrations is told and skipped, not asked whether it is up")
	assert.Equal(t, []string{"rulesdb", "memorydb"}, d.asked)
}

func TestEachChecksEverySourceBeforeTouchingADatabase(t *testing.T) {
	d := &upDatabases{up: map[string]bool{"rulesdb": true, "memorydb": true}}
	missing := filepath.Join(t.TempDir(), "nope")
	err := Each(t.Context(), d, []compose.Database{{Name: "rulesdb"}, {Name: "memorydb", Migrations: missing}}, EachOptions{},
		func(context.Context, compose.Database, Source, *Runner) error {
			t.Error("ran with a bad source among the databases")
			return nil
		})
	require.Error(t, err)
	assert.Contains(t, err.Error(), missing)
	assert.Empty(t, d.asked, "no database touched")
}

func TestEachStopsAtTheFirstError(t *testing.T) {
	d := &upDatabases{up: map[string]bool{"rulesdb": true, "memorydb": true}}
	var ran []string
	err := Each(t.Context(), d, []compose.Database{{Name: "rulesdb"}, {Name: "memorydb"}}, EachOptions{},
		func(_ context.Context, db compose.Database, _ Source, _ *Runner) error {
			ran = append(ran, db.Name)
			return errors.New("migrate " + db.Name + ": failed")
		})
	require.EqualError(t, err, "migrate rulesdb: failed")
	assert.Equal(t, []string{"rulesdb"}, ran)
}
