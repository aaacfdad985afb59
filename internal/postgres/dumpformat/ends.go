package dumpformat

import (
	"bytes"
	"fmt"
	"io"
)

const (
	// Header is how pg_dump starts a plain dump (and pg_restore -f a
	// converted archive).
	Header = "--\n-- PostgreSQL database dump\n"
	// ClosingLine is the last comment pg_dump writes into a plain dump: a
	// file cut short lacks it.
	ClosingLine = "-- PostgreSQL database dump complete"
	// closingComment is the closing comment whole, as pg_dump writes it.
	closingComment = "--\n" + ClosingLine + "\n--\n"
	// TailSize is more than pg_dump writes after its closing line (the
	// comment's end and the \unrestrict line of 15.14 and later): how much
	// of a dump's end the checks below keep.
	TailSize = 4096
)

// StartsAsDump says whether the start of a plain SQL file is pg_dump's.
func StartsAsDump(head []byte) bool { return bytes.HasPrefix(head, []byte(Header)) }

// Complete says whether the end of a plain dump (its last TailSize bytes)
// ends as pg_dump ends its files: with the closing line.
func Complete(tail []byte) bool { return bytes.Contains(tail, []byte(ClosingLine)) }

// A Tail keeps the last TailSize bytes (at least) written to it, to check
// at the end that a dump is Complete.
type Tail struct {
	b []byte
}

// Write keeps p's end; it never fails.
func (t *Tail) Write(p []byte) (int, error) {
	if len(p) >= TailSize {
		t.b = append(t.b[:0], p[len(p)-TailSize:]...)
		return len(p), nil
	}
	t.b = append(t.b, p...)
	if len(t.b) > 2*TailSize {
		t.b = append(t.b[:0], t.b[len(t.b)-TailSize:]...)
	}
	return len(p), nil
}

// Complete says whether what was written ends as pg_dump ends its files.
func (t *Tail) Complete() bool { return Complete(t.b) }

// A Holdback passes a plain dump on to its writer but for its closing
// comment (and the \unrestrict line pg_dump writes after it), which it
// keeps: aidb writes the rows of tables read in parts before it, where
// pg_dump would have put them.
type Holdback struct {
	w       io.Writer
	tail    []byte
	trailer []byte
}

// NewHoldback passes what is written to it on to w, holding back the
// last TailSize bytes until Finish.
func NewHoldback(w io.Writer) *Holdback { return &Holdback{w: w} }

// Write passes on all but the last TailSize bytes written so far.
func (h *Holdback) Write(p []byte) (int, error) {
	h.tail = append(h.tail, p...)
	if n := len(h.tail) - TailSize; n > 0 {
		if _, err := h.w.Write(h.tail[:n]); err != nil {
			return 0, err
		}
		h.tail = append(h.tail[:0], h.tail[n:]...)
	}
	return len(p), nil
}

// Finish passes on what precedes the closing comment, and keeps the
// comment and what follows it for Trailer. A dump without the comment at
// the start of a line was cut short: an error, and nothing more is
// written.
func (h *Holdback) Finish() error {
	i := bytes.LastIndex(h.tail, []byte(closingComment))
	if i < 0 || (i > 0 && h.tail[i-1] != '\n') {
		return fmt.Errorf("pg_dump's output does not end with its closing comment (%q): it was cut short; nothing was written: run the backup again", ClosingLine)
	}
	h.trailer = bytes.Clone(h.tail[i:])
	_, err := h.w.Write(h.tail[:i])
	return err
}

// Trailer is the closing comment and what followed it, once Finish
// succeeded.
func (h *Holdback) Trailer() []byte { return h.trailer }
