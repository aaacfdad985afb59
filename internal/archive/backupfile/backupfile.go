// Package backupfile says what a backup file is, by its name: what it holds
// (Kind), how it is compressed (Compression), and the names aidb gives
// backup files (<db>[-schema|-data]-YYYYMMDD-HHMMSS.sql[.gz|.zst][.age], UTC) and
// the <db>-latest pointers. It touches no files: the folder (package
// backupdir) and the catalog of backups (package catalog) do.
package backupfile

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Kind is what a backup holds.
type Kind string

// The kinds: a whole database, its schema alone, or its data alone.
const (
	Full   Kind = "full"
	Schema Kind = "schema"
	Data   Kind = "data"
)

// Compression of a backup file.
type Compression string

// The compressions a backup file can have (its name says which).
const (
	None Compression = "none"
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// Sealed is c's bytes encrypted with age afterwards ("zstd+age"): the
// file's name ends in .age.
func (c Compression) Sealed() Compression {
	if c.IsSealed() {
		return c
	}
	return c + sealedSuffix
}

// IsSealed says the file is age-encrypted.
func (c Compression) IsSealed() bool { return strings.HasSuffix(string(c), sealedSuffix) }

// Inner is the compression under the encryption (c itself when not sealed).
func (c Compression) Inner() Compression {
	return Compression(strings.TrimSuffix(string(c), sealedSuffix))
}

const sealedSuffix = "+age"

// compressions are every compression, sealed or not.
var compressions = [...]Compression{None, Gzip, Zstd, None + sealedSuffix, Gzip + sealedSuffix, Zstd + sealedSuffix}

// ParseCompression accepts none, gzip and zstd; "" is none.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case None, Gzip, Zstd:
		return c, nil
	case "":
		return None, nil
	}
	return "", fmt.Errorf("compression %q: use none, gzip or zstd", s)
}

// Ext is the file name extension: .sql, .sql.gz or .sql.zst, and .age
// after it when sealed.
func (c Compression) Ext() string {
	if c.IsSealed() {
		return c.Inner().Ext() + ".age"
	}
	switch c {
	case Gzip:
		return ".sql.gz"
	case Zstd:
		return ".sql.zst"
	}
	return ".sql"
}

// compressionOf maps a name's ending after .sql to its compression.
func compressionOf(ext string) Compression {
	if inner, ok := strings.CutSuffix(ext, ".age"); ok {
		return compressionOf(inner).Sealed()
	}
	switch ext {
	case ".gz":
		return Gzip
	case ".zst":
		return Zstd
	}
	return None
}

// TimeLayout is the timestamp in file names, in UTC.
const TimeLayout = "20060102-150405"

// Name is a backup's file name.
func Name(db string, kind Kind, at time.Time, c Compression) string {
	suffix := ""
	if kind != Full {
		suffix = "-" + string(kind)
	}
	return db + suffix + "-" + at.UTC().Format(TimeLayout) + c.Ext()
}

var nameRE = regexp.MustCompile(`^(.+?)(-schema|-data)?-(\d{8}-\d{6})\.sql((?:\.gz|\.zst)?(?:\.age)?)$`)

// Parsed is what a backup's file name says.
type Parsed struct {
	Database    string
	Kind        Kind
	Created     time.Time
	Compression Compression
}

// Parse reads a backup file name; ok is false for other files (latest
// pointers, manifests, partial files among them).
func Parse(name string) (p Parsed, ok bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return Parsed{}, false
	}
	at, err := time.ParseInLocation(TimeLayout, m[3], time.UTC)
	if err != nil {
		return Parsed{}, false
	}
	p = Parsed{Database: m[1], Kind: Full, Created: at, Compression: compressionOf(m[4])}
	if m[2] != "" {
		p.Kind = Kind(m[2][1:])
	}
	return p, true
}

// LatestName is the pointer to the newest full backup of db.
func LatestName(db string, c Compression) string { return db + "-latest" + c.Ext() }

// OtherLatestNames are db's latest pointer names with compressions other
// than c: one pointer per database, so these go when c's is set.
func OtherLatestNames(db string, c Compression) []string {
	var out []string
	for _, other := range compressions {
		if other != c {
			out = append(out, LatestName(db, other))
		}
	}
	return out
}

var latestRE = regexp.MustCompile(`^(.+)-latest\.sql((?:\.gz|\.zst)?(?:\.age)?)$`)

// ParseLatest reads a latest pointer's name (LatestName's inverse): the
// database and the compression it names; ok is false for other names.
func ParseLatest(name string) (db string, c Compression, ok bool) {
	m := latestRE.FindStringSubmatch(name)
	if m == nil {
		return "", "", false
	}
	return m[1], compressionOf(m[2]), true
}
