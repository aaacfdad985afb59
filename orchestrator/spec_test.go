package orchestrator

import (
	"testing"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
)

func loadDefault(t *testing.T, env ...string) *compose.Project {
	t.Helper()
	p, err := compose.Load(t.Context(), compose.Options{WorkingDir: t.TempDir(), Env: env})
	require.NoError(t, err)
	return p
}

func TestContainerSpecFromCompose(t *testing.T) {
	t.Parallel()
	p := loadDefault(t, "AIDB_PROJECT=unit1", "RULESDB_PORT=61234")
	db, _ := p.Database("rulesdb")
	svc, _ := p.Service("rulesdb")

	spec, err := containerSpec(p, svc, ContainerName(p, db), RoleDatabase, "aidb.local/postgres:15", "h1")
	require.NoError(t, err)

	assert.Equal(t, "unit1-rulesdb", spec.Name)
	assert.Equal(t, "aidb.local/postgres:15", spec.Config.Image)
	assert.Equal(t, map[string]string{
		LabelProject: "unit1", LabelService: "rulesdb", LabelRole: RoleDatabase, LabelConfigHash: "h1",
	}, spec.Config.Labels)
	assert.Equal(t, []string{"POSTGRES_DB=rulesdb", "POSTGRES_PASSWORD=rules-local-dev", "POSTGRES_USER=rules", "TZ=Etc/UTC"}, spec.Config.Env)
	assert.Equal(t, "SIGINT", spec.Config.StopSignal)
	require.NotNil(t, spec.Config.Healthcheck)
	assert.Equal(t, "CMD-SHELL", spec.Config.Healthcheck.Test[0])

	port := network.MustParsePort("5432/tcp")
	require.Len(t, spec.HostConfig.PortBindings[port], 1)
	b := spec.HostConfig.PortBindings[port][0]
	assert.Equal(t, "127.0.0.1", b.HostIP.String(), "published on loopback only")
	assert.Equal(t, "61234", b.HostPort)

	assert.Equal(t, []mount.Mount{{Type: mount.TypeVolume, Source: "unit1_rulesdb-data", Target: "/var/lib/postgresql/data"}}, spec.HostConfig.Mounts)
	assert.Contains(t, spec.NetworkingConfig.EndpointsConfig, "unit1_default")
	assert.Equal(t, []string{"rulesdb"}, spec.NetworkingConfig.EndpointsConfig["unit1_default"].Aliases)
}

func TestConfigHashFollowsConfiguration(t *testing.T) {
	t.Parallel()
	a := loadDefault(t, "AIDB_PROJECT=unit2")
	b := loadDefault(t, "AIDB_PROJECT=unit2")
	c := loadDefault(t, "AIDB_PROJECT=unit2", "RULESDB_PASSWORD=other")
	sa, _ := a.Service("rulesdb")
	sb, _ := b.Service("rulesdb")
	sc, _ := c.Service("rulesdb")
	assert.Equal(t, configHash(a, sa), configHash(b, sb), "same configuration, same hash")
	assert.NotEqual(t, configHash(a, sa), configHash(c, sc), "a changed environment changes the hash")
}

func TestImageMajor(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]string{
		"postgres:15":                "15",
		"postgres:15.4-bookworm":     "15",
		"pgvector/pgvector:pg16":     "16",
		"localhost:5000/postgres:14": "14",
	} {
		got, err := ImageMajor(ref)
		require.NoError(t, err, ref)
		assert.Equal(t, want, got, ref)
	}
	for _, ref := range []string{"postgres", "postgres:latest", "localhost:5000/postgres"} {
		_, err := ImageMajor(ref)
		assert.Error(t, err, ref)
	}
}

func TestEngineHostIPAndRedact(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "127.0.0.1", engineHostIP("unix:///var/run/docker.sock", "0.0.0.0"))
	assert.Equal(t, "127.0.0.1", engineHostIP("unix:///var/run/docker.sock", "127.0.0.1"))
	assert.Equal(t, "10.1.2.3", engineHostIP("tcp://10.1.2.3:2376", "127.0.0.1"))
	assert.Equal(t, "build-box", engineHostIP("ssh://me@build-box", "0.0.0.0"))

	red := RedactURL("postgres://rules:s3cret@127.0.0.1:1/rulesdb?sslmode=disable")
	assert.NotContains(t, red, "s3cret")
	assert.Contains(t, red, "rules:xxxxx@127.0.0.1:1/rulesdb")
}

func TestRestartPolicy(t *testing.T) {
	t.Parallel()
	rp, err := restartPolicy("on-failure:3")
	require.NoError(t, err)
	assert.Equal(t, 3, rp.MaximumRetryCount)
	_, err = restartPolicy("sometimes")
	assert.ErrorContains(t, err, "use no, always")
}
