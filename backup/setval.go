package backup

import (
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"

	"github.com/aidb/aidb/fingerprint"
)

// setvalPrefix starts the lines in which a plain pg_dump file sets each
// sequence: SELECT pg_catalog.setval('public.rules_id_seq', 1020, true);
var setvalPrefix = []byte("SELECT pg_catalog.setval('")

// setvalScanner collects the sequence values a dump sets, from the stream
// as it passes: the values the file will restore, which a query on the live
// database (sequences are not transactional) could not give. It looks only
// at lines that start with the prefix, using bytes.Index over each chunk
// (no per-line work in Go). A COPY data line that starts with the same text
// would be taken for one; the parse then has to match exactly, too.
type setvalScanner struct {
	// midLine says the next byte continues a line that is not a candidate.
	midLine bool
	// carry is the start of a candidate line that the chunk cut.
	carry []byte
	found []fingerprint.Sequence
}

// maxSetvalLine bounds a carried line: longer ones are not setval lines.
const maxSetvalLine = 4096

func (s *setvalScanner) scan(p []byte) {
	if len(s.carry) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.carry = append(s.carry, p...)
			if len(s.carry) > maxSetvalLine || !s.candidate(s.carry) {
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
		j := bytes.Index(p, setvalPrefix)
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
	case restAtStart && s.candidate(rest):
		s.carry = append(s.carry[:0], rest...)
	default:
		s.midLine = true
	}
}

// candidate says whether a line start can still become a setval line.
func (s *setvalScanner) candidate(b []byte) bool {
	return bytes.HasPrefix(setvalPrefix, b) || bytes.HasPrefix(b, setvalPrefix)
}

// line parses SELECT pg_catalog.setval('<name literal>', <value>, <called>);
func (s *setvalScanner) line(l []byte) {
	rest, ok := strings.CutPrefix(string(l), string(setvalPrefix))
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
	s.found = append(s.found, fingerprint.Sequence{Name: name.String(), Value: v, Called: strings.TrimSpace(fields[2]) == "true"})
}

// unquote turns a quoted qualified name ("a"."b" or a.b) into a.b.
func unquote(qualified string) string {
	s := strings.ReplaceAll(qualified, `""`, "\x00")
	return strings.ReplaceAll(strings.ReplaceAll(s, `"`, ""), "\x00", `"`)
}

func jsonIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

func removeQuietly(path string) error {
	err := os.Remove(path)
	if os.IsNotExist(err) {
		return nil
	}
	return err
}
