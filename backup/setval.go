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
// database (sequences are not transactional) could not give.
type setvalScanner struct {
	carry []byte // an unfinished line that may be a setval line
	found []fingerprint.Sequence
}

// maxSetvalLine bounds a carried line: longer ones are not setval lines.
const maxSetvalLine = 4096

func (s *setvalScanner) scan(p []byte) {
	if len(s.carry) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(s.carry)+len(p) <= maxSetvalLine {
				s.carry = append(s.carry, p...)
			} else {
				s.carry = s.carry[:0]
			}
			return
		}
		s.line(append(s.carry, p[:i]...))
		s.carry = s.carry[:0]
		p = p[i+1:]
	}
	for {
		j := bytes.Index(p, setvalPrefix)
		if j < 0 {
			break
		}
		if j > 0 && p[j-1] != '\n' {
			p = p[j+1:]
			continue
		}
		k := bytes.IndexByte(p[j:], '\n')
		if k < 0 {
			s.carry = append(s.carry[:0], p[j:]...)
			return
		}
		s.line(p[j : j+k])
		p = p[j+k+1:]
	}
	// The last, unfinished line may be the start of a setval line.
	rest := p[bytes.LastIndexByte(p, '\n')+1:]
	if len(rest) > 0 && len(rest) < len(setvalPrefix) && bytes.HasPrefix(setvalPrefix, rest) {
		s.carry = append(s.carry[:0], rest...)
	}
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
