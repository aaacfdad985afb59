package snapshot

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

func TestMetaRoundTrip(t *testing.T) {
	t.Parallel()
	exp := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	n := int64(7)
	m := Meta{Kind: KindClone, Name: "t1", Source: "rulesdb", Created: exp.Add(-time.Hour), From: "base", TTL: "1h0m0s", Expires: &exp,
		Strategy: StrategyFileCopy, MigrationVersion: 3, Props: Props{Owner: "rules", ConnLimit: -1},
		Fingerprint: fingerprint.Fingerprint{SchemaHash: "abc", Tables: []fingerprint.Table{{Schema: "public", Name: "rules", Rows: &n, Hash: "h"}}}}
	text, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(text)
	if err != nil {
		t.Fatalf("decode(%s): %v", text, err)
	}
	if got.Name != "t1" || got.Kind != KindClone || got.Rows() != 7 || !got.Expires.Equal(exp) || got.Props.Owner != "rules" {
		t.Fatalf("round trip lost something: %+v", got)
	}
	if !got.Expired(exp) || got.Expired(exp.Add(-time.Second)) {
		t.Fatal("Expired is wrong around Expires")
	}
}

func TestDecodeLeavesOtherCommentsAlone(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"", "the rules database", `{"kind":"snapshot"}`, `{"aidb_snapshot":2,"kind":"snapshot"}`, `{"aidb_snapshot":1,"kind":"backup"}`} {
		if _, err := decode(c); !errors.Is(err, errNotOurs) {
			t.Errorf("decode(%q) = %v, want errNotOurs", c, err)
		}
	}
	if _, err := decode(`{"aidb_snapshot":1,"kind":`); err == nil || errors.Is(err, errNotOurs) {
		t.Errorf("a damaged aidb comment: %v, want a read error", err)
	}
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"before-migration", true}, {"20261206-024500", true}, {"a_b", true},
		{"", false}, {"-x", false}, {"Upper", false}, {"with space", false}, {"x;drop", false}, {"é", false},
		{strings.Repeat("a", 63-len("rulesdb_snap_")), true}, {strings.Repeat("a", 64-len("rulesdb_snap_")), false},
	} {
		err := ValidateName(KindSnapshot, "rulesdb", tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%t", tc.name, err, tc.ok)
		}
	}
}

func TestAutoName(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 2, 45, 0, 0, time.FixedZone("x", 3600))
	taken := map[string]bool{"auto-20261206-014500": true, "auto-20261206-014500-2": true}
	if got := autoName(at, func(n string) bool { return taken[n] }); got != "auto-20261206-014500-3" {
		t.Fatalf("autoName = %s", got)
	}
}

func TestTempNamesFit(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("d", 63)
	for _, infix := range []string{infixNew, infixResetNew, infixResetOld} {
		n := tempName(long, infix)
		if len(n) != 63 || !strings.HasPrefix(n, tempPrefix(long, infix)) {
			t.Errorf("tempName(63 bytes, %s) = %s (%d bytes)", infix, n, len(n))
		}
		if s := tempName("rulesdb", infix); !strings.HasPrefix(s, "rulesdb"+infix) || len(s) != len("rulesdb"+infix)+8 {
			t.Errorf("tempName(rulesdb, %s) = %s", infix, s)
		}
	}
	// restore drops <db>_aidb_restore_* and <db>_aidb_old_*: none of ours.
	for _, infix := range []string{infixNew, infixResetNew, infixResetOld} {
		if strings.HasPrefix(infix, "_aidb_restore_") || strings.HasPrefix(infix, "_aidb_old_") {
			t.Errorf("%s collides with restore's leftovers", infix)
		}
	}
}

func TestPlanRepair(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		names  []string
		exists bool
		want   []string // op name
	}{
		{"nothing left", nil, true, nil},
		{"a copy being made", []string{"rulesdb_aidb_snew_00000001"}, true, []string{"drop rulesdb_aidb_snew_00000001"}},
		{"killed before the swap", []string{"rulesdb_aidb_rnew_0000000a"}, true, []string{"drop rulesdb_aidb_rnew_0000000a"}},
		{"killed after the swap", []string{"rulesdb_aidb_rold_0000000b"}, true, []string{"drop rulesdb_aidb_rold_0000000b"}},
		{"the database gone", []string{"rulesdb_aidb_rold_0000000a", "rulesdb_aidb_rold_0000000b"}, false,
			[]string{"drop rulesdb_aidb_rold_0000000a", "rename rulesdb_aidb_rold_0000000b"}},
		{"another database's", []string{"memorydb_aidb_rnew_0000000a", "rulesdb_snap_x"}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range planRepair("rulesdb", tc.names, tc.exists) {
				got = append(got, a.op+" "+a.name)
			}
			if strings.Join(got, ";") != strings.Join(tc.want, ";") {
				t.Fatalf("planRepair = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPick(t *testing.T) {
	t.Parallel()
	at := func(m int) time.Time { return time.Date(2026, 1, 1, 0, m, 0, 0, time.UTC) }
	snaps := []Copy{
		{Meta: Meta{Name: "a", Created: at(1)}},
		{Meta: Meta{Name: "auto-1", Created: at(2), Auto: AutoReset}},
		{Meta: Meta{Name: "b", Created: at(3)}},
		{Meta: Meta{Name: "auto-2", Created: at(4), Auto: AutoReset}},
	}
	for _, tc := range []struct {
		to   string
		undo bool
		want string
		kind fault.Kind
	}{
		{"", false, "b", 0}, {"a", false, "a", 0}, {"auto-1", false, "auto-1", 0}, {"", true, "auto-2", 0},
		{"zz", false, "", fault.Invalid}, {"a", true, "", fault.Invalid},
	} {
		got, err := pick(snaps, tc.to, tc.undo, "rulesdb")
		if tc.want != "" && (err != nil || got.Name != tc.want) {
			t.Errorf("pick(%q, %t) = %s, %v; want %s", tc.to, tc.undo, got.Name, err, tc.want)
		}
		if tc.want == "" && err == nil {
			t.Errorf("pick(%q, %t) = %s; want a refusal", tc.to, tc.undo, got.Name)
		}
	}
	if _, err := pick(snaps[1:2], "", false, "rulesdb"); err == nil || !strings.Contains(err.Error(), "no snapshot") {
		t.Errorf("only automatic snapshots: %v, want no snapshot", err)
	}
	if _, err := pick(nil, "", true, "rulesdb"); err == nil || !strings.Contains(err.Error(), "no reset to undo") {
		t.Errorf("no undo: %v", err)
	}
}

func TestAutoBeyond(t *testing.T) {
	t.Parallel()
	var snaps []Copy
	for _, n := range []string{"auto-1", "mine", "auto-2", "auto-3", "auto-4"} {
		c := Copy{Meta: Meta{Name: n}}
		if strings.HasPrefix(n, "auto") {
			c.Auto = AutoReset
		}
		snaps = append(snaps, c)
	}
	got := autoBeyond(snaps, 3)
	if len(got) != 1 || got[0].Name != "auto-1" {
		t.Fatalf("autoBeyond(3) = %v, want auto-1 only", got)
	}
	if autoBeyond(snaps, 4) != nil {
		t.Fatal("autoBeyond(4) removes something")
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	n, m := int64(3), int64(4)
	want := Meta{Props: Props{Owner: "rules", ConnLimit: -1, Comment: "app"}, Fingerprint: fingerprint.Fingerprint{
		SchemaHash: "s", MigrationVersion: 2,
		Tables:    []fingerprint.Table{{Schema: "public", Name: "a", Rows: &n, Hash: "h"}, {Schema: "public", Name: "b", Rows: &n, Hash: "h"}},
		Sequences: []fingerprint.Sequence{{Name: "public.a_id_seq", Value: 3}},
	}}
	same := want.Fingerprint
	if d := Compare(want, same, want.Props); len(d) != 0 {
		t.Fatalf("equal: %v", d)
	}
	got := fingerprint.Fingerprint{SchemaHash: "t", MigrationVersion: 1,
		Tables:    []fingerprint.Table{{Schema: "public", Name: "a", Rows: &m, Hash: "h"}, {Schema: "public", Name: "c", Rows: &n}},
		Sequences: []fingerprint.Sequence{{Name: "public.a_id_seq", Value: 4}},
	}
	d := Compare(want, got, Props{Owner: "x", ConnLimit: -1})
	text := strings.Join(d, "\n")
	for _, w := range []string{"schema: hash", "public.a: 4 rows", "public.b: missing", "public.c: not in the snapshot", "sequence public.a_id_seq: 4", "migration version 1", "owner x", "comment"} {
		if !strings.Contains(text, w) {
			t.Errorf("Compare lacks %q:\n%s", w, text)
		}
	}
}

func TestChooseStrategy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version int
		size    int64
		want    string
	}{
		{140000, 1 << 30, ""}, {150000, 8 << 20, StrategyWALLog}, {150000, 64 << 20, StrategyFileCopy}, {170000, 1 << 30, StrategyFileCopy},
	} {
		if got := ChooseStrategy(tc.version, tc.size); got != tc.want {
			t.Errorf("ChooseStrategy(%d, %d) = %q, want %q", tc.version, tc.size, got, tc.want)
		}
	}
	for in, want := range map[string]string{"auto": "", "FILE_COPY": StrategyFileCopy, "wal-log": StrategyWALLog} {
		if got, err := ParseStrategy(in); err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseStrategy("clone"); err == nil {
		t.Error("ParseStrategy(clone) accepted")
	}
}

func TestSessionsErrorIsBadInput(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	e := &SessionsError{Database: "rulesdb", Op: "a reset", Sessions: []Session{{PID: 42, User: "rules", Application: "psql", State: "idle in transaction", XactStart: &since}}}
	if e.Kind() != fault.Invalid || !strings.Contains(e.Error(), "pid 42 (rules, psql, idle in transaction, in a transaction since 2026-12-06T02:00:00Z)") {
		t.Fatalf("%v", e)
	}
}

func TestCloneMeta(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)
	from := Copy{DBName: "rulesdb_snap_base", Meta: Meta{Kind: KindSnapshot, Name: "base", Source: "rulesdb", Created: now.Add(-time.Hour), MigrationVersion: 3, Props: Props{Owner: "rules"}}}
	m := cloneMeta(from, "t1", now, 30*time.Minute)
	if m.Kind != KindClone || m.Name != "t1" || m.From != "base" || m.Source != "rulesdb" || m.MigrationVersion != 3 || m.Props.Owner != "rules" || !m.Created.Equal(now) {
		t.Fatalf("cloneMeta = %+v", m)
	}
	if m.TTL != "30m0s" || m.Expires == nil || !m.Expires.Equal(now.Add(30*time.Minute)) {
		t.Fatalf("TTL %q, expires %v", m.TTL, m.Expires)
	}
	if m := cloneMeta(from, "t2", now, 0); m.Expires != nil || m.TTL != "" || m.Expired(now.Add(1000*time.Hour)) {
		t.Fatalf("no TTL: %+v", m)
	}
}
