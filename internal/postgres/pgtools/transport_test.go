package pgtools

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --via helper where the system has no named pipes is refused, naming
// why and what to use; auto and stream are accepted there.
func TestParseTransportWithoutPipes(t *testing.T) {
	t.Parallel()
	_, err := parseTransport("helper", false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs named pipes")
	assert.Contains(t, err.Error(), "use stream")
	for _, s := range []string{"", "auto", "stream"} {
		_, err := parseTransport(s, false)
		assert.NoError(t, err, s)
	}
	got, err := parseTransport("helper", true)
	require.NoError(t, err)
	assert.Equal(t, TransportHelper, got)
	_, err = parseTransport("ftp", true)
	assert.ErrorContains(t, err, "use auto, helper or stream")
}
