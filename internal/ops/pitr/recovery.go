package pitr

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/orchestrator"
)

// RecoverySettings are the server settings (postgres -c name=value) a
// recovering server runs with: restore_command copies segments from the
// stream folder mounted at orchestrator.WALMount, else from its
// FetchedFolder (a segment in neither makes cp fail, which tells
// PostgreSQL the archive ends there), and with a target
// time, recovery stops before the first transaction that committed after
// it and the server is promoted. With the zero target it replays every
// whole segment and is promoted at their end (--to-latest). They go on the
// command line, not into the data directory, so the database's own
// container, started later on the same volume, runs without them.
func RecoverySettings(target time.Time) []string {
	out := []string{"-c", "restore_command=cp " + orchestrator.WALMount + "/%f %p 2>/dev/null || cp " + orchestrator.WALMount + "/" + FetchedFolder + "/%f %p"}
	if !target.IsZero() {
		out = append(out,
			"-c", "recovery_target_time="+target.UTC().Format("2006-01-02 15:04:05.999999")+"+00",
			"-c", "recovery_target_action=promote")
	}
	return out
}

// RecoverySettingsLSN are RecoverySettings for a target WAL position:
// recovery stops once the record at target is replayed, and the server is
// promoted.
func RecoverySettingsLSN(target LSN) []string {
	return append(RecoverySettings(time.Time{}), "-c", "recovery_target_lsn="+target.String(), "-c", "recovery_target_action=promote")
}

// DefaultMaxSlotWALKeep is the max_slot_wal_keep_size aidb pitr enable
// sets unless told otherwise: the most WAL the slot may hold back on the
// server's disk when the stream falls behind (stopped sidecar, full
// folder). Past it the server drops the slot's claim, the stream breaks
// and a new base backup is needed; the disk never fills.
const DefaultMaxSlotWALKeep = "2GB"

var sizeRE = regexp.MustCompile(`^[1-9][0-9]{0,9}(kB|MB|GB|TB)$`)

// CheckSize refuses a max_slot_wal_keep_size that is not a positive
// amount with PostgreSQL's unit (kB, MB, GB or TB). Only such a value
// is ever written into ALTER SYSTEM, which takes no parameters.
func CheckSize(s string) error {
	if !sizeRE.MatchString(s) {
		return fault.BadInput(fmt.Errorf("--max-slot-wal-keep-size %q: give a positive amount with a unit, like 2GB or 512MB (kB, MB, GB, TB); nothing was changed", s))
	}
	return nil
}

// SlotName is db's replication slot: aidb_wal_<service>, in the letters
// a slot name may hold.
func SlotName(service string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(service) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteRune('_')
		}
	}
	name := "aidb_wal_" + b.String()
	return name[:min(len(name), 63)]
}

// HBALine is the pg_hba.conf entry enable adds (when absent) so the
// sidecar and pg_basebackup, in containers of their own, may open
// replication connections with the database's password: the locally
// built image's entrypoint, as the official one, allows only
// "host all all all scram-sha-256", which does not match replication,
// and initdb's own replication entries are for the local socket and
// loopback only.
const HBALine = "host replication all all scram-sha-256"
