package verifylog

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendReadLast(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	recs := []Record{
		{File: "rulesdb-1.sql", SHA256: "aa", Database: "rulesdb", Kind: "full", At: base, Outcome: Equal},
		{File: "rulesdb-1.sql", SHA256: "aa", Database: "rulesdb", Kind: "full", At: base.Add(time.Hour), Outcome: Differs, Detail: "table x"},
		{File: "rulesdb-1.sql", SHA256: "bb", Database: "rulesdb", Kind: "full", At: base.Add(2 * time.Hour), Outcome: Equal},
	}
	for _, r := range recs {
		if err := Append(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	log, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 3 {
		t.Fatalf("read %d records, want 3", len(log))
	}
	last, ok := log.Last("rulesdb-1.sql", "aa")
	if !ok || last.Outcome != Differs || !last.At.Equal(base.Add(time.Hour)) {
		t.Errorf("Last(aa) = %+v, %v; want the differs record an hour in", last, ok)
	}
	if bb, ok := log.Last("rulesdb-1.sql", "bb"); !ok || bb.Outcome != Equal {
		t.Errorf("Last(bb) = %+v, %v; want the equal record of those other bytes", bb, ok)
	}
	if _, ok := log.Last("rulesdb-2.sql", "aa"); ok {
		t.Error("Last of a file never verified says it was")
	}
}

func TestParseSkipsCutAndForeignLines(t *testing.T) {
	t.Parallel()
	in := `{"file":"a.sql","sha256":"aa","at":"2026-11-30T10:00:00Z","outcome":"equal"}
not json
{"file":"","sha256":"aa","at":"2026-11-30T10:00:00Z","outcome":"equal"}
{"file":"b.sql","sha256":"bb","at":"2026-11-30T11:00:00Z","outc`
	log, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 1 || log[0].File != "a.sql" {
		t.Fatalf("parsed %+v, want only a.sql's record", log)
	}
}

func TestReadMissingLogIsEmpty(t *testing.T) {
	t.Parallel()
	log, err := Read(t.TempDir())
	if err != nil || len(log) != 0 {
		t.Fatalf("Read of a folder without a log = %v, %v; want empty, nil", log, err)
	}
}

// Appends from many goroutines never interleave: every line reads back.
func TestParallelAppendsStayWhole(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := Record{File: "f.sql", SHA256: strings.Repeat("a", 64), At: time.Now(), Outcome: Failed, Detail: strings.Repeat("x", 400+i)}
			if err := Append(dir, r); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	log, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 40 {
		t.Fatalf("read %d whole records of 40 appended", len(log))
	}
}

func TestDetailIsBounded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := Append(dir, Record{File: "f.sql", SHA256: "aa", At: time.Now(), Outcome: Failed, Detail: strings.Repeat("y", 5000)}); err != nil {
		t.Fatal(err)
	}
	log, _ := Read(dir)
	if len(log) != 1 || len(log[0].Detail) > maxDetail+len("…") {
		t.Fatalf("detail of %d bytes kept; want at most %d", len(log[0].Detail), maxDetail)
	}
}

func TestLastVerdictIgnoresFailures(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	log := Log{
		{File: "a.sql", SHA256: "aa", At: base, Outcome: Equal},
		{File: "a.sql", SHA256: "aa", At: base.Add(time.Hour), Outcome: Failed},
	}
	if r, ok := log.LastVerdict("a.sql", "aa"); !ok || r.Outcome != Equal {
		t.Errorf("LastVerdict = %+v, %v; want the equal verdict (a failure to run says nothing of the bytes)", r, ok)
	}
	if r, _ := log.Last("a.sql", "aa"); r.Outcome != Failed {
		t.Errorf("Last = %+v; want the failure (list shows it)", r)
	}
	log = append(log, Record{File: "a.sql", SHA256: "aa", At: base.Add(2 * time.Hour), Outcome: Differs})
	if r, _ := log.LastVerdict("a.sql", "aa"); r.Outcome != Differs {
		t.Errorf("LastVerdict = %+v; want the later difference", r)
	}
}
