package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/aidb/aidb/restore"
	"github.com/aidb/aidb/verify"
)

func TestVerifyTableStaysNarrowReasonsBelow(t *testing.T) {
	t.Parallel()
	long := "backups/rulesdb-data-20260101-000000.sql is data-only and rulesdb has no migrations at version 7 and no schema backup at that version in backups: take one with aidb backup rulesdb --schema-only " + strings.Repeat("x", 80)
	var out bytes.Buffer
	writeVerifyTable(&out, []verify.Result{
		{File: "backups/rulesdb-20260101-000000.sql", Database: "rulesdb", Kind: "full", OK: true, Tables: 3, Rows: 1200, Seconds: 1.2},
		{File: "backups/rulesdb-data-20260101-000000.sql", Database: "rulesdb", Kind: "data", Error: long},
		{File: "backups/memorydb-20260101-000000.sql", Database: "memorydb", Kind: "full", Differences: []string{"table public.memories: 10 rows, manifest says 11"}},
	})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for _, l := range lines[:4] {
		assert.Less(t, len(l), 100, "table row too wide: %q", l)
	}
	assert.Contains(t, lines[2], "NOT VERIFIED")
	assert.Contains(t, lines[3], "DIFFERS")
	below := strings.Join(lines[4:], "\n")
	assert.Contains(t, below, "rulesdb-data-20260101-000000.sql: not verified: "+long)
	assert.Contains(t, below, "memorydb-20260101-000000.sql differs from its manifest:\n  table public.memories: 10 rows, manifest says 11")
}

// Without a terminal, a restore says each phase once, in a line of its own.
func TestLoadProgressPlainLines(t *testing.T) {
	t.Parallel()
	var errOut bytes.Buffer
	a := &app{stderr: &errOut}
	p := a.newLoadProgress(false)
	p.phase("rulesdb", "backups/r.sql", 3<<20, restore.PhaseLoad)
	for i := range int64(100) {
		p.bytes("rulesdb", i<<15, 3<<20)
	}
	p.phase("rulesdb", "backups/r.sql", 3<<20, restore.PhaseLoad)
	p.phase("rulesdb", "backups/r.sql", 3<<20, restore.PhaseCheck)
	p.phase("rulesdb", "backups/r.sql", 3<<20, restore.PhaseSwap)
	p.finish()
	assert.Equal(t, "rulesdb: loading backups/r.sql (3.0 MiB)\n"+
		"rulesdb: checking what was loaded against the manifest\n"+
		"rulesdb: swapping the restored database in\n", errOut.String())
}
