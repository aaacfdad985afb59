package pitr

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/aidb/aidb/internal/fault"
)

var t0 = time.Date(2026, 12, 5, 15, 0, 0, 0, time.UTC)

func seg(t *testing.T, name string, at time.Duration) Segment {
	t.Helper()
	s, ok := ParseSegment(name, DefaultSegmentSize)
	if !ok {
		t.Fatalf("ParseSegment(%q) not ok", name)
	}
	s.ModTime = t0.Add(at)
	return s
}

func TestParseSegment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		ok    bool
		tli   uint32
		segNo uint64
	}{
		{"000000010000000000000003", true, 1, 3},
		{"000000020000000100000000", true, 2, 256},
		{"000000010000000000000003.partial", false, 0, 0},
		{"00000002.history", false, 0, 0},
		{"000000010000000000000100", false, 0, 0}, // past 255 segments of 16 MB per log
		{"00000000000000000000000A", false, 0, 0}, // timeline 0
		{"archive_status", false, 0, 0},
	} {
		s, ok := ParseSegment(tc.name, DefaultSegmentSize)
		if ok != tc.ok || s.Timeline != tc.tli || s.SegNo != tc.segNo {
			t.Errorf("ParseSegment(%q) = %+v, %t; want tli %d segno %d, %t", tc.name, s, ok, tc.tli, tc.segNo, tc.ok)
		}
		if ok && SegmentName(s.Timeline, s.SegNo, DefaultSegmentSize) != tc.name {
			t.Errorf("SegmentName round trip of %q = %q", tc.name, SegmentName(s.Timeline, s.SegNo, DefaultSegmentSize))
		}
	}
}

// A folder listing: partial segments and other files never count.
func TestSegmentsFromFolder(t *testing.T) {
	t.Parallel()
	dir := fstest.MapFS{
		"000000010000000000000004":         {ModTime: t0.Add(2 * time.Minute)},
		"000000010000000000000003":         {ModTime: t0.Add(time.Minute)},
		"000000010000000000000005.partial": {ModTime: t0.Add(3 * time.Minute)},
		"00000002.history":                 {ModTime: t0},
	}
	segs, err := Segments(dir, DefaultSegmentSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 || segs[0].SegNo != 3 || segs[1].SegNo != 4 || !segs[1].ModTime.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("Segments = %+v", segs)
	}
}

func TestComputeWindow(t *testing.T) {
	t.Parallel()
	base := Base{Name: "b1", End: t0, Timeline: 1, EndLSN: 3 << 24, SegmentSize: DefaultSegmentSize}
	later := Base{Name: "b2", End: t0.Add(10 * time.Minute), Timeline: 1, EndLSN: 9 << 24, SegmentSize: DefaultSegmentSize}
	for _, tc := range []struct {
		name     string
		bases    []Base
		segs     []Segment
		from, to time.Time
		newest   string
	}{
		{"base alone", []Base{base}, nil, t0, t0, ""},
		{"unbroken run", []Base{base}, []Segment{seg(t, "000000010000000000000003", time.Minute), seg(t, "000000010000000000000004", 2*time.Minute)},
			t0, t0.Add(2 * time.Minute), "000000010000000000000004"},
		{"a gap ends the run", []Base{base}, []Segment{seg(t, "000000010000000000000003", time.Minute), seg(t, "000000010000000000000005", 5*time.Minute)},
			t0, t0.Add(time.Minute), "000000010000000000000003"},
		{"segments before the base do not count", []Base{base}, []Segment{seg(t, "000000010000000000000002", 5*time.Minute)},
			t0, t0, ""},
		{"another timeline does not count", []Base{base}, []Segment{seg(t, "000000020000000000000003", 5*time.Minute)},
			t0, t0, ""},
		{"a later base after a gap", []Base{base, later}, []Segment{seg(t, "000000010000000000000003", time.Minute), seg(t, "000000010000000000000009", 12*time.Minute)},
			t0, t0.Add(12 * time.Minute), "000000010000000000000009"},
	} {
		w, err := ComputeWindow("rulesdb", tc.bases, tc.segs)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !w.From.Equal(tc.from) || !w.To.Equal(tc.to) || w.Newest != tc.newest {
			t.Errorf("%s: window %+v; want %s to %s, newest %q", tc.name, w, tc.from, tc.to, tc.newest)
		}
	}
	_, err := ComputeWindow("rulesdb", nil, nil)
	var nw *NoWindowError
	if !errors.As(err, &nw) || fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), "aidb pitr enable rulesdb") {
		t.Errorf("no base: %v", err)
	}
}

func TestCheckTarget(t *testing.T) {
	t.Parallel()
	// Two stretches: base a from t0 to t0+1h, base b from t0+2h to t0+3h,
	// and base c inside a's from t0+30m.
	w := Window{From: t0, To: t0.Add(3 * time.Hour), Spans: []Span{
		{Base: "a", From: t0, To: t0.Add(time.Hour)},
		{Base: "c", From: t0.Add(30 * time.Minute), To: t0.Add(time.Hour)},
		{Base: "b", From: t0.Add(2 * time.Hour), To: t0.Add(3 * time.Hour)},
	}}
	for _, tc := range []struct {
		target time.Time
		base   string
	}{
		{t0, "a"}, {t0.Add(time.Minute), "a"}, {t0.Add(45 * time.Minute), "c"}, {t0.Add(time.Hour), "c"},
		{t0.Add(2 * time.Hour), "b"}, {t0.Add(3 * time.Hour), "b"},
	} {
		if base, err := CheckTarget("rulesdb", w, tc.target); err != nil || base != tc.base {
			t.Errorf("CheckTarget(%s) = %q, %v; want %q", tc.target, base, err, tc.base)
		}
	}
	if got := LatestBase(w); got != "b" {
		t.Errorf("LatestBase = %q", got)
	}
	window := "2026-12-05 15:00:00Z to 2026-12-05 16:00:00Z, and from 2026-12-05 17:00:00Z to 2026-12-05 18:00:00Z"
	for _, tc := range []struct {
		target time.Time
		want   string
	}{
		{t0.Add(-time.Second), "before the end of the oldest base backup"},
		{t0.Add(90 * time.Minute), "in a gap"},
		{t0.Add(3*time.Hour + time.Second), "after the newest whole WAL segment"},
	} {
		_, err := CheckTarget("rulesdb", w, tc.target)
		if err == nil || fault.KindOf(err) != fault.Invalid {
			t.Fatalf("%s: %v; want a refusal (bad input)", tc.target, err)
		}
		for _, s := range []string{tc.want, window, "nothing was changed"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", tc.target, err, s)
			}
		}
	}
}

func TestParseTarget(t *testing.T) {
	t.Parallel()
	berlin := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-12-05 15:01:30", time.Date(2026, 12, 5, 14, 1, 30, 0, time.UTC)},
		{"2026-12-05 15:01:30.25", time.Date(2026, 12, 5, 14, 1, 30, 250e6, time.UTC)},
		{"2026-12-05 15:01:30+00", time.Date(2026, 12, 5, 15, 1, 30, 0, time.UTC)},
		{"2026-12-05T15:01:30Z", time.Date(2026, 12, 5, 15, 1, 30, 0, time.UTC)},
		{"2026-12-05 15:01:30+02:00", time.Date(2026, 12, 5, 13, 1, 30, 0, time.UTC)},
	} {
		got, err := ParseTarget(tc.in, berlin)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTarget(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := ParseTarget("yesterday", berlin); err == nil || fault.KindOf(err) != fault.Invalid {
		t.Errorf("ParseTarget(yesterday) = %v; want bad input", err)
	}
}

func TestRecoverySettings(t *testing.T) {
	t.Parallel()
	got := strings.Join(RecoverySettings(time.Date(2026, 12, 5, 15, 1, 30, 123456000, time.FixedZone("", 3600))), " ")
	want := "-c restore_command=cp /aidb-wal/%f %p 2>/dev/null || cp /aidb-wal/fetched/%f %p -c recovery_target_time=2026-12-05 14:01:30.123456+00 -c recovery_target_action=promote"
	if got != want {
		t.Errorf("RecoverySettings = %q\nwant %q", got, want)
	}
	if got := strings.Join(RecoverySettings(time.Time{}), " "); got != "-c restore_command=cp /aidb-wal/%f %p 2>/dev/null || cp /aidb-wal/fetched/%f %p" {
		t.Errorf("latest: %q", got)
	}
}

func TestCheckSizeAndSlotName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"2GB", "512MB", "1TB", "100kB"} {
		if err := CheckSize(ok); err != nil {
			t.Errorf("CheckSize(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "0GB", "2 GB", "2gb", "-1", "1GB'; DROP", "2GB\n"} {
		if err := CheckSize(bad); err == nil {
			t.Errorf("CheckSize(%q) accepted", bad)
		}
	}
	if got := SlotName("Rules-DB.x"); got != "aidb_wal_rules_db_x" {
		t.Errorf("SlotName = %q", got)
	}
}

func TestBasesAndWALRange(t *testing.T) {
	t.Parallel()
	manifest := `{"PostgreSQL-Backup-Manifest-Version": 1, "WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/3000100"}]}`
	tli, start, end, err := WALRange([]byte(manifest))
	if err != nil || tli != 1 || start != 0x2000028 || end != 0x3000100 || end.String() != "0/3000100" {
		t.Fatalf("WALRange = %d %s %s %v", tli, start, end, err)
	}
	dir := fstest.MapFS{
		"20261205T150000.000Z/" + RecordName: {Data: []byte(`{"end":"2026-12-05T15:00:05Z","timeline":1,"end_lsn":"0/3000100","wal_segment_size":16777216}`)},
		"20261205T140000.000Z/" + RecordName: {Data: []byte(`{"end":"2026-12-05T14:00:05Z","timeline":1,"end_lsn":"0/2000100"}`)},
		// pg_basebackup killed before aidb wrote the record: no base.
		"20261205T160000.000Z/base.tar.gz": {Data: []byte("x")},
	}
	bases, err := Bases(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(bases) != 2 || bases[0].Name != "20261205T140000.000Z" || bases[1].EndSegNo() != 3 || bases[0].EndSegNo() != 2 {
		t.Fatalf("Bases = %+v", bases)
	}
}

func TestForeign(t *testing.T) {
	t.Parallel()
	const size = DefaultSegmentSize
	for _, tc := range []struct {
		name    string
		names   []string
		tli     uint32
		current LSN
		kept    LSN
		want    bool
	}{
		{"empty", nil, 1, 5 << 24, 0, false},
		{"same lineage, behind", []string{"000000010000000000000003", "000000010000000000000004.partial"}, 1, 4<<24 + 100, 0, false},
		{"same lineage, the slot keeps its next segment", []string{"000000010000000000000003", "000000010000000000000004.partial"}, 1, 9 << 24, 4<<24 + 100, false},
		{"a whole newest segment, the slot at the next one's start", []string{"000000010000000000000003", "000000010000000000000004"}, 1, 5 << 24, 5 << 24, false},
		{"a whole newest segment, the slot past the next one", []string{"000000010000000000000004"}, 1, 6<<24 + 5, 6 << 24, true},
		{"the slot lost the WAL after it (made anew: a gap)", []string{"000000010000000000000003", "000000010000000000000004.partial"}, 1, 9 << 24, 9 << 24, true},
		{"newer timeline on the server (restored)", []string{"000000010000000000000009.partial"}, 2, 9 << 24, 0, true},
		{"past the server's position (rolled back)", []string{"000000010000000000000009.partial"}, 1, 5 << 24, 0, true},
		{"an older timeline on the server (rolled back)", []string{"00000002.history", "000000020000000000000006.partial"}, 1, 9 << 24, 0, true},
	} {
		if got := Foreign(tc.names, tc.tli, tc.current, tc.kept, size); got != tc.want {
			t.Errorf("%s: Foreign = %t; want %t", tc.name, got, tc.want)
		}
	}
}

func TestCheckLSN(t *testing.T) {
	t.Parallel()
	a := day("a", 0, 1, 2, 2) // ends at 2<<24 + 40
	b := day("b", 24, 1, 10, 10)
	segs := append(run(t, 1, 2, 5, 0), run(t, 1, 10, 12, 0)...) // a gap from 6 to 9
	for _, tc := range []struct {
		name   string
		target LSN
		want   string
	}{
		{"right after a's end", 2<<24 + 100, "a"},
		{"in a's last whole segment", 5<<24 + 5, "a"},
		{"the last byte of a's whole segments", 6<<24 - 1, "a"},
		{"the first byte of the missing segment after them", 6 << 24, ""},
		{"in the gap", 7 << 24, ""},
		{"before a's end (not consistent)", 2<<24 + 10, ""},
		{"after b's end: b", 11<<24 + 5, "b"},
		{"past the newest whole segment", 13<<24 + 1, ""},
	} {
		got, err := CheckLSN("rulesdb", []Base{a, b}, segs, tc.target)
		if tc.want == "" {
			var out *LSNOutsideError
			if !errors.As(err, &out) || fault.KindOf(err) != fault.Invalid {
				t.Errorf("%s: CheckLSN(%s) = %q, %v; want a refusal", tc.name, tc.target, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: CheckLSN(%s) = %q, %v; want %q", tc.name, tc.target, got, err, tc.want)
		}
	}
}

func TestCheckGap(t *testing.T) {
	t.Parallel()
	b := day("b", 0, 1, 2, 2)
	if err := CheckGap("rulesdb", b, run(t, 1, 2, 6, 0)); err != nil {
		t.Errorf("an unbroken stream: %v", err)
	}
	if err := CheckGap("rulesdb", b, append(run(t, 1, 2, 6, 0), run(t, 2, 7, 9, 0)...)); err != nil {
		t.Errorf("another timeline's segments are no gap of this one: %v", err)
	}
	err := CheckGap("rulesdb", b, append(run(t, 1, 2, 4, 0), run(t, 1, 7, 9, 0)...))
	var gap *GapError
	if !errors.As(err, &gap) || gap.Missing != "000000010000000000000005" || gap.After != 3 || fault.KindOf(err) != fault.Differs {
		t.Errorf("a gap after segment 4: %v", err)
	}
}
