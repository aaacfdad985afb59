package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/aidb/aidb/internal/runs/litter"
	"github.com/aidb/aidb/internal/runs/owner"
	"github.com/aidb/aidb/orchestrator"
)

// sayCleared says what clearing the litter of killed aidb runs (done once
// the backup folder's lock is held: oplock.Take) removed, and names what an
// older aidb left without an owner. A failure here is said, not fatal: the
// command goes on.
func (a *app) sayCleared(rep litter.Report, err error) {
	for _, l := range rep.Removed {
		a.say("removed what an aidb run (pid %d) killed before it finished left: %s", l.Owner.PID, strings.Join(leftWords(l), ", "))
	}
	if len(rep.UnownedFiles)+len(rep.UnownedContainers) > 0 {
		var names, rm, secrets []string
		for _, f := range rep.UnownedFiles {
			names = append(names, filepath.Base(f))
			rm = append(rm, shellWord(f))
			if strings.HasSuffix(f, ".pgpass") {
				secrets = append(secrets, filepath.Base(f))
			}
		}
		var ids []string
		for _, c := range rep.UnownedContainers {
			names = append(names, fmt.Sprintf("container %s (%s)", c.Name, c.Role))
			ids = append(ids, c.ID[:min(12, len(c.ID))])
		}
		next := []string{}
		if len(rm) > 0 {
			next = append(next, "rm -f -- "+strings.Join(rm, " "))
		}
		if len(ids) > 0 {
			next = append(next, "docker rm -f "+strings.Join(ids, " "))
		}
		a.say("an aidb older than this one left work it did not name an owner for, so it stays: %s; if no aidb is running, remove it: %s", strings.Join(names, ", "), strings.Join(next, "; "))
		if len(secrets) > 0 {
			a.say("%s hold(s) a database password in plain text", strings.Join(secrets, ", "))
		}
	}
	if err != nil {
		a.say("could not clear everything a killed aidb run left: %v", err)
	}
}

// leftWords names what one dead run left, briefly.
func leftWords(l litter.Left) []string {
	var out []string
	if len(l.Files) > 0 {
		names := make([]string, len(l.Files))
		for i, f := range l.Files {
			// The owner in the name says nothing a person needs here.
			if j := strings.LastIndex(f, owner.Mark); j >= 0 {
				f = f[:j]
			}
			names[i] = f
		}
		out = append(out, fmt.Sprintf("partial %s (%s)", strings.Join(names, ", "), humanBytes(l.Bytes)))
	}
	switch n := len(l.Pipes); n {
	case 0:
	case 1:
		out = append(out, "1 pipe")
	default:
		out = append(out, fmt.Sprintf("%d pipes", n))
	}
	for _, c := range l.Containers {
		what := "helper"
		if c.Role == orchestrator.RoleVerify {
			what = "throwaway"
		}
		out = append(out, fmt.Sprintf("%s container %s (%s, %s)", what, c.Name, c.Role, c.State))
	}
	return out
}

// shellWord quotes s for a shell command a person copies, when it needs it.
func shellWord(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '+' || r == ':' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}
