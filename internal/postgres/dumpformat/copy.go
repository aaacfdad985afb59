package dumpformat

import (
	"bytes"
	"fmt"
	"strings"
)

// A Table is a table a dump names, unquoted. Schema is "" where the dump
// does not qualify the name.
type Table struct {
	Schema, Name string
}

// Key is schema.name, unquoted.
func (t Table) Key() string { return t.Schema + "." + t.Name }

// A Copy is the header of a COPY block: the table it loads and its
// columns (unquoted), as pg_dump lists them.
type Copy struct {
	Table
	Columns []string
}

const (
	// DataComment starts the comment pg_dump writes before each table's
	// COPY block.
	DataComment = "-- Data for Name: "
	copyPrefix  = "COPY "
	copySuffix  = " FROM stdin;"
	// CopyEnd is the line that ends a COPY block's rows.
	CopyEnd = `\.`
	// CopyTrailer ends a table's rows as pg_dump ends them: the end marker
	// and two empty lines.
	CopyTrailer = CopyEnd + "\n\n\n"
)

// IsDataComment says whether a line is pg_dump's comment before a table's
// data.
func IsDataComment(line []byte) bool { return bytes.HasPrefix(line, []byte(DataComment)) }

// IsCopyEnd says whether a line ends a COPY block's rows.
func IsCopyEnd(line []byte) bool { return len(line) == 2 && line[0] == '\\' && line[1] == '.' }

// IsNull says whether a COPY text field is NULL.
func IsNull(field []byte) bool { return len(field) == 2 && field[0] == '\\' && field[1] == 'N' }

// ParseCopy reads a line as pg_dump's COPY header,
// `COPY schema.table (col, ...) FROM stdin;`. ok is false for a line that
// is no COPY from stdin; err says why one that is cannot be read.
func ParseCopy(line []byte) (c Copy, ok bool, err error) {
	if !bytes.HasPrefix(line, []byte(copyPrefix)) || !bytes.HasSuffix(line, []byte(copySuffix)) || len(line) < len(copyPrefix)+len(copySuffix) {
		return Copy{}, false, nil
	}
	s := line[len(copyPrefix) : len(line)-len(copySuffix)]
	c.Table, s, err = parseName(s)
	if err != nil {
		return Copy{}, true, err
	}
	s = bytes.TrimLeft(s, " ")
	if len(s) == 0 {
		return c, true, nil
	}
	if s[0] != '(' {
		return Copy{}, true, fmt.Errorf("unexpected %q after the table name", s)
	}
	s = s[1:]
	for {
		var col string
		if col, s, err = parseIdent(bytes.TrimLeft(s, " ")); err != nil {
			return Copy{}, true, err
		}
		c.Columns = append(c.Columns, col)
		if len(s) > 0 && s[0] == ',' {
			s = s[1:]
			continue
		}
		if len(s) == 0 || s[0] != ')' || len(bytes.TrimSpace(s[1:])) > 0 {
			return Copy{}, true, fmt.Errorf("malformed column list")
		}
		return c, true, nil
	}
}

// parseName reads a table name, schema-qualified or not, each part quoted
// or not, and returns the rest of s.
func parseName(s []byte) (Table, []byte, error) {
	first, s, err := parseIdent(s)
	if err != nil {
		return Table{}, nil, err
	}
	if len(s) == 0 || s[0] != '.' {
		return Table{Name: first}, s, nil
	}
	name, s, err := parseIdent(s[1:])
	if err != nil {
		return Table{}, nil, err
	}
	return Table{Schema: first, Name: name}, s, nil
}

// ParseName reads a whole (maybe qualified, maybe quoted) table name as
// pg_dump and quote_ident write it: "My Schema"."a""b" is My Schema, a"b.
func ParseName(s string) (Table, error) {
	t, rest, err := parseName([]byte(s))
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("unexpected %q after the table name", rest)
	}
	if err != nil {
		return Table{}, fmt.Errorf("read table name %q: %w", s, err)
	}
	return t, nil
}

// parseIdent reads one identifier, quoted ("a""b") or not, and returns it
// unquoted with the rest of s. An unquoted one ends at a dot, space,
// parenthesis, comma, semicolon, tab or line break.
func parseIdent(s []byte) (string, []byte, error) {
	if len(s) == 0 {
		return "", nil, fmt.Errorf("missing identifier")
	}
	if s[0] != '"' {
		i := bytes.IndexAny(s, ". (),;\t\r\n")
		if i < 0 {
			i = len(s)
		}
		if i == 0 {
			return "", nil, fmt.Errorf("missing identifier")
		}
		return string(s[:i]), s[i:], nil
	}
	var b []byte
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b = append(b, s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b = append(b, '"')
			i++
			continue
		}
		return string(b), s[i+1:], nil
	}
	return "", nil, fmt.Errorf("unterminated quoted identifier")
}

// copyControls are COPY's one-letter escapes of control characters.
var copyControls = [256]byte{'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v'}

// UnescapeCopy appends to dst one field of COPY's text format decoded as
// COPY FROM reads it: \b \f \n \r \t \v, octal \NNN and hex \xHH escapes,
// and a backslash before any other character stands for that character.
// (NULL, \N, is the caller's to tell: IsNull.)
func UnescapeCopy(dst, field []byte) []byte {
	f := field
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		i++
		if i == len(f) {
			break
		}
		c = f[i]
		if ctl := copyControls[c]; ctl != 0 {
			dst = append(dst, ctl)
			continue
		}
		switch c {
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := c - '0'
			for k := 0; k < 2 && i+1 < len(f) && f[i+1] >= '0' && f[i+1] <= '7'; k++ {
				i++
				v = v<<3 | (f[i] - '0')
			}
			dst = append(dst, v)
		case 'x':
			if i+1 < len(f) && hexDigit(f[i+1]) >= 0 {
				i++
				v := byte(hexDigit(f[i]))
				if i+1 < len(f) && hexDigit(f[i+1]) >= 0 {
					i++
					v = v<<4 | byte(hexDigit(f[i]))
				}
				dst = append(dst, v)
			} else {
				dst = append(dst, 'x')
			}
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func hexDigit(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// DataHeader is what pg_dump writes before a table's rows: its data comment
// and COPY header. schema, name and owner are unquoted (a line break in
// them is written as a space, as pg_dump's comments do); owner is "" in a
// dump without owners (--no-owner), which writes "-". qualified and
// columns are quoted as in SQL (columns a comma-separated list).
func DataHeader(schema, name, owner, qualified, columns string) []byte {
	oneLine := strings.NewReplacer("\n", " ", "\r", " ")
	if owner == "" {
		owner = "-"
	}
	return fmt.Appendf(nil, "--\n%s%s; Type: TABLE DATA; Schema: %s; Owner: %s\n--\n\n%s%s (%s)%s\n",
		DataComment, oneLine.Replace(name), oneLine.Replace(schema), oneLine.Replace(owner), copyPrefix, qualified, columns, copySuffix)
}
