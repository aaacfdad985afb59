package exitcode

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOf(t *testing.T) {
	t.Parallel()
	assert.Equal(t, OK, Of(nil))
	assert.Equal(t, Failed, Of(errors.New("boom")))
	assert.Equal(t, Usage, Of(BadInput(errors.New("bad"))))
	assert.Equal(t, Usage, Of(fmt.Errorf("wrapped: %w", BadInput(errors.New("bad")))))
	assert.Equal(t, Differs, Of(&Error{Code: Differs, Err: errors.New("table t differs")}))
	assert.Equal(t, Interrupted, Of(fmt.Errorf("up: %w", context.Canceled)))
	assert.NoError(t, BadInput(nil))
}
