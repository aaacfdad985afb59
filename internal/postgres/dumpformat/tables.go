package dumpformat

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// Tables is what a plain SQL dump says about its tables. A name the dump
// does not qualify is taken to be in public.
type Tables struct {
	// Copies are the tables it loads, from its COPY headers: what a file
	// without a manifest holds.
	Copies []Copy
	// Creates are the tables it creates (CREATE [UNLOGGED] TABLE).
	Creates []Table
	// CreatesDatabase is the line number of a CREATE DATABASE or a
	// \connect: a dump made with pg_dump --create (-C), which makes and
	// switches to a database of its own; 0 when there is none.
	CreatesDatabase int
	// SourceMajor is the PostgreSQL major the dump was taken from, from
	// its "-- Dumped from database version 15.14" line; 0 without one.
	SourceMajor int
	// LargeObjects says the dump creates large objects (pg_dump's
	// "SELECT pg_catalog.lo_create('…')" lines, in a data-only dump too).
	LargeObjects bool
}

// All is every table the dump creates or loads, each once, in the order
// first seen (creates first).
func (d Tables) All() []Table {
	var out []Table
	seen := map[Table]bool{}
	add := func(t Table) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, t := range d.Creates {
		add(t)
	}
	for _, c := range d.Copies {
		add(c.Table)
	}
	return out
}

// createPrefixes start the lines that create a table.
var createPrefixes = [...]string{"CREATE TABLE ", "CREATE UNLOGGED TABLE "}

// ScanTables reads a plain SQL dump and lists the tables it creates and
// loads. Lines are taken as pg_dump writes them: a statement at the start
// of a line, the rows of a COPY skipped. (A function body with a line that
// starts with CREATE TABLE would count too: that only makes a file look
// more like its target, never less.) A COPY header that cannot be read is
// an error: pg_dump writes none such, and psql would fail on it.
func ScanTables(r io.Reader) (Tables, error) {
	var out Tables
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 256<<20)
	inCopy := false
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if inCopy {
			inCopy = !IsCopyEnd(line)
			continue
		}
		c, ok, err := ParseCopy(line)
		if err != nil {
			return out, fmt.Errorf("line %d, %q, is no COPY statement pg_dump writes: %w", n, line, err)
		}
		if ok {
			inCopy = true
			out.Copies = append(out.Copies, Copy{Table: inPublic(c.Table), Columns: c.Columns})
			continue
		}
		if v, ok := bytes.CutPrefix(line, []byte(dumpedFrom)); ok && out.SourceMajor == 0 {
			out.SourceMajor = LeadingNumber(string(v))
		}
		if bytes.HasPrefix(line, []byte(loCreate)) {
			out.LargeObjects = true
		}
		if out.CreatesDatabase == 0 && (bytes.HasPrefix(line, []byte("CREATE DATABASE ")) || bytes.HasPrefix(line, []byte(`\connect `))) {
			out.CreatesDatabase = n
		}
		for _, prefix := range createPrefixes {
			if rest, ok := bytes.CutPrefix(line, []byte(prefix)); ok {
				if t, _, err := parseName(rest); err == nil {
					out.Creates = append(out.Creates, inPublic(t))
				}
			}
		}
	}
	return out, sc.Err()
}

// loCreate starts the line with which pg_dump creates a large object.
const loCreate = "SELECT pg_catalog.lo_create("

// dumpedFrom starts the header line that names the source's version.
const dumpedFrom = "-- Dumped from database version "

// LeadingNumber is the number a version string starts with: 15 in "15.14
// (Debian 15.14-0+deb12u1)"; 0 when it starts otherwise.
func LeadingNumber(v string) int {
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// inPublic puts an unqualified name in public.
func inPublic(t Table) Table {
	if t.Schema == "" {
		t.Schema = "public"
	}
	return t
}
