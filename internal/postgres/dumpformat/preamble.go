package dumpformat

import (
	"bytes"
	"fmt"
	"io"
)

// firstEntry is where pg_dump's first entry (or its closing comment)
// starts: the first comment block after an empty line. What comes before
// it is the header: the opening comment, the \restrict line, the version
// comments and the session settings (SET ..., set_config('search_path')),
// none of which is such a block.
var firstEntry = []byte("\n\n--\n")

// maxHeader bounds what a Preamble holds back while it looks for the end
// of the header (pg_dump's is under 1 KiB).
const maxHeader = 64 << 10

// A Preamble passes a plain dump on to its writer with text put in after
// pg_dump's header (its opening comment and session settings), before the
// first entry: so the file still starts as pg_dump starts its files, and
// text runs before any object is created, under pg_dump's settings. Only
// the first dump written to it gets text (a file of several dumps holds it
// once).
type Preamble struct {
	w    io.Writer
	text []byte
	head []byte
	done bool
}

// NewPreamble passes what is written to it on to w, with text put in after
// the header; an empty text is put nowhere.
func NewPreamble(w io.Writer, text string) *Preamble {
	return &Preamble{w: w, text: []byte(text), done: text == ""}
}

// Write passes p on, holding back the header until its end is seen.
func (p *Preamble) Write(b []byte) (int, error) {
	if p.done {
		return p.w.Write(b)
	}
	p.head = append(p.head, b...)
	i := bytes.Index(p.head, firstEntry)
	if i < 0 {
		if len(p.head) > maxHeader {
			return 0, fmt.Errorf("the dump's first %d bytes hold no entry after its header: this is no plain pg_dump output", maxHeader)
		}
		return len(b), nil
	}
	p.done = true
	at := i + 2 // after the empty line, before the entry's comment
	head := p.head
	p.head = nil
	if _, err := p.w.Write(head[:at]); err != nil {
		return 0, err
	}
	if _, err := p.w.Write(p.text); err != nil {
		return 0, err
	}
	if _, err := p.w.Write(head[at:]); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Close says whether the text went in: a dump that ended within its
// header was cut short. It writes nothing.
func (p *Preamble) Close() error {
	if !p.done {
		return fmt.Errorf("the dump ended within its header (%d bytes), before its first entry: it was cut short", len(p.head))
	}
	return nil
}

// A Postscript passes a plain dump (one, or several one after another) on
// to its writer with text put in before the last closing comment: the
// file still ends as pg_dump ends its files, and text runs after every
// object and row. It holds back the last TailSize bytes until Close.
type Postscript struct {
	w    io.Writer
	hb   *Holdback
	text []byte
}

// NewPostscript passes what is written to it on to w, with text put in
// before the last closing comment; an empty text is put nowhere.
func NewPostscript(w io.Writer, text string) *Postscript {
	p := &Postscript{w: w, text: []byte(text)}
	if text != "" {
		p.hb = NewHoldback(w)
	}
	return p
}

// Write passes b on (all but its last bytes, until Close).
func (p *Postscript) Write(b []byte) (int, error) {
	if p.hb == nil {
		return p.w.Write(b)
	}
	return p.hb.Write(b)
}

// Close writes what was held back, with the text before the closing
// comment; a dump without one was cut short (an error, and the text is
// not written).
func (p *Postscript) Close() error {
	if p.hb == nil {
		return nil
	}
	if err := p.hb.Finish(); err != nil {
		return err
	}
	if _, err := p.w.Write(p.text); err != nil {
		return err
	}
	_, err := p.w.Write(p.hb.Trailer())
	return err
}
