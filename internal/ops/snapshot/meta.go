// Package snapshot keeps point-in-time copies of an application database
// on its own server, as template databases: snapshots (aidb snapshot),
// the reset that puts one back in place of the database (aidb reset), and
// clones made from one for parallel tests (aidb clone).
//
// A snapshot is CREATE DATABASE … TEMPLATE of the application database,
// made with every connection to it ended (PostgreSQL copies only a
// database nobody is connected to): an open transaction is rolled back
// first, so a snapshot holds what was committed, never half of a
// transaction. Databases carry no labels: what aidb knows of each copy
// (kind, source, time, migration version, fingerprint, TTL) is JSON in its
// COMMENT ON DATABASE, so it lives and dies with the data (in the volume:
// down and up keep it, nuke removes it).
//
// Every step that replaces data works on copies under temporary names
// and renames in one transaction; a run killed at any point leaves the
// database or its snapshot whole, and Repair (run first by every
// operation) puts back or drops what such a run left.
//
// Nothing here prints: results and repairs are returned for cmd/aidb to
// tell.
package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aidb/aidb/internal/postgres/fingerprint"
)

// Kind is what a copy is for.
type Kind string

const (
	// KindSnapshot is a template kept to reset the database to.
	KindSnapshot Kind = "snapshot"
	// KindClone is a database made from a snapshot for a test.
	KindClone Kind = "clone"
)

// metaFormat marks a database comment as aidb's (and its format).
const metaFormat = 1

// AutoReset is Meta.Auto for the snapshot a reset keeps of what it
// replaced: reset --undo goes back to the newest of them.
const AutoReset = "reset"

// Meta is what aidb records of a snapshot or a clone, as JSON in its
// COMMENT ON DATABASE.
type Meta struct {
	// Format marks the comment as aidb's (metaFormat).
	Format int  `json:"aidb_snapshot"`
	Kind   Kind `json:"kind"`
	// Name is the name people use (aidb snapshot rm NAME).
	Name string `json:"name"`
	// Source is the application database it was made of (POSTGRES_DB).
	Source  string    `json:"source"`
	Created time.Time `json:"created"`
	// Auto says why aidb made a snapshot by itself (AutoReset); empty for
	// one asked for.
	Auto string `json:"auto,omitempty"`
	// From is the snapshot a clone was made from.
	From string `json:"from,omitempty"`
	// TTL and Expires: a clone's time to live (aidb clone prune removes
	// it after Expires); none when empty.
	TTL     string     `json:"ttl,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
	// Strategy is the CREATE DATABASE strategy the copy was made with.
	Strategy         string `json:"strategy"`
	MigrationVersion int64  `json:"migration_version"`
	// Database is what belongs to the database itself and a template copy
	// does not carry: a reset gives it to the new database.
	Props Props `json:"properties"`
	// Fingerprint is the copy's: schema hash, tables (rows, content
	// hashes), sequences, as backup manifests record them.
	Fingerprint fingerprint.Fingerprint `json:"fingerprint"`
}

// Props are what belongs to the database itself, which CREATE DATABASE
// … TEMPLATE does not copy: owner, connection limit, comment, ACL, its
// settings and its roles' settings there. A snapshot records the
// source's; a reset gives them to the new database, a clone all but the
// comment (a clone's comment is its metadata). Snapshots taken before the
// ACL and settings were recorded carry owner, limit and comment only.
type Props = fingerprint.Database

// Rows is the number of rows the fingerprint counted.
func (m Meta) Rows() int64 {
	var n int64
	for _, t := range m.Fingerprint.Tables {
		if t.Rows != nil {
			n += *t.Rows
		}
	}
	return n
}

// Expired says whether a clone's TTL has run out at now.
func (m Meta) Expired(now time.Time) bool {
	return m.Expires != nil && !now.Before(*m.Expires)
}

// encode is m as the database comment.
func (m Meta) encode() (string, error) {
	m.Format = metaFormat
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode the metadata of %s: %w", m.Name, err)
	}
	return string(b), nil
}

// errNotOurs is a comment that is not aidb's metadata.
var errNotOurs = errors.New("not an aidb snapshot or clone")

// decode reads a database comment; errNotOurs for any comment that aidb
// did not write (a user's own comment on some other database).
func decode(comment string) (Meta, error) {
	var m Meta
	if !strings.HasPrefix(comment, `{"aidb_snapshot":`) {
		return m, errNotOurs
	}
	if err := json.Unmarshal([]byte(comment), &m); err != nil {
		return m, fmt.Errorf("read aidb metadata: %w", err)
	}
	if m.Format != metaFormat || (m.Kind != KindSnapshot && m.Kind != KindClone) {
		return m, errNotOurs
	}
	return m, nil
}

// namePattern is what a snapshot's or a clone's name may be: what needs
// no quoting in a shell or a URL.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// maxIdent is PostgreSQL's longest database name (NAMEDATALEN-1 bytes).
const maxIdent = 63

// dbName is the database name of the copy of source called name.
func dbName(kind Kind, source, name string) string {
	infix := "_snap_"
	if kind == KindClone {
		infix = "_clone_"
	}
	return source + infix + name
}

// ValidateName checks a snapshot's or clone's name for source: lower-case
// letters, digits, - and _, and short enough for the database name it
// makes (dbName) to fit PostgreSQL's 63 bytes.
func ValidateName(kind Kind, source, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("name %q: use lower-case letters, digits, - and _ (starting with a letter or digit)", name)
	}
	if n := len(dbName(kind, source, name)); n > maxIdent {
		return fmt.Errorf("name %q: too long by %d bytes for a database name on %s's server (at most %d)", name, n-maxIdent, source, maxIdent-len(dbName(kind, source, "")))
	}
	return nil
}

// autoName is the name of a snapshot aidb makes itself at t:
// auto-YYYYMMDD-HHMMSS (UTC), with -2, -3, ... where taken.
func autoName(t time.Time, taken func(string) bool) string {
	base := "auto-" + t.UTC().Format("20060102-150405")
	name := base
	for i := 2; taken(name); i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return name
}
