package testenv

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every variable the compose file is interpolated from and every one the
// workflow's targets read is a user setting, but for the make names that
// the environment cannot change (assigned with =, or parts of names).
func TestEveryVariableOfTheComposeFileAndTheWorkflowIsTakenOut(t *testing.T) {
	t.Parallel()
	notSettings := map[string]bool{
		"AIDB": true, "AIDB_BUILD": true, "PHONY": true, // make's own
		"BACKUP_FLAGS": true, "KEEP_FLAGS": true, "VERIFY_FLAG": true, "RESTORE_ALL_ARGS": true, "RESTORE_ALL_VARS": true,
		"RULESDB_DB": true, "MEMORYDB_DB": true, // assigned with =: the environment does not change them
		"KEEP_": true, "HOURLY": true, "DAILY": true, "WEEKLY": true, "MONTHLY": true, "YEARLY": true, // parts of KEEP_*
	}
	mk, err := os.ReadFile("../ops/adopt/workflow.mk")
	require.NoError(t, err)
	var code []string
	for line := range strings.Lines(string(mk)) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			code = append(code, line)
		}
	}
	names := regexp.MustCompile(`\b[A-Z][A-Z0-9_]+\b`).FindAllString(strings.Join(code, ""), -1)
	compose, err := os.ReadFile("../../compose/docker-compose.yaml")
	require.NoError(t, err)
	for _, m := range regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(string(compose), -1) {
		names = append(names, m[1])
	}
	require.Contains(t, names, "YES", "the workflow was read")
	require.Contains(t, names, "MEMORYDB_PASSWORD", "the compose file was read")
	for _, n := range names {
		if !notSettings[n] {
			assert.True(t, UserSetting(n), "%s changes what aidb or a target does: add it to settings", n)
		}
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	env, removed := Clean([]string{"PATH=/bin", "AIDB_BACKUP_DIR=/home/u/backups", "AIDB_DEBIAN_MIRROR=http://m", "AIDB_BENCH_SIZE=16MB",
		"AWS_PROFILE=prod", "PGPASSWORD=x", "YES=1", "MEMORYDB_PASSWORD=p", "CI=true", "DOCKER_HOST=unix:///d.sock", "HOME=/root"})
	assert.Equal(t, []string{"PATH=/bin", "AIDB_DEBIAN_MIRROR=http://m", "AIDB_BENCH_SIZE=16MB", "CI=true", "DOCKER_HOST=unix:///d.sock", "HOME=/root"}, env)
	assert.Equal(t, []string{"AIDB_BACKUP_DIR", "AWS_PROFILE", "MEMORYDB_PASSWORD", "PGPASSWORD", "YES"}, removed)
}
