//go:build !linux

package pgimage

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Off Linux a build stops before it creates or installs anything, saying
// why and what to do instead.
func TestBuildNeedsLinux(t *testing.T) {
	t.Parallel()
	_, err := Build(t.Context(), nil, Options{Recipe: postgres15})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs Linux (this is "+runtime.GOOS+")")
	assert.Contains(t, err.Error(), "docker load")
}
