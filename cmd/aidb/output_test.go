package main

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/ops/restore"
	"github.com/aidb/aidb/internal/ops/seed"
	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/postgres/migrations"
	"github.com/aidb/aidb/internal/store/catalog"
	"github.com/aidb/aidb/orchestrator"
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

// Every --json document uses one naming: snake_case keys, durations in
// seconds as duration_s (never nanoseconds), and every field named (an
// untagged field would appear as Go's "Path"). Prune's document is left
// to its own change.
func TestJSONNamesAreSnakeCase(t *testing.T) {
	t.Parallel()
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[reflect.Type]bool{}
	var check func(typ reflect.Type, path string)
	check = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map || typ.Kind() == reflect.Array {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ == reflect.TypeFor[time.Time]() {
			return
		}
		seen[typ] = true
		if typ.Implements(reflect.TypeFor[json.Marshaler]()) {
			b, err := json.Marshal(reflect.Zero(typ).Interface())
			require.NoError(t, err, path)
			var doc map[string]any
			require.NoError(t, json.Unmarshal(b, &doc), path)
			for k := range doc {
				assert.Regexp(t, snake, k, "%s: key %q", path, k)
				assert.False(t, strings.HasSuffix(k, "_ns"), "%s: %s: durations are seconds, as duration_s", path, k)
			}
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			where := path + "." + f.Name
			if f.Anonymous && name == "" {
				check(f.Type, where)
				continue
			}
			if name == "-" {
				continue
			}
			if assert.NotEmpty(t, name, "%s has no json name", where) {
				assert.Regexp(t, snake, name, where)
				assert.False(t, strings.HasSuffix(name, "_ns"), "%s: durations are seconds, as duration_s", where)
			}
			assert.False(t, f.Type == reflect.TypeFor[time.Duration](), "%s: a time.Duration marshals as nanoseconds; write seconds as duration_s", where)
			check(f.Type, where)
		}
	}
	for _, v := range []any{
		seedOutput{}, dbMigration{}, migrations.Applied{}, migrations.Status{},
		verify.Result{}, restore.Result{}, backup.Result{}, catalog.Listed{},
		orchestrator.Status{}, orchestrator.ServiceStatus{}, orchestrator.Removed{},
		manifest.Manifest{}, manifest.Set{}, catalog.PrunePlan{},
	} {
		check(reflect.TypeOf(v), reflect.TypeOf(v).String())
	}
}

func TestPrintJSONWritesEmptyListsNotNull(t *testing.T) {
	t.Parallel()
	type inner struct {
		Names []string `json:"names"`
	}
	type doc struct {
		orchestrator.Removed
		Items  []inner           `json:"items"`
		Ptr    *inner            `json:"ptr"`
		Nested []inner           `json:"nested"`
		Rows   map[string]int64  `json:"rows"`
		When   time.Time         `json:"when"`
		Safety []backup.File     `json:"safety_backups"`
		Seeded []seed.Outcome    `json:"seeded,omitempty"`
		Bytes  []byte            `json:"bytes"`
		Extra  map[string][]bool `json:"extra"`
	}
	var out bytes.Buffer
	a := &app{stdout: &out}
	require.NoError(t, a.printJSON(doc{Ptr: &inner{}, Nested: []inner{{}}, Extra: map[string][]bool{"x": nil}}))
	var got map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &got), out.String())
	for _, k := range []string{"containers", "volumes", "networks", "items", "safety_backups"} {
		assert.Equal(t, []any{}, got[k], k)
	}
	assert.Equal(t, map[string]any{"names": []any{}}, got["ptr"])
	assert.Equal(t, []any{map[string]any{"names": []any{}}}, got["nested"])
	assert.Nil(t, got["rows"], "maps are left as they are")
	assert.NotContains(t, got, "seeded", "omitempty still omits")
}

// On a terminal the bar carries the phase and the bytes loaded.
func TestLoadProgressBarOnATerminal(t *testing.T) {
	t.Parallel()
	var errOut bytes.Buffer
	a := &app{stderr: &errOut}
	p := a.newLoadProgress(false)
	p.tty = true
	p.phase("rulesdb", "backups/r.sql", 3<<20, restore.PhaseLoad)
	p.bytes("rulesdb", 2<<20, 3<<20)
	assert.Contains(t, errOut.String(), "rulesdb load")
	assert.Contains(t, errOut.String(), "66%")
	assert.Contains(t, errOut.String(), "2.1/3.1 MB", "the bytes of the file loaded (decimal units)")
	p.bytes("rulesdb", 3<<20, 3<<20) // the whole file read: the bar stays for the next phase
	p.phase("rulesdb", "backups/r.sql", 3<<20, restore.PhaseCheck)
	assert.Contains(t, errOut.String(), "rulesdb check")
	p.finish()
	assert.NotContains(t, errOut.String(), "loading backups/r.sql", "no plain lines on a terminal")
}
