package pgrun

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// auto chooses the helper only for a local engine on a system with named
// pipes; without pipes (Windows) it chooses the exec stream, as for a
// remote engine. A forced transport is kept.
func TestResolveTransport(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		t     Transport
		host  string
		pipes bool
		want  Transport
	}{
		{"local engine with pipes", TransportAuto, "unix:///var/run/docker.sock", true, TransportHelper},
		{"windows engine with pipes", TransportAuto, "npipe:////./pipe/docker_engine", true, TransportHelper},
		{"remote engine", TransportAuto, "tcp://10.0.0.5:2376", true, TransportStream},
		{"local engine without pipes", TransportAuto, "unix:///var/run/docker.sock", false, TransportStream},
		{"windows engine without pipes", TransportAuto, "npipe:////./pipe/docker_engine", false, TransportStream},
		{"forced stream", TransportStream, "unix:///var/run/docker.sock", true, TransportStream},
		{"forced helper", TransportHelper, "tcp://10.0.0.5:2376", true, TransportHelper},
	} {
		assert.Equal(t, c.want, resolve(c.t, c.host, c.pipes), c.name)
	}
}

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
