package repository

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/fault"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in     string
		want   URL
		str    string
		object string
	}{
		{"s3://backups", URL{"backups", ""}, "s3://backups", "s3://backups/f.sql"},
		{"s3://backups/", URL{"backups", ""}, "s3://backups", "s3://backups/f.sql"},
		{"s3://team.backups-1/aidb", URL{"team.backups-1", "aidb/"}, "s3://team.backups-1/aidb", "s3://team.backups-1/aidb/f.sql"},
		{"s3://b12/a/b/", URL{"b12", "a/b/"}, "s3://b12/a/b", "s3://b12/a/b/f.sql"},
	} {
		got, err := ParseURL(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
		assert.Equal(t, tc.str, got.String(), tc.in)
		assert.Equal(t, tc.object, got.Object("f.sql"), tc.in)
		assert.Equal(t, tc.want.Prefix+"f.sql", got.key("f.sql"))
	}
	for in, want := range map[string]string{
		"backups":          "not an s3:// URL",
		"https://x/y":      "not an s3:// URL",
		"s3://":            `"" is no S3 bucket name`,
		"s3://Backups":     `"Backups" is no S3 bucket name`,
		"s3://ab":          `"ab" is no S3 bucket name`,
		"s3://a_b/x":       `"a_b" is no S3 bucket name`,
		"s3://a..b/x":      `"a..b" is no S3 bucket name`,
		"s3://bucket/a//b": "empty folder",
	} {
		_, err := ParseURL(in)
		assert.ErrorContains(t, err, want, in)
		assert.Equal(t, fault.Invalid, fault.KindOf(err), in)
	}
}

func TestParseObject(t *testing.T) {
	t.Parallel()
	u, name, err := ParseObject("s3://backups/aidb/rulesdb-20260301-000000.sql.zst")
	require.NoError(t, err)
	assert.Equal(t, URL{"backups", "aidb/"}, u)
	assert.Equal(t, "rulesdb-20260301-000000.sql.zst", name)
	u, name, err = ParseObject("s3://backups/r.sql")
	require.NoError(t, err)
	assert.Equal(t, URL{"backups", ""}, u)
	assert.Equal(t, "r.sql", name)
	for _, in := range []string{"s3://backups", "s3://backups/", "s3://backups/aidb/", "backups/r.sql"} {
		_, _, err := ParseObject(in)
		assert.ErrorContains(t, err, "names no backup in a repository", in)
		assert.Equal(t, fault.Invalid, fault.KindOf(err), in)
	}
	assert.True(t, IsURL("S3://x/y"))
	assert.False(t, IsURL("backups/s3://x"))
}
