package seed

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
)

// upDatabases says which databases are up.
type upDatabases map[string]bool

func (u upDatabases) RequireReady(_ context.Context, db compose.Database) error {
	if !u[db.Name] {
		return errors.New(db.Name + " is not up")
	}
	return nil
}

func (u upDatabases) ConnString(db compose.Database) string { return "postgres://" + db.Name }

// fakeSeed seeds every database but those holding data (full), recording
// which it was asked to seed.
func fakeSeed(full map[string]bool, asked *[]string) seedFunc {
	return func(_ context.Context, connString string, s Seeder, rows int, progress func(string, int64)) (Result, error) {
		*asked = append(*asked, fmt.Sprintf("%s %s %d", connString, s.Database, rows))
		if full[s.Database] {
			return Result{}, fmt.Errorf("%w: %s has rows", ErrNotEmpty, s.Database)
		}
		if progress != nil {
			progress("rules", int64(rows))
		}
		return Result{Database: s.Database, Rows: map[string]int64{"rules": int64(rows)}, Duration: time.Second}, nil
	}
}

func databases(names ...string) []compose.Database {
	out := make([]compose.Database, len(names))
	for i, n := range names {
		out[i] = compose.Database{Name: n}
	}
	return out
}

func TestRunSeedsEachInOrderAndTells(t *testing.T) {
	var asked, told []string
	var done []Outcome
	out, err := run(t.Context(), upDatabases{"rulesdb": true, "memorydb": true}, databases("rulesdb", "memorydb"), Options{
		Rows:     7,
		Progress: func(db, table string, n int64) { told = append(told, fmt.Sprintf("%s %s %d", db, table, n)) },
		Done:     func(o Outcome) { done = append(done, o) },
	}, fakeSeed(nil, &asked))
	require.NoError(t, err)
	assert.Equal(t, []string{"postgres://rulesdb rulesdb 7", "postgres://memorydb memorydb 7"}, asked)
	assert.Equal(t, []string{"rulesdb rules 7", "memorydb rules 7"}, told)
	assert.Equal(t, []Outcome{
		{Database: "rulesdb", Seeded: true, Rows: map[string]int64{"rules": 7}, Duration: time.Second, Seconds: 1},
		{Database: "memorydb", Seeded: true, Rows: map[string]int64{"rules": 7}, Duration: time.Second, Seconds: 1},
	}, out)
	assert.Equal(t, out, done)
}

func TestRunRefusesADatabaseWithoutSampleDataBeforeTouchingAny(t *testing.T) {
	var asked []string
	_, err := run(t.Context(), upDatabases{"rulesdb": true}, databases("rulesdb", "otherdb"), Options{Rows: 1}, fakeSeed(nil, &asked))
	require.ErrorIs(t, err, ErrNoSampleData)
	assert.Equal(t, "seed otherdb: sample data exists only for the default schema's rulesdb and memorydb", err.Error())
	assert.Empty(t, asked)
}

func TestRunADatabaseHoldingData(t *testing.T) {
	var asked []string
	full := map[string]bool{"rulesdb": true}
	up := upDatabases{"rulesdb": true, "memorydb": true}

	out, err := run(t.Context(), up, databases("rulesdb", "memorydb"), Options{Rows: 1}, fakeSeed(full, &asked))
	require.ErrorIs(t, err, ErrNotEmpty, "refused without IfEmpty")
	assert.Empty(t, out)
	assert.Len(t, asked, 1, "the next database is not seeded")

	asked = nil
	out, err = run(t.Context(), up, databases("rulesdb", "memorydb"), Options{Rows: 1, IfEmpty: true}, fakeSeed(full, &asked))
	require.NoError(t, err)
	require.Len(t, out, 2)
	assert.Equal(t, Outcome{Database: "rulesdb", Rows: map[string]int64{}}, out[0], "skipped: not seeded, no rows (an empty map, {} in JSON)")
	assert.True(t, out[1].Seeded)
}

func TestRunStopsAtADatabaseThatIsNotUp(t *testing.T) {
	var asked []string
	out, err := run(t.Context(), upDatabases{"memorydb": true}, databases("memorydb", "rulesdb"), Options{Rows: 1}, fakeSeed(nil, &asked))
	require.EqualError(t, err, "rulesdb is not up")
	assert.Len(t, out, 1)
	assert.Equal(t, []string{"postgres://memorydb memorydb 1"}, asked)
}
