package dumpformat

import (
	"bytes"
	"strconv"
	"strings"
)

// A Sequence is a sequence's state as a dump sets it.
type Sequence struct {
	Name   string // as the dump writes it: public.rules_id_seq, "My Schema"."s"
	Value  int64
	Called bool
}

// setvalPrefix starts the lines in which a plain pg_dump file sets each
// sequence: SELECT pg_catalog.setval('public.rules_id_seq', 1020, true);
const setvalPrefix = "SELECT pg_catalog.setval('"

// A SetvalScanner collects the sequence values a dump sets, from the stream
// as it passes: the values the file will restore, which a query on the live
// database (sequences are not transactional) could not give. It looks only
// at lines that start with the prefix, using bytes.Index over each chunk
// (no per-line work in Go). A COPY data line that starts with the same text
// would be taken for one; the parse then has to match exactly, too.
type SetvalScanner struct {
	// midLine says the next byte continues a line that is not a candidate.
	midLine bool
	// carry is the start of a candidate line that the chunk cut.
	carry []byte
	found []Sequence
}

// maxSetvalLine bounds a carried line: longer ones are not setval lines.
const maxSetvalLine = 4096

// Scan reads the next chunk of the dump.
func (s *SetvalScanner) Scan(p []byte) {
	prefix := []byte(setvalPrefix)
	if len(s.carry) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.carry = append(s.carry, p...)
			if len(s.carry) > maxSetvalLine || !candidate(s.carry) {
				s.carry, s.midLine = s.carry[:0], true
			}
			return
		}
		s.line(append(s.carry, p[:i]...))
		s.carry = s.carry[:0]
		p = p[i+1:]
	} else if s.midLine {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return
		}
		p, s.midLine = p[i+1:], false
	}
	// p starts at the start of a line.
	atStart := true
	for {
		j := bytes.Index(p, prefix)
		if j < 0 {
			break
		}
		if (j == 0 && !atStart) || (j > 0 && p[j-1] != '\n') {
			p, atStart = p[j+1:], false
			continue
		}
		k := bytes.IndexByte(p[j:], '\n')
		if k < 0 {
			s.carry = append(s.carry[:0], p[j:]...)
			return
		}
		s.line(p[j : j+k])
		p, atStart = p[j+k+1:], true
	}
	// The chunk's last, unfinished line may be the start of a setval line.
	rest, restAtStart := p, atStart
	if i := bytes.LastIndexByte(p, '\n'); i >= 0 {
		rest, restAtStart = p[i+1:], true
	}
	switch {
	case len(rest) == 0:
		s.midLine = false
	case restAtStart && candidate(rest):
		s.carry = append(s.carry[:0], rest...)
	default:
		s.midLine = true
	}
}

// Sequences are the sequence values found so far, in the dump's order.
func (s *SetvalScanner) Sequences() []Sequence { return s.found }

// candidate says whether a line start can still become a setval line.
func candidate(b []byte) bool {
	return bytes.HasPrefix([]byte(setvalPrefix), b) || bytes.HasPrefix(b, []byte(setvalPrefix))
}

// line parses SELECT pg_catalog.setval('<name literal>', <value>, <called>);
func (s *SetvalScanner) line(l []byte) {
	rest, ok := strings.CutPrefix(string(l), setvalPrefix)
	if !ok {
		return
	}
	var name strings.Builder
	i := 0
	for ; i < len(rest); i++ {
		if rest[i] == '\'' {
			if i+1 < len(rest) && rest[i+1] == '\'' {
				name.WriteByte('\'')
				i++
				continue
			}
			break
		}
		name.WriteByte(rest[i])
	}
	if i >= len(rest) {
		return
	}
	fields := strings.Split(strings.TrimSuffix(strings.TrimSpace(rest[i+1:]), ");"), ",")
	if len(fields) != 3 {
		return
	}
	v, err := strconv.ParseInt(strings.TrimSpace(fields[1]), 10, 64)
	if err != nil {
		return
	}
	s.found = append(s.found, Sequence{Name: name.String(), Value: v, Called: strings.TrimSpace(fields[2]) == "true"})
}
