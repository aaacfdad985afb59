package exitcode

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/aidb/aidb/fault"
)

func TestKinds(t *testing.T) {
	t.Parallel()
	assert.Equal(t, fault.Invalid, fault.KindOf(BadInput(errors.New("bad"))))
	assert.Equal(t, fault.Invalid, fault.KindOf(fmt.Errorf("wrapped: %w", &Error{Code: Usage, Err: errors.New("bad")})))
	assert.Equal(t, fault.Differs, fault.KindOf(&Error{Code: Differs, Err: errors.New("table t differs")}))
	assert.Equal(t, fault.Failed, fault.KindOf(&Error{Code: 1, Err: errors.New("boom")}))
	assert.NoError(t, BadInput(nil))
}
