package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// A repository URL that names no backup, given to restore or verify, is
// refused before anything (the engine included) is touched.
func TestRestoreAndVerifyOfABadURL(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock") // never reached
	for _, url := range []string{"s3://team-backups/", "s3://No_Such/rulesdb-20260301-000000.sql.zst"} {
		for _, args := range [][]string{
			{"restore", "rulesdb", url},
			{"restore", "--all", "rulesdb=" + url},
			{"verify", url},
		} {
			code, _, stderr := runAidb(t, args...)
			assert.Equal(t, 2, code, "%v: %s", args, stderr)
			assert.Regexp(t, "names no backup in a repository|is no S3 bucket name", stderr, "%v", args)
			assert.NotContains(t, stderr, "Docker engine", "%v: refused before contacting the engine", args)
		}
	}
}

// push without a repository, and a bad repository URL, are bad input
// naming the setting.
func TestPushNeedsARepository(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	t.Setenv("AIDB_CONFIG", "")
	t.Setenv("AIDB_BACKUP_DIR", t.TempDir())
	t.Setenv("AIDB_REPOSITORY", "")
	code, _, stderr := runAidb(t, "push")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, "set AIDB_REPOSITORY=s3://BUCKET[/PREFIX]")

	t.Setenv("AIDB_REPOSITORY", "s3://No_Such")
	for _, args := range [][]string{{"push"}, {"list"}, {"prune"}} {
		code, _, stderr = runAidb(t, args...)
		assert.Equal(t, 2, code, "%v: %s", args, stderr)
		assert.Contains(t, stderr, `AIDB_REPOSITORY: repository "s3://No_Such": "No_Such" is no S3 bucket name`, "%v", args)
	}
	code, _, stderr = runAidb(t, "pull", "s3://bucket")
	assert.Equal(t, 2, code, stderr)
	assert.Contains(t, stderr, "names no backup in a repository")
}

// A bad keep rule names the setting it came from.
func TestPruneNamesTheBadKeepSetting(t *testing.T) {
	t.Setenv("AIDB_COMPOSE_FILE", "")
	t.Setenv("AIDB_CONFIG", "")
	t.Setenv("AIDB_BACKUP_DIR", t.TempDir())
	t.Setenv("AIDB_REPOSITORY", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"prune", "--keep-daily", "-1"}, "--keep-daily: keep-daily -1 is negative"},
		{[]string{"prune", "--make-target=ai-db-prune", "--keep-weekly", "-2"}, "KEEP_WEEKLY: keep-weekly -2 is negative"},
		{[]string{"prune", "--keep-last", "0"}, "--keep-last: every keep rule is 0"},
		{[]string{"prune", "--keep-daily", "0"}, "--keep-daily: every keep rule is 0"}, // not --keep-last, which was not given
	} {
		code, _, stderr := runAidb(t, tc.args...)
		assert.Equal(t, 2, code, "%v: %s", tc.args, stderr)
		assert.Contains(t, stderr, tc.want, "%v", tc.args)
		assert.Contains(t, stderr, "nothing was removed", "%v", tc.args)
	}
	code, _, stderr := runAidb(t, "prune", "--keep-daily", "3")
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "policy: keep-daily 3", "the flags given are the whole policy")
	code, _, stderr = runAidb(t, "prune")
	assert.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "policy: keep-last 10", "no flag and no aidb.yaml rule: keep-last 10")
}
