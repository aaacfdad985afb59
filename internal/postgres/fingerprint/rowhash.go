package fingerprint

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/big"

	"github.com/aidb/aidb/internal/postgres/dumpformat"
)

// RowHasher takes every table's row count and content hash from a plain
// pg_dump stream as it passes, equal to what the data scan computes on the
// server, so a backup reads each row once (pg_dump's read) instead of
// twice. The rows of each COPY block are turned from COPY's text format
// into the record text ROW(...)::text writes, and hashed as the scan hashes
// them: the sum of the first 64 bits of sha256, as a signed number.
//
// pg_dump must write values as the fingerprint's session settings do
// (dumpformat.DumpEnv does that). Write never fails; Fill reports a
// stream it could not follow.
type RowHasher struct {
	carry []byte
	// dataHeader says pg_dump's "-- Data for Name:" comment was seen since
	// the last COPY block: only a COPY line after it starts a block, not
	// one inside a function body.
	dataHeader bool
	cur        *rowSum
	sums       map[string]*rowSum
	err        error
	rec, val   []byte
}

// rowSum is one table's count and 128-bit sum of signed 64-bit hashes.
type rowSum struct {
	table string
	cols  int
	n     int64
	lo    uint64
	hi    int64
}

func (s *rowSum) add(x int64) {
	lo := s.lo + uint64(x)
	if lo < s.lo {
		s.hi++
	}
	s.lo = lo
	s.hi += x >> 63
}

// String is the sum as numeric::text writes it.
func (s *rowSum) String() string {
	v := big.NewInt(s.hi)
	v.Lsh(v, 64)
	return v.Add(v, new(big.Int).SetUint64(s.lo)).String()
}

// Write reads the next part of the stream.
func (h *RowHasher) Write(p []byte) (int, error) {
	n := len(p)
	if len(h.carry) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			h.carry = append(h.carry, p...)
			return n, nil
		}
		h.carry = append(h.carry, p[:i]...)
		h.line(h.carry)
		h.carry = h.carry[:0]
		p = p[i+1:]
	}
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		h.line(p[:i])
		p = p[i+1:]
	}
	h.carry = append(h.carry, p...)
	return n, nil
}

func (h *RowHasher) line(l []byte) {
	if h.err != nil {
		return
	}
	if h.cur != nil {
		if dumpformat.IsCopyEnd(l) {
			h.cur = nil
			return
		}
		h.cur.n++
		h.cur.add(h.rowHash(l, h.cur.cols))
		return
	}
	if dumpformat.IsDataComment(l) {
		h.dataHeader = true
		return
	}
	if !h.dataHeader {
		return
	}
	c, ok, err := dumpformat.ParseCopy(l)
	if !ok {
		return
	}
	if err == nil && c.Schema == "" {
		err = fmt.Errorf("no schema-qualified table name")
	}
	if err != nil {
		h.err = fmt.Errorf("fingerprint: read the dump's line %q: %w", l, err)
		return
	}
	h.dataHeader = false
	table, cols := c.Key(), len(c.Columns)
	if h.sums == nil {
		h.sums = map[string]*rowSum{}
	}
	if _, dup := h.sums[table]; dup {
		h.err = fmt.Errorf("fingerprint: the dump holds the data of table %s twice", table)
		return
	}
	h.cur = &rowSum{table: table, cols: cols}
	h.sums[table] = h.cur
}

// Fill sets each table's row count and content hash from the stream read.
// A table the stream holds no data for is an error: the hash would describe
// rows the file does not have.
func (h *RowHasher) Fill(tables []Table) error {
	if len(h.carry) > 0 {
		h.line(h.carry)
		h.carry = h.carry[:0]
	}
	if h.err != nil {
		return h.err
	}
	if h.cur != nil {
		return fmt.Errorf("fingerprint: the dump ended inside the data of table %s", h.cur.table)
	}
	for i := range tables {
		s, ok := h.sums[tables[i].Key()]
		if !ok {
			return fmt.Errorf("fingerprint: the dump holds no data for table %s", tables[i].Key())
		}
		n := s.n
		tables[i].Rows, tables[i].Hash = &n, s.String()
	}
	return nil
}

// rowHash is the scan's hash of one COPY line with cols columns.
func (h *RowHasher) rowHash(l []byte, cols int) int64 {
	rec := append(h.rec[:0], '(')
	if cols > 0 {
		for i := 0; ; i++ {
			f := l
			j := bytes.IndexByte(l, '\t')
			if j >= 0 {
				f = l[:j]
			}
			if i > 0 {
				rec = append(rec, ',')
			}
			rec = h.appendField(rec, f)
			if j < 0 {
				break
			}
			l = l[j+1:]
		}
	}
	rec = append(rec, ')')
	h.rec = rec
	sum := sha256.Sum256(rec)
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// quoted marks the bytes for which record_out puts a value in double
// quotes: quote, backslash, parentheses, comma and white space.
var quoted = func() (t [256]bool) {
	for _, c := range []byte("\\\"(), \t\n\v\f\r") {
		t[c] = true
	}
	return t
}()

// appendField appends one COPY text field as record_out writes the value:
// NULL as nothing, values that are empty or hold a quote, backslash,
// parenthesis, comma or white space in double quotes with quotes and
// backslashes doubled.
func (h *RowHasher) appendField(rec, f []byte) []byte {
	v := f
	if bytes.IndexByte(f, '\\') >= 0 {
		if dumpformat.IsNull(f) {
			return rec
		}
		v = dumpformat.UnescapeCopy(h.val[:0], f)
		h.val = v
	}
	quote := len(v) == 0
	for _, c := range v {
		if quoted[c] {
			quote = true
			break
		}
	}
	switch {
	case !quote:
		return append(rec, v...)
	case bytes.IndexByte(v, '"') < 0 && bytes.IndexByte(v, '\\') < 0:
		rec = append(rec, '"')
		rec = append(rec, v...)
		return append(rec, '"')
	}
	rec = append(rec, '"')
	for _, c := range v {
		if c == '"' || c == '\\' {
			rec = append(rec, c)
		}
		rec = append(rec, c)
	}
	return append(rec, '"')
}
