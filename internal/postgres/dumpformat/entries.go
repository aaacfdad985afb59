package dumpformat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// An Entry is one piece of a plain dump in file order: pg_dump's header
// (its opening comment and session settings), or one entry of its table of
// contents (the comment block "-- Name: x; Type: T; Schema: s; Owner: o"
// and the statements that follow it), or the closing comment.
type Entry struct {
	// Type is the entry's type as its comment names it ("TABLE", "INDEX",
	// "FK CONSTRAINT", "TABLE DATA", "SEQUENCE SET", ...); TypeHeader for
	// pg_dump's header, TypeEnd for its closing comment, "" for text under
	// a comment block of another form.
	Type string
	// Name and Schema are as the comment names them ("-" for none).
	Name, Schema string
	// Data says the comment is a data comment ("-- Data for Name: ").
	Data bool
	// SQL is the entry's statements (psql's \restrict and \unrestrict
	// lines left out), for an entry without rows, or the statements
	// around a data entry's COPY block.
	SQL string
	// Copy is the header of a data entry's COPY block (nil for others);
	// CopySQL its statement without the semicolon, to send with the rows.
	Copy    *Copy
	CopySQL string
}

const (
	// TypeHeader is the type Split gives pg_dump's header: the opening
	// comment, the version comments and the session settings.
	TypeHeader = "HEADER"
	// TypeEnd is the type Split gives pg_dump's closing comment.
	TypeEnd = "END"
)

// A Loader takes the pieces of a plain dump from Split, in file order.
type Loader interface {
	// Statements takes an entry's SQL (Entry.SQL).
	Statements(e Entry) error
	// Rows takes a part of a data entry's COPY block: whole rows, each
	// ending with a newline, without the end marker. The loader owns rows.
	Rows(e Entry, rows []byte) error
}

// ErrMetaCommand is a psql meta-command Split cannot run without psql
// (\connect, of a dump made with --create, or any other than
// \restrict and \unrestrict outside an entry's statements).
var ErrMetaCommand = errors.New("the dump holds a psql meta-command that only psql can run")

// SessionSettings picks from a header's SQL the statements that set up
// pg_dump's session (SET ... and set_config(...)): what every session
// that loads part of the dump runs first.
func SessionSettings(headerSQL string) []string {
	var out []string
	for _, l := range strings.Split(headerSQL, "\n") {
		if strings.HasPrefix(l, "SET ") || strings.HasPrefix(l, "SELECT pg_catalog.set_config(") {
			out = append(out, l)
		}
	}
	return out
}

// Split reads a plain dump (one, or several one after the other) and hands
// its pieces to l in file order: the statements of each entry, and the rows
// of each COPY block in parts of about chunk bytes, cut at row boundaries
// (in COPY's text format every newline in a value is escaped: a line is a
// row). Entries are recognized as pg_dump writes them: a comment block
// ("--", the entry's comment, "--") at the start of a line, outside a COPY
// block. Nothing is held but one entry's statements and one part of rows.
func Split(r io.Reader, chunk int, l Loader) error {
	s := &splitter{br: bufio.NewReaderSize(r, 256<<10), chunk: chunk, l: l}
	return s.run()
}

type splitter struct {
	br      *bufio.Reader
	chunk   int
	l       Loader
	pending [][]byte // lines read ahead, to read again
	cur     Entry
	sql     bytes.Buffer
	started bool
	lineNo  int
}

// line returns the next line with its newline ("" and io.EOF at the end).
// The bytes are valid until the next call, unless they came from pending.
func (s *splitter) line() ([]byte, error) {
	if n := len(s.pending); n > 0 {
		l := s.pending[n-1]
		s.pending = s.pending[:n-1]
		return l, nil
	}
	s.lineNo++
	l, err := s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := bytes.Clone(l)
		for errors.Is(err, bufio.ErrBufferFull) {
			l, err = s.br.ReadSlice('\n')
			long = append(long, l...)
		}
		l = long
	}
	if err == io.EOF && len(l) > 0 {
		err = nil
	}
	return l, err
}

func (s *splitter) unread(l []byte) { s.pending = append(s.pending, bytes.Clone(l)) }

func (s *splitter) run() error {
	for {
		l, err := s.line()
		if errors.Is(err, io.EOF) {
			return s.flush()
		}
		if err != nil {
			return err
		}
		if isLine(l, "--") {
			next, ok, err := s.commentBlock()
			if err != nil {
				return err
			}
			if ok {
				if err := s.flush(); err != nil {
					return err
				}
				s.cur, s.started = next, true
				continue
			}
			// Not a block: "--" is a comment line of the entry's text.
		}
		if err := s.body(l); err != nil {
			return err
		}
	}
}

// commentBlock reads, after a "--" line, the comment line and the closing
// "--" of an entry's comment block; if what follows is no such block, the
// lines read are put back.
func (s *splitter) commentBlock() (Entry, bool, error) {
	m, err := s.line()
	if errors.Is(err, io.EOF) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, err
	}
	if !bytes.HasPrefix(m, []byte("-- ")) {
		s.unread(m)
		return Entry{}, false, nil
	}
	m = bytes.Clone(m)
	n, err := s.line()
	if err != nil && !errors.Is(err, io.EOF) {
		return Entry{}, false, err
	}
	if !isLine(n, "--") {
		if len(n) > 0 {
			s.unread(n)
		}
		s.unread(m)
		return Entry{}, false, nil
	}
	return parseComment(strings.TrimRight(string(m[3:]), "\r\n")), true, nil
}

// parseComment reads an entry's comment (without its "-- "):
// "Name: x; Type: T; Schema: s; Owner: o", "Data for Name: ...", or
// pg_dump's opening and closing comments.
func parseComment(c string) Entry {
	switch {
	case c == strings.TrimPrefix(ClosingLine, "-- "):
		return Entry{Type: TypeEnd}
	case c == "PostgreSQL database dump":
		return Entry{Type: TypeHeader}
	}
	var e Entry
	rest, data := strings.CutPrefix(c, "Data for ")
	e.Data = data
	rest, ok := strings.CutPrefix(rest, "Name: ")
	if !ok {
		return Entry{}
	}
	// The name may hold "; " itself: the fields are taken from the end.
	if i := strings.LastIndex(rest, "; Owner: "); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "; Schema: "); i >= 0 {
		e.Schema, rest = rest[i+len("; Schema: "):], rest[:i]
	}
	if i := strings.LastIndex(rest, "; Type: "); i >= 0 {
		e.Type, rest = rest[i+len("; Type: "):], rest[:i]
	}
	e.Name = rest
	return e
}

// body takes one line of the current entry's text.
func (s *splitter) body(l []byte) error {
	switch {
	case bytes.HasPrefix(l, []byte(`\restrict `)), bytes.HasPrefix(l, []byte(`\unrestrict `)):
		return nil
	case bytes.HasPrefix(l, []byte(`\connect`)):
		return fmt.Errorf("line %d: %w (\\connect: a dump made with pg_dump --create)", s.lineNo, ErrMetaCommand)
	case len(l) > 0 && l[0] == '\\' && (s.cur.Type == TypeHeader || s.cur.Type == TypeEnd || !s.started):
		return fmt.Errorf("line %d: %w (%s)", s.lineNo, ErrMetaCommand, bytes.TrimSpace(l))
	}
	if s.cur.Data && s.cur.Copy == nil {
		c, ok, err := ParseCopy(bytes.TrimRight(l, "\r\n"))
		if err != nil {
			return fmt.Errorf("line %d, %q, is no COPY statement pg_dump writes: %w", s.lineNo, bytes.TrimSpace(l), err)
		}
		if ok {
			s.cur.Copy = &c
			s.cur.CopySQL = strings.TrimSuffix(strings.TrimRight(string(l), "\r\n"), ";")
			return s.rows()
		}
	}
	s.sql.Write(l)
	return nil
}

// rows streams the current COPY block's rows to the loader in parts, up to
// and without its end marker.
func (s *splitter) rows() error {
	buf := make([]byte, 0, s.chunk+64<<10)
	for {
		l, err := s.line()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the COPY block of %s has no end marker (%s): the file was cut short", s.cur.Copy.Key(), CopyEnd)
		}
		if err != nil {
			return err
		}
		if IsCopyEnd(bytes.TrimRight(l, "\r\n")) {
			if len(buf) > 0 {
				return s.l.Rows(s.cur, buf)
			}
			return nil
		}
		if l[len(l)-1] != '\n' {
			return fmt.Errorf("the COPY block of %s ends within a row: the file was cut short", s.cur.Copy.Key())
		}
		if len(buf) > 0 && len(buf)+len(l) > s.chunk {
			if err := s.l.Rows(s.cur, buf); err != nil {
				return err
			}
			buf = make([]byte, 0, s.chunk+64<<10)
		}
		buf = append(buf, l...)
	}
}

// flush hands the current entry's statements to the loader, if it has
// any besides comments and blank lines.
func (s *splitter) flush() error {
	defer s.sql.Reset()
	if !hasStatement(s.sql.Bytes()) {
		return nil
	}
	e := s.cur
	if !s.started {
		e.Type = TypeHeader
	}
	e.SQL = s.sql.String()
	return s.l.Statements(e)
}

// hasStatement says whether text holds more than comments and blank lines.
func hasStatement(text []byte) bool {
	for l := range bytes.SplitSeq(text, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && !bytes.HasPrefix(l, []byte("--")) {
			return true
		}
	}
	return false
}

func isLine(l []byte, s string) bool {
	return string(bytes.TrimRight(l, "\r\n")) == s
}

// EntryTables reads, from the statement of an index or constraint entry
// as pg_dump writes it, the table it is on and, for a foreign key, the
// table it refers to: "CREATE [UNIQUE] INDEX i ON [ONLY] s.t ...",
// "ALTER TABLE [ONLY] s.t ADD CONSTRAINT ... [REFERENCES s.u(...)]".
// ok is false when the statement is of another form.
func EntryTables(e Entry) (on Table, refs *Table, ok bool) {
	sql := strings.TrimSpace(e.SQL)
	var rest string
	switch {
	case strings.HasPrefix(sql, "CREATE INDEX "), strings.HasPrefix(sql, "CREATE UNIQUE INDEX "):
		i := strings.Index(sql, " ON ")
		if i < 0 {
			return Table{}, nil, false
		}
		rest = sql[i+len(" ON "):]
	case strings.HasPrefix(sql, "ALTER TABLE "):
		rest = strings.TrimPrefix(sql, "ALTER TABLE ")
	default:
		return Table{}, nil, false
	}
	rest = strings.TrimPrefix(rest, "ONLY ")
	t, after, err := parseName([]byte(rest))
	if err != nil || t.Schema == "" {
		return Table{}, nil, false
	}
	if e.Type == "FK CONSTRAINT" {
		j := strings.Index(string(after), " REFERENCES ")
		if j < 0 {
			return Table{}, nil, false
		}
		u, _, err := parseName(after[j+len(" REFERENCES "):])
		if err != nil || u.Schema == "" {
			return Table{}, nil, false
		}
		refs = &u
	}
	return t, refs, true
}
