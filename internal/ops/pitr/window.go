package pitr

import (
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aidb/aidb/internal/fault"
)

// DefaultSegmentSize is PostgreSQL's WAL segment size unless initdb was
// told otherwise (--wal-segsize); a base backup records the server's own.
const DefaultSegmentSize = 16 << 20

// Segment is one whole WAL segment file of the stream's folder.
type Segment struct {
	Name     string
	Timeline uint32
	// SegNo is the segment's number: its first byte's LSN divided by the
	// segment size.
	SegNo uint64
	// ModTime is when pg_receivewal last wrote it: every record in it was
	// written before then.
	ModTime time.Time
}

// ParseSegment reads a WAL segment file name (24 hex digits: timeline,
// log, segment) for segments of segSize bytes. Anything else, a
// pg_receivewal *.partial file (a segment still being written) among
// them, is no whole segment: ok is false.
func ParseSegment(name string, segSize uint64) (s Segment, ok bool) {
	if len(name) != 24 || segSize == 0 {
		return s, false
	}
	tli, err1 := strconv.ParseUint(name[:8], 16, 32)
	log, err2 := strconv.ParseUint(name[8:16], 16, 32)
	seg, err3 := strconv.ParseUint(name[16:], 16, 32)
	if err1 != nil || err2 != nil || err3 != nil || tli == 0 {
		return s, false
	}
	perLog := uint64(0x100000000) / segSize
	if seg >= perLog {
		return s, false
	}
	return Segment{Name: name, Timeline: uint32(tli), SegNo: log*perLog + seg}, true
}

// SegmentName is the file name of segment segNo on timeline tli.
func SegmentName(tli uint32, segNo, segSize uint64) string {
	perLog := uint64(0x100000000) / segSize
	return fmt.Sprintf("%08X%08X%08X", tli, segNo/perLog, segNo%perLog)
}

// Segments lists the whole segments of a stream folder, oldest first;
// partial ones and other files are left out.
func Segments(dir fs.FS, segSize uint64) ([]Segment, error) {
	entries, err := fs.ReadDir(dir, ".")
	if err != nil {
		return nil, fmt.Errorf("list WAL segments: %w", err)
	}
	var out []Segment
	for _, e := range entries {
		s, ok := ParseSegment(e.Name(), segSize)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("stat WAL segment %s: %w", e.Name(), err)
		}
		s.ModTime = info.ModTime()
		out = append(out, s)
	}
	slices.SortFunc(out, compareSegments)
	return out, nil
}

// compareSegments orders segments by timeline, then number.
func compareSegments(a, b Segment) int {
	if c := cmpUint(uint64(a.Timeline), uint64(b.Timeline)); c != 0 {
		return c
	}
	return cmpUint(a.SegNo, b.SegNo)
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Span is what one base backup makes recoverable: from its end to the
// last write of the newest whole segment after it without a gap.
type Span struct {
	Base   string    `json:"base_backup"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	Newest string    `json:"newest_segment,omitempty"`
}

// Window is the time a database can be recovered to: the union of its
// base backups' spans (a gap between them is not recoverable).
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Newest is the newest whole segment of the span that reaches To.
	Newest string `json:"newest_segment,omitempty"`
	Spans  []Span `json:"spans"`
}

// String names the window for messages: its stretches without a gap.
func (w Window) String() string {
	spans := slices.Clone(w.Spans)
	if len(spans) == 0 {
		spans = []Span{{From: w.From, To: w.To}}
	}
	slices.SortFunc(spans, func(a, b Span) int { return a.From.Compare(b.From) })
	var parts []string
	cur := spans[0]
	for _, s := range spans[1:] {
		if !s.From.After(cur.To) {
			if s.To.After(cur.To) {
				cur.To = s.To
			}
			continue
		}
		parts = append(parts, span(cur))
		cur = s
	}
	return strings.Join(append(parts, span(cur)), ", and from ")
}

func span(s Span) string {
	return fmt.Sprintf("%s to %s", s.From.UTC().Format(TimeLayout), s.To.UTC().Format(TimeLayout))
}

// TimeLayout is how times are shown and how a target may be given.
const TimeLayout = "2006-01-02 15:04:05.999999Z07:00"

// NoWindowError says there is nothing to recover from yet.
type NoWindowError struct{ Database, Reason string }

func (e *NoWindowError) Error() string {
	return fmt.Sprintf("%s has no point-in-time recovery window: %s; run aidb pitr enable %s (or aidb pitr base-backup %s) first; nothing was changed", e.Database, e.Reason, e.Database, e.Database)
}

// Kind makes it bad input (exit 2).
func (e *NoWindowError) Kind() fault.Kind { return fault.Invalid }

// ComputeWindow is db's recovery window from its whole base backups and
// the stream's whole segments: each base backup's span starts at its end
// and ends at the newest segment reachable from it by an unbroken run of
// segments on its timeline (a gap ends the run: WAL past it cannot be
// replayed); a base backup with no segment after it yet spans its own end.
func ComputeWindow(db string, bases []Base, segs []Segment) (Window, error) {
	if len(bases) == 0 {
		return Window{}, &NoWindowError{Database: db, Reason: "it has no whole base backup"}
	}
	have := map[uint32]map[uint64]Segment{}
	for _, s := range segs {
		if have[s.Timeline] == nil {
			have[s.Timeline] = map[uint64]Segment{}
		}
		have[s.Timeline][s.SegNo] = s
	}
	var w Window
	for i, b := range bases {
		sp := Span{Base: b.Name, From: b.End, To: b.End}
		// The segment that holds the backup's end is the first one
		// replay reads past what the base backup carries.
		for n := b.EndSegNo(); ; n++ {
			s, ok := have[b.Timeline][n]
			if !ok {
				break
			}
			if s.ModTime.After(sp.To) {
				sp.To, sp.Newest = s.ModTime, s.Name
			}
		}
		w.Spans = append(w.Spans, sp)
		if i == 0 || sp.From.Before(w.From) {
			w.From = sp.From
		}
		if i == 0 || sp.To.After(w.To) {
			w.To, w.Newest = sp.To, sp.Newest
		}
	}
	return w, nil
}

// OutsideWindowError refuses a target the stream cannot reach.
type OutsideWindowError struct {
	Database string
	Target   time.Time
	Window   Window
	// Where is before, after or gap.
	Where string
}

func (e *OutsideWindowError) Error() string {
	where, next := "in a gap between base backups and the WAL after them", "pick a time inside it"
	switch e.Where {
	case "before":
		where, next = "before the end of the oldest base backup", "pick a later time"
	case "after":
		where, next = "after the newest whole WAL segment", "force a segment switch (SELECT pg_switch_wal()) and wait for it to reach the folder (aidb pitr status), or pick an earlier time"
	}
	return fmt.Sprintf("restore %s to %s: the target is %s; %s can be recovered to any time from %s: %s; nothing was changed",
		e.Database, e.Target.UTC().Format(TimeLayout), where, e.Database, e.Window, next)
}

// Kind makes it bad input (exit 2).
func (e *OutsideWindowError) Kind() fault.Kind { return fault.Invalid }

// CheckTarget refuses a target outside w's spans and otherwise returns
// the base backup to recover from: the newest whose span holds it.
func CheckTarget(db string, w Window, target time.Time) (string, error) {
	switch {
	case target.Before(w.From):
		return "", &OutsideWindowError{Database: db, Target: target, Window: w, Where: "before"}
	case target.After(w.To):
		return "", &OutsideWindowError{Database: db, Target: target, Window: w, Where: "after"}
	}
	var best *Span
	for i, s := range w.Spans {
		if !target.Before(s.From) && !target.After(s.To) && (best == nil || s.From.After(best.From)) {
			best = &w.Spans[i]
		}
	}
	if best == nil {
		return "", &OutsideWindowError{Database: db, Target: target, Window: w, Where: "gap"}
	}
	return best.Base, nil
}

// LSNOutsideError refuses a target WAL position no base backup and
// unbroken run of whole segments after it reaches.
type LSNOutsideError struct {
	Database string
	Target   LSN
	// Reach is what can be recovered to, by WAL position, per base backup.
	Reach []string
}

func (e *LSNOutsideError) Error() string {
	return fmt.Sprintf("restore %s to %s: no base backup and unbroken run of whole WAL segments after it reaches that position (%s); pick one inside, or force a segment switch (SELECT pg_switch_wal()) for a position past the newest whole segment; nothing was changed",
		e.Database, e.Target, strings.Join(e.Reach, "; "))
}

// Kind is fault.Invalid: refused before anything changed.
func (e *LSNOutsideError) Kind() fault.Kind { return fault.Invalid }

// CheckLSN returns the base backup to recover to target from: the newest
// that ended at or before it and from whose end every segment up to the
// one holding target lies whole in segs, on its timeline.
func CheckLSN(db string, bases []Base, segs []Segment, target LSN) (string, error) {
	have := map[uint32]map[uint64]bool{}
	for _, s := range segs {
		if have[s.Timeline] == nil {
			have[s.Timeline] = map[uint64]bool{}
		}
		have[s.Timeline][s.SegNo] = true
	}
	var reach []string
	best := ""
	for _, b := range bases {
		size := b.SegmentSize
		if size == 0 {
			size = DefaultSegmentSize
		}
		end := b.EndSegNo()
		for have[b.Timeline][end] {
			end++
		}
		// Whole segments end..end-1 follow the base backup: it reaches
		// the start of segment end.
		upTo := LSN(end * size)
		if end == b.EndSegNo() {
			upTo = b.EndLSN
		}
		reach = append(reach, fmt.Sprintf("from base backup %s: %s to %s on timeline %d", b.Name, b.EndLSN, upTo, b.Timeline))
		// A position at upTo is the first byte of a segment not there:
		// recovery stops only at a record that starts at or past it.
		if b.EndLSN <= target && target < upTo {
			best = b.Name
		}
	}
	if best == "" {
		return "", &LSNOutsideError{Database: db, Target: target, Reach: reach}
	}
	return best, nil
}

// LatestBase is the base backup --to-latest recovers from: the newest of
// those whose span reaches furthest.
func LatestBase(w Window) string {
	var best *Span
	for i, s := range w.Spans {
		if best == nil || s.To.After(best.To) || (s.To.Equal(best.To) && s.From.After(best.From)) {
			best = &w.Spans[i]
		}
	}
	if best == nil {
		return ""
	}
	return best.Base
}

// ParseTarget reads --to-time: RFC 3339, or "2006-01-02 15:04:05" with
// optional fractional seconds and zone offset; a time without a zone is in
// loc (the local zone of the machine aidb runs on).
func ParseTarget(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999-07", "2006-01-02T15:04:05.999999999-07"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02 15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fault.BadInput(fmt.Errorf("--to-time %q is no time: give it as \"2026-12-05 15:01:30\" (local time), with an offset (\"2026-12-05 15:01:30+01:00\") or in RFC 3339; nothing was changed", s))
}

// zeroTime is "no target": the newest.
var zeroTime time.Time
