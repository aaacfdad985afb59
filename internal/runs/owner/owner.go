// Package owner names the aidb process that made a piece of work in
// progress (a partial file, a pipe, a helper or throwaway container), so
// that a later run can tell what a run killed before it finished left
// behind from what a live run is still using.
//
// An Owner is written into file names (Name) and into the aidb.owner
// label of containers (String). It identifies a process on one machine
// across restarts and pid reuse: the host (its hostname and pid namespace),
// the boot, the pid and the process's start time.
package owner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Owner is an aidb process.
type Owner struct {
	// Host is a short hash of the hostname and the pid namespace: two
	// processes with the same Host see the same process table.
	Host string
	// Boot is a short hash of the kernel's boot id: it changes when the
	// machine restarts.
	Boot string
	PID  int
	// Start is when the process started, in clock ticks since boot (0:
	// unknown): a pid reused by a later process has another.
	Start uint64
}

// String is the owner as it is written in labels and file names:
// <pid>-<start>-<host>-<boot>.
func (o Owner) String() string {
	return fmt.Sprintf("%d-%d-%s-%s", o.PID, o.Start, o.Host, o.Boot)
}

// Parse reads an owner written by String.
func Parse(s string) (Owner, error) {
	f := strings.Split(s, "-")
	if len(f) != 4 || !isTag(f[2]) || !isTag(f[3]) {
		return Owner{}, fmt.Errorf("owner %q: want <pid>-<start>-<host>-<boot>", s)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return Owner{}, fmt.Errorf("owner %q: bad pid", s)
	}
	start, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return Owner{}, fmt.Errorf("owner %q: bad start time", s)
	}
	return Owner{Host: f[2], Boot: f[3], PID: pid, Start: start}, nil
}

const tagLen = 6

func isTag(s string) bool {
	if len(s) != tagLen {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func tag(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])[:tagLen]
}

// Mark separates a work file's name from its owner: <name>~<owner><ext>.
const Mark = "~"

// Name is the name of a work file of this process: base, its owner, then
// ext (".partial", ".fifo"), so a later run can tell whose it is.
func Name(base, ext string) string {
	return base + Mark + Self().String() + ext
}

// FromName reads the owner from a work file's name made by Name; ok is
// false for other names.
func FromName(name string) (o Owner, ok bool) {
	i := strings.LastIndex(name, Mark)
	if i < 0 {
		return Owner{}, false
	}
	rest := name[i+len(Mark):]
	if j := strings.IndexByte(rest, '.'); j >= 0 {
		rest = rest[:j]
	}
	o, err := Parse(rest)
	return o, err == nil
}

// Self is this process.
func Self() Owner { return self() }

var self = sync.OnceValue(func() Owner {
	host, _ := os.Hostname()
	pidns, _ := os.Readlink("/proc/self/ns/pid")
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	start, _ := Local().StartTime(os.Getpid())
	return Owner{Host: tag(host, pidns), Boot: tag(strings.TrimSpace(string(boot))), PID: os.Getpid(), Start: start}
})

// Processes is the process table of this host.
type Processes interface {
	// StartTime says whether process pid runs, and when it started (0:
	// unknown).
	StartTime(pid int) (start uint64, running bool)
}

// Verdict is what a run may do with another owner's work.
type Verdict int

const (
	// Alive means the owner runs (or might): its work is left alone.
	Alive Verdict = iota
	// Dead means the owner is gone; its work is litter to remove.
	Dead
	// Elsewhere means the owner ran on another host (or in another pid
	// namespace), whose processes this one cannot see: left alone.
	Elsewhere
)

func (v Verdict) String() string {
	switch v {
	case Dead:
		return "dead"
	case Elsewhere:
		return "elsewhere"
	}
	return "alive"
}

// Judge says whether owner o is alive, as seen by self with the process
// table procs. When it cannot tell, it says Alive: a live run's work is
// never taken for litter.
func Judge(o, self Owner, procs Processes) Verdict {
	switch {
	case o.Host != self.Host:
		return Elsewhere
	case o.Boot != self.Boot:
		// The same host, restarted since: nothing of that boot runs.
		return Dead
	case o.PID == self.PID:
		if o.Start == self.Start || o.Start == 0 || self.Start == 0 {
			return Alive
		}
		return Dead
	}
	start, running := procs.StartTime(o.PID)
	switch {
	case !running:
		return Dead
	case o.Start != 0 && start != 0 && start != o.Start:
		// The pid now belongs to a later process.
		return Dead
	}
	return Alive
}

// statStart reads /proc/<pid>/stat: field 22, the start time, and whether
// field 3, the state, says zombie. The command name (field 2, in
// parentheses) may hold spaces and parentheses, so the fields are counted
// from its closing parenthesis.
func statStart(stat string) (start uint64, zombie bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, false
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n, f[0] == "Z"
}
