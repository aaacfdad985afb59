package fault

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

// kinded is a package's own typed error that knows its kind.
type kinded struct{ inner error }

func (e *kinded) Error() string { return "kinded" }
func (e *kinded) Unwrap() error { return e.inner }
func (e *kinded) Kind() Kind    { return NotRunning }

func TestKindOf(t *testing.T) {
	t.Parallel()
	bad := BadInput(errors.New("bad"))
	for _, tc := range []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, Failed},
		{"plain", errors.New("boom"), Failed},
		{"bad input", bad, Invalid},
		{"wrapped", fmt.Errorf("up rulesdb: %w", bad), Invalid},
		{"difference", New(Differs, errors.New("table t differs")), Differs},
		{"typed error of a package", fmt.Errorf("backup: %w", &kinded{}), NotRunning},
		{"outermost wins", New(Busy, &kinded{inner: bad}), Busy},
		{"typed error over what it wraps", &kinded{inner: bad}, NotRunning},
		{"first of a join", errors.Join(errors.New("plain"), New(Differs, errors.New("d")), bad), Differs},
	} {
		assert.Equal(t, tc.want, KindOf(tc.err), tc.name)
	}
}

func TestNewKeepsTheMessageAndNil(t *testing.T) {
	t.Parallel()
	inner := errors.New("rows -1: bad")
	err := New(Invalid, inner)
	assert.Equal(t, "rows -1: bad", err.Error())
	assert.ErrorIs(t, err, inner)
	assert.NoError(t, New(Invalid, nil))
	assert.NoError(t, BadInput(nil))
}

func TestKindString(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for k := Failed; k <= Stale; k++ {
		assert.NotEqual(t, "unknown", k.String(), "kind %d", k)
		names[k.String()] = true
	}
	assert.Len(t, names, int(Stale)+1, "every kind has its own name")
	assert.Equal(t, "unknown", Kind(200).String())
}
