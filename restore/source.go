package restore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/aidb/aidb/backupfile"
	"github.com/aidb/aidb/manifest"
)

// detect tells the compression of a file by its first bytes, not its name.
func detect(path string) (backupfile.Compression, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return backupfile.Gzip, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return backupfile.Zstd, nil
	}
	return backupfile.None, nil
}

// content streams a backup file's plain SQL while hashing its bytes. At the
// end of the file it checks size and sha256 against the manifest, if there
// is one: a file that changed since the preflight (replaced, cut, flipped)
// ends in an error instead of a clean end of file, so the script it feeds
// never reaches its COMMIT.
type content struct {
	tail     []byte // the last bytes of plain SQL, for the end-of-dump check
	f        *os.File
	raw      *countingReader
	h        hash.Hash
	plain    io.Reader
	closer   func()
	m        *manifest.Manifest
	checked  bool
	progress func(int64)
}

func openContent(path string, c backupfile.Compression, m *manifest.Manifest, progress func(int64)) (*content, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	ct := &content{f: f, h: sha256.New(), m: m, closer: func() {}, progress: progress}
	ct.raw = &countingReader{r: io.TeeReader(f, ct.h), progress: progress}
	switch c {
	case backupfile.Gzip:
		zr, err := gzip.NewReader(ct.raw)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s is not a readable gzip file: %w", path, err)
		}
		ct.plain = zr
	case backupfile.Zstd:
		zr, err := zstd.NewReader(ct.raw)
		if err != nil {
			f.Close()
			return nil, err
		}
		ct.plain, ct.closer = zr, zr.Close
	default:
		ct.plain = ct.raw
	}
	return ct, nil
}

func (c *content) Read(p []byte) (int, error) {
	n, err := c.plain.Read(p)
	if c.m == nil { // without a manifest, the end of the dump is the check
		if n >= tailSize {
			c.tail = append(c.tail[:0], p[n-tailSize:n]...)
		} else {
			c.tail = append(c.tail, p[:n]...)
			if len(c.tail) > 2*tailSize {
				c.tail = append(c.tail[:0], c.tail[len(c.tail)-tailSize:]...)
			}
		}
	}
	if errors.Is(err, io.EOF) && !c.checked {
		c.checked = true
		if c.m == nil && !completeDump(c.tail) {
			return n, errCutShort
		}
		// Read what the decompressor left, so the hash covers every byte.
		if _, cerr := io.Copy(io.Discard, c.raw); cerr != nil {
			return n, cerr
		}
		if c.m != nil {
			if c.raw.n != c.m.Size {
				return n, fmt.Errorf("the file changed while it was being restored: %d bytes read, the manifest says %d", c.raw.n, c.m.Size)
			}
			if sum := hex.EncodeToString(c.h.Sum(nil)); sum != c.m.SHA256 {
				return n, fmt.Errorf("the file changed while it was being restored: its sha256 is now %s, the manifest says %s", sum, c.m.SHA256)
			}
		}
	}
	return n, err
}

func (c *content) Close() error {
	c.closer()
	return c.f.Close()
}

// tailSize is how much of the end of a dump the completeness check keeps.
const tailSize = 4096

// dumpComplete is the last comment pg_dump writes into a plain dump.
const dumpComplete = "-- PostgreSQL database dump complete"

var errCutShort = errors.New("the file does not end as a pg_dump file does (no \"" + dumpComplete + "\" line): it was cut short or is not a pg_dump file")

// completeDump says whether the end of a plain dump has pg_dump's closing
// comment, which a file cut short lacks.
func completeDump(tail []byte) bool {
	return bytes.Contains(tail, []byte(dumpComplete))
}

type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
	calls    int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.calls++
	if c.progress != nil && (c.calls%64 == 0 || err != nil) {
		c.progress(c.n)
	}
	return n, err
}

// copyTable is a table a plain dump loads with COPY, and its columns.
type copyTable struct {
	Qualified string   // as the dump writes it, e.g. public.rules
	Columns   []string // unquoted
}

// dumpTables is what a plain SQL dump says about its tables.
type dumpTables struct {
	// Copies are the tables it loads, from its COPY lines: what a file
	// without a manifest holds.
	Copies []copyTable
	// Creates are the tables it creates (CREATE [UNLOGGED] TABLE), as the
	// dump writes their names.
	Creates []string
}

// names is every table the dump creates or loads, schema.name unquoted,
// each once, in the order first seen.
func (d dumpTables) names() []string {
	var out []string
	seen := map[string]bool{}
	add := func(q string) {
		s, n := splitQualified(q)
		if k := s + "." + n; !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, c := range d.Creates {
		add(c)
	}
	for _, c := range d.Copies {
		add(c.Qualified)
	}
	return out
}

// scanCopyTables reads a plain SQL dump and lists the tables it loads,
// from its COPY lines: what a file without a manifest holds.
func scanCopyTables(r io.Reader) ([]copyTable, error) {
	d, err := scanDump(r)
	return d.Copies, err
}

// scanDump reads a plain SQL dump and lists the tables it creates and
// loads. Lines are taken as pg_dump writes them: a statement at the start
// of a line, rows of a COPY skipped. (A function body with a line that
// starts with CREATE TABLE would count too: that only makes a file look
// more like its target, never less.)
func scanDump(r io.Reader) (dumpTables, error) {
	var out dumpTables
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	inCopy := false
	for sc.Scan() {
		line := sc.Text()
		if inCopy {
			if line == `\.` {
				inCopy = false
			}
			continue
		}
		if rest, ok := strings.CutPrefix(line, "COPY "); ok && strings.HasSuffix(line, " FROM stdin;") {
			inCopy = true
			rest = strings.TrimSuffix(rest, " FROM stdin;")
			name, cols, _ := strings.Cut(rest, " (")
			ct := copyTable{Qualified: name}
			for _, c := range strings.Split(strings.TrimSuffix(cols, ")"), ", ") {
				if c != "" {
					ct.Columns = append(ct.Columns, unquoteIdent(c))
				}
			}
			out.Copies = append(out.Copies, ct)
			continue
		}
		for _, prefix := range []string{"CREATE TABLE ", "CREATE UNLOGGED TABLE "} {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				if name := leadingName(rest); name != "" {
					out.Creates = append(out.Creates, name)
				}
			}
		}
	}
	return out, sc.Err()
}

// leadingName is the (maybe qualified, maybe quoted) name at the start of
// s, as written: "public.rules (" gives public.rules, `"a b"."c" (` gives
// "a b"."c".
func leadingName(s string) string {
	inQuote := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == ' ' || c == '(' || c == ';' || c == '\t':
			return s[:i]
		}
	}
	return s
}

// unquoteIdent turns "Mixed ""Case""" into Mixed "Case", and leaves plain
// identifiers as they are.
func unquoteIdent(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return s
}

// splitQualified splits a dump's schema.table (each part maybe quoted).
func splitQualified(q string) (schema, table string) {
	inQuote := false
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case '"':
			inQuote = !inQuote
		case '.':
			if !inQuote {
				return unquoteIdent(q[:i]), unquoteIdent(q[i+1:])
			}
		}
	}
	return "public", unquoteIdent(q)
}
