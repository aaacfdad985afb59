package pgimage

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecipeFor(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]string{
		"postgres:15":                                   "aidb.local/postgres:15",
		"postgres:15.4-bookworm":                        "aidb.local/postgres:15",
		"docker.io/library/postgres:17":                 "aidb.local/postgres:17",
		"postgres:17.2":                                 "aidb.local/postgres:17",
		"pgvector/pgvector:pg17":                        "aidb.local/pgvector:pg17",
		"pgvector/pgvector:0.8.0-pg17":                  "aidb.local/pgvector:pg17",
		"docker.io/pgvector/pgvector:pg17":              "aidb.local/pgvector:pg17",
		"aidb.local/postgres:15":                        "aidb.local/postgres:15",
		"aidb.local/pgvector:pg17":                      "aidb.local/pgvector:pg17",
		"aidb.local/postgres:17":                        "aidb.local/postgres:17",
		"pgvector/pgvector:pg17-trixie":                 "aidb.local/pgvector:pg17",
		"postgres:17-trixie":                            "aidb.local/postgres:17",
		"library/postgres:15":                           "aidb.local/postgres:15",
		"docker.io/pgvector/pgvector:0.8.0-pg17-trixie": "aidb.local/pgvector:pg17",
	} {
		r, err := RecipeFor(ref)
		if assert.NoError(t, err, ref) {
			assert.Equal(t, want, r.Tag, ref)
		}
	}
	for _, ref := range []string{"postgres:16", "postgres:latest", "postgres", "pgvector/pgvector:pg15", "mysql:8", "postgres@sha256:" + sixtyFour, "Not A Reference", "someone/postgres:15"} {
		_, err := RecipeFor(ref)
		var ue *UnbuildableError
		require.ErrorAs(t, err, &ue, ref)
		assert.Equal(t, []string{"postgres:15", "postgres:17", "pgvector/pgvector:pg17"}, ue.Known)
		assert.Contains(t, err.Error(), "it builds postgres:15, postgres:17, pgvector/pgvector:pg17")
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// pgvector's image is postgres:17's plus one package, from the same release.
func TestRecipesShareTheirBase(t *testing.T) {
	t.Parallel()
	v, err := RecipeFor("pgvector/pgvector:pg17")
	require.NoError(t, err)
	base, err := RecipeFor("postgres:17")
	require.NoError(t, err)
	require.NotNil(t, v.Base)
	assert.Equal(t, base, *v.Base)
	assert.Equal(t, base.Suite, v.Suite)
	assert.Equal(t, []string{"postgresql-17-pgvector"}, v.Packages)
	pg15, err := RecipeFor("postgres:15")
	require.NoError(t, err)
	assert.Equal(t, "bookworm", pg15.Suite)
	assert.Equal(t, "trixie", base.Suite)
}

func TestLayerDockerfile(t *testing.T) {
	t.Parallel()
	v, _ := RecipeFor("pgvector/pgvector:pg17")
	df, err := layerDockerfile(v, "")
	require.NoError(t, err)
	assert.Contains(t, string(df), "FROM aidb.local/postgres:17\n")
	assert.Contains(t, string(df), "apt-get install -y -q --no-install-recommends postgresql-17-pgvector")
	assert.Contains(t, string(df), "LABEL aidb.image=pgvector aidb.postgres.major=17")
	assert.NotContains(t, string(df), "sources.list")
	df, err = layerDockerfile(v, "http://mirror.example/debian")
	require.NoError(t, err)
	assert.Contains(t, string(df), "echo 'deb http://mirror.example/debian trixie main' > /etc/apt/sources.list")
	_, err = layerDockerfile(v, "http://x/'; rm -rf /")
	assert.Error(t, err)
}
