// Package testenv is the environment aidb's own end-to-end tests and
// benchmark run aidb and its make targets with: the user's settings (of
// aidb, of its compose file, of the workflow's make targets, of the AWS
// SDK and of libpq) taken out, so that a run never reaches the user's
// backup folder, bucket or databases and does the same on every machine.
// A user's AIDB_BACKUP_DIR put the suite's backups in the user's folder;
// a MEMORYDB_PASSWORD changes the databases' password; YES=1 makes a
// prune target remove what the test expects it only to plan.
package testenv

import (
	"slices"
	"strings"
)

// prefixes are the families of settings taken out whole.
var prefixes = []string{"AIDB_", "AWS_", "PG", "COMPOSE_"}

// kept are the variables of those families a run keeps: where Debian's
// packages come from (the image builds), the soak's length, the bench's
// own settings, the binary it runs and its profile.
var kept = []string{"AIDB_DEBIAN_MIRROR", "AIDB_SOAK_CYCLES", "AIDB_BIN", "AIDB_CPUPROFILE"}

// settings are the other variables that change what aidb or a target
// does: those the compose file is interpolated from and those the
// workflow's targets read (internal/ops/adopt/workflow.mk); the test
// beside this file fails when one of theirs is missing here.
var settings = []string{
	// the compose file's
	"RULESDB_USER", "RULESDB_PASSWORD", "RULESDB_PORT", "MEMORYDB_USER", "MEMORYDB_PASSWORD", "MEMORYDB_PORT",
	"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD",
	// the workflow's
	"RULESDB", "MEMORYDB", "DB", "BACKUP", "BACKUP_FILE", "RULESDB_FILE", "MEMORYDB_FILE", "PULL", "NAME", "IMAGE",
	"ROLE_PASSWORDS", "VERIFY", "VERIFIED", "AMCHECK", "MAX_AGE", "JUNIT", "YES", "KEEP", "KEEP_HOURLY", "KEEP_DAILY",
	"KEEP_WEEKLY", "KEEP_MONTHLY", "KEEP_YEARLY", "FINISH", "ROLLBACK", "UNDO", "LATEST", "LSN", "TIME", "WINDOW",
	"SCHEDULE", "SHARD", "METRICS_ADDR", "NOTIFY_URL", "PING_URL",
}

// UserSetting says whether the variable name is one a run takes out.
func UserSetting(name string) bool {
	if slices.Contains(kept, name) || strings.HasPrefix(name, "AIDB_BENCH_") {
		return false
	}
	if slices.Contains(settings, name) {
		return true
	}
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) })
}

// Clean is environ (os.Environ's form) without the user's settings, and
// the names it took out, sorted.
func Clean(environ []string) (env, removed []string) {
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if UserSetting(name) {
			removed = append(removed, name)
			continue
		}
		env = append(env, kv)
	}
	slices.Sort(removed)
	return env, removed
}
