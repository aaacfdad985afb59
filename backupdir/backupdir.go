// Package backupdir owns the backup folder: file names
// (<db>[-schema|-data]-YYYYMMDD-HHMMSS.sql[.gz|.zst], UTC), files that
// appear whole or not at all (written as *.partial, fsynced, renamed), the
// <db>-latest pointers, and listing. It knows nothing of PostgreSQL.
package backupdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aidb/aidb/exitcode"
	"github.com/aidb/aidb/owner"
)

// Kind is what a backup holds.
type Kind string

const (
	Full   Kind = "full"
	Schema Kind = "schema"
	Data   Kind = "data"
)

// ParseKind accepts full, schema and data.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case Full, Schema, Data:
		return k, nil
	}
	return "", fmt.Errorf("backup kind %q: use full, schema or data", s)
}

// Compression of a backup file.
type Compression string

const (
	None Compression = "none"
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// ParseCompression accepts none, gzip and zstd.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case None, Gzip, Zstd:
		return c, nil
	case "":
		return None, nil
	}
	return "", fmt.Errorf("compression %q: use none, gzip or zstd", s)
}

// Ext is the file name extension: .sql, .sql.gz or .sql.zst.
func (c Compression) Ext() string {
	switch c {
	case Gzip:
		return ".sql.gz"
	case Zstd:
		return ".sql.zst"
	}
	return ".sql"
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

// LatestName is the pointer to the newest full backup of db.
func LatestName(db string, c Compression) string { return db + "-latest" + c.Ext() }

var nameRE = regexp.MustCompile(`^(.+?)(-schema|-data)?-(\d{8}-\d{6})\.sql(\.gz|\.zst)?$`)

// Parsed is what a backup's file name says.
type Parsed struct {
	Database    string
	Kind        Kind
	Created     time.Time
	Compression Compression
}

// Parse reads a backup file name; ok is false for other files.
func Parse(name string) (p Parsed, ok bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return Parsed{}, false
	}
	at, err := time.ParseInLocation(TimeLayout, m[3], time.UTC)
	if err != nil {
		return Parsed{}, false
	}
	p = Parsed{Database: m[1], Kind: Full, Created: at, Compression: None}
	if m[2] != "" {
		p.Kind = Kind(m[2][1:])
	}
	switch m[4] {
	case ".gz":
		p.Compression = Gzip
	case ".zst":
		p.Compression = Zstd
	}
	return p, true
}

// ErrWorldWritable refuses a backup folder anyone may write to: anyone
// could replace a backup there.
var ErrWorldWritable = errors.New("backup folder is writable by everyone")

// Ensure creates the folder (mode 0700) if it does not exist, narrows an
// existing one of ours to 0700, and refuses one anyone may write to.
func Ensure(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create backup folder: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("backup folder: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("backup folder %s is not a folder", dir)
	}
	if st.Mode().Perm()&0o002 != 0 {
		return exitcode.BadInput(fmt.Errorf("%w: %s (mode %04o) could hold a backup anyone replaced; chmod 700 %s, or set AIDB_BACKUP_DIR to a private folder",
			ErrWorldWritable, dir, st.Mode().Perm(), dir))
	}
	if st.Mode().Perm() != 0o700 {
		// Ours (created by a checkout, say): make it private. Someone
		// else's stays as it is.
		_ = os.Chmod(dir, 0o700)
	}
	return nil
}

// FreeTime returns the first second, from at on, for which none of names(t)
// exists in dir, so a backup never replaces another taken in the same
// second.
func FreeTime(dir string, at time.Time, names func(time.Time) []string) time.Time {
	at = at.UTC().Truncate(time.Second)
	for {
		taken := slices.ContainsFunc(names(at), func(n string) bool {
			_, err := os.Lstat(filepath.Join(dir, n))
			return err == nil
		})
		if !taken {
			return at
		}
		at = at.Add(time.Second)
	}
}

// File is a backup file being written: it has its final name only after
// Commit, so a file with a final name is always whole.
type File struct {
	*os.File
	final string
	done  bool
	// written and flushed are the bytes written and those whose write-out
	// to disk was started.
	written, flushed int64
}

// writebackEvery is how many written bytes start their write-out to disk
// while the backup goes on, so Commit's fsync waits only for the tail.
const writebackEvery = 8 << 20

// Write writes to the partial file and starts the write-out of every
// writebackEvery bytes.
func (f *File) Write(p []byte) (int, error) {
	n, err := f.File.Write(p)
	f.written += int64(n)
	if f.written-f.flushed >= writebackEvery {
		startWriteback(f.File, f.flushed, f.written-f.flushed)
		f.flushed = f.written
	}
	return n, err
}

// PartialSuffix marks files still being written.
const PartialSuffix = ".partial"

// partialName is the name a file has while this process writes it:
// <path>~<owner>.partial, so a later run can tell a partial file of a run
// that was killed from one a live run is writing (see package owner).
func partialName(path string) string { return owner.Name(path, PartialSuffix) }

// Create starts writing dir/name as dir/name~<owner>.partial, mode 0600. It
// refuses to replace an existing file.
func Create(dir, name string) (*File, error) {
	final := filepath.Join(dir, name)
	if _, err := os.Lstat(final); err == nil {
		return nil, fmt.Errorf("backup file %s already exists", final)
	}
	f, err := os.OpenFile(partialName(final), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create backup file: %w", err)
	}
	return &File{File: f, final: final}, nil
}

// Path is the final path the file gets on Commit.
func (f *File) Path() string { return f.final }

// Commit flushes the file to disk, gives it its final name and flushes the
// folder, so the name survives a crash.
func (f *File) Commit() error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), f.final); err != nil {
		return fmt.Errorf("rename %s: %w", f.Name(), err)
	}
	f.done = true
	return syncDir(filepath.Dir(f.final))
}

// Abort removes the partial file; after Commit it does nothing.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	_ = f.Close()
	if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove partial file: %w", err)
	}
	return nil
}

// WriteFileAtomic writes data to dir/name through a partial file, mode
// 0600, replacing an existing file.
func WriteFileAtomic(path string, data []byte) error {
	tmp := partialName(path)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		_ = f.Close()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// PointLatest makes <db>-latest<ext> a relative symbolic link to file,
// atomically, and removes latest pointers of db with other extensions.
func PointLatest(dir, db string, c Compression, file string) error {
	link := filepath.Join(dir, LatestName(db, c))
	tmp := partialName(link)
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(file), tmp); err != nil {
		return fmt.Errorf("point %s at %s: %w", link, file, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("point %s at %s: %w", link, file, err)
	}
	for _, other := range []Compression{None, Gzip, Zstd} {
		if other != c {
			_ = os.Remove(filepath.Join(dir, LatestName(db, other)))
		}
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}

// Entry is one backup file in the folder.
type Entry struct {
	Path string
	Parsed
	Size int64
}

// List returns the backup files in dir, newest first; latest pointers,
// manifests and partial files are left out. A missing folder is empty.
func List(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read backup folder: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if !de.Type().IsRegular() || strings.HasSuffix(de.Name(), PartialSuffix) {
			continue
		}
		p, ok := Parse(de.Name())
		if !ok {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue
		}
		out = append(out, Entry{Path: filepath.Join(dir, de.Name()), Parsed: p, Size: info.Size()})
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}
