package seed

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRefusedErrorSaysWhyAndIsItsSentinel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err      *RefusedError
		sentinel error
		want     string
	}{
		{&RefusedError{Database: "rulesdb", Table: "rules", Err: ErrNotMigrated}, ErrNotMigrated,
			"database is not migrated: rulesdb has no table rules"},
		{&RefusedError{Database: "memorydb", Table: "memories", Err: ErrNotEmpty}, ErrNotEmpty,
			"database already holds data: memorydb.memories has rows; seed fills empty databases only"},
	} {
		assert.Equal(t, tc.want, tc.err.Error())
		assert.True(t, errors.Is(tc.err, tc.sentinel), tc.want)
		assert.NotContains(t, tc.err.Error(), "make -f", "make targets are cmd's to name")
		assert.NotContains(t, tc.err.Error(), "aidb ", "commands are cmd's to name")
	}
}
