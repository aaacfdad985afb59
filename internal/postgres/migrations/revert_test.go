package migrations

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestReverts(t *testing.T) {
	t.Parallel()
	at := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name string
		v    int64
		to   *int64
		want bool
	}{
		{"nothing applied, down one", 0, nil, false},
		{"nothing applied, down to 0", 0, at(0), false},
		{"down one", 3, nil, true},
		{"down to all", 3, at(0), true},
		{"down to below", 3, at(2), true},
		{"down to the version itself", 3, at(3), false},
		{"down to above", 3, at(5), false},
		{"a negative target still counts", 3, at(-1), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, Reverts(tc.v, tc.to))
		})
	}
}
