// Package backupdir owns the backup folder's files: the folder's mode,
// files that appear whole or not at all (written as *.partial, fsynced,
// renamed), symbolic links replaced atomically, removals that survive a
// crash, and the listing of the folder's entries. What the names mean is
// package backupfile's; which files make a backup, and which backups stay,
// is package catalog's. It knows nothing of PostgreSQL.
package folder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/runs/owner"
)

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
		if st.Mode()&fs.ModeSticky != 0 {
			// A shared folder such as /tmp: narrowing it would break
			// everyone else's use of it.
			return fault.BadInput(fmt.Errorf("%w: %s (mode %04o) is a shared folder where anyone may put a file; set AIDB_BACKUP_DIR to a private folder (aidb creates it 0700), such as %s",
				ErrWorldWritable, dir, st.Mode().Perm(), filepath.Join(dir, "aidb-backups")))
		}
		return fault.BadInput(fmt.Errorf("%w: %s (mode %04o) could hold a backup anyone replaced; chmod 700 %s, or set AIDB_BACKUP_DIR to a private folder",
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

// WriteFileAtomic writes data to path through a partial file
// (path~<owner>.partial, mode 0600, fsynced), renames it over path
// (replacing an existing file) and flushes the folder, so path holds either
// its old bytes or all of data.
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

// Link makes dir/name a relative symbolic link to the file target names in
// dir, atomically (a link made beside it, renamed over it), and flushes the
// folder.
func Link(dir, name, target string) error {
	link := filepath.Join(dir, name)
	tmp := partialName(link)
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("point %s at %s: %w", link, filepath.Join(dir, target), err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("point %s at %s: %w", link, filepath.Join(dir, target), err)
	}
	return syncDir(dir)
}

// Remove removes dir/name (a link itself, not what it names) and flushes
// the folder, so the removal survives a crash. A missing file is no error.
func Remove(dir, name string) error {
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err // *fs.PathError: "remove <path>: <why>"
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}

// DirEntry is one entry of the folder with a final name: a regular file,
// or a symbolic link and what it names.
type DirEntry struct {
	Name string
	// Size is a regular file's size.
	Size int64
	// Link says the entry is a symbolic link; Target is what it names, as
	// written (relative to the folder, or absolute).
	Link   bool
	Target string
}

// ReadDir lists the regular files and symbolic links in dir, by name;
// partial files and anything else (folders, pipes) are left out. A missing
// folder is empty.
func ReadDir(dir string) ([]DirEntry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read backup folder: %w", err)
	}
	var out []DirEntry
	for _, de := range des {
		if strings.HasSuffix(de.Name(), PartialSuffix) {
			continue
		}
		switch {
		case de.Type().IsRegular():
			info, err := de.Info()
			if err != nil {
				continue // removed since the folder was read
			}
			out = append(out, DirEntry{Name: de.Name(), Size: info.Size()})
		case de.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(filepath.Join(dir, de.Name()))
			if err != nil {
				continue
			}
			out = append(out, DirEntry{Name: de.Name(), Link: true, Target: target})
		}
	}
	return out, nil
}

// Entry is one backup file in the folder.
type Entry struct {
	Path string
	backupfile.Parsed
	Size int64
}

// List returns the backup files in dir by their names, newest first, without
// reading their manifests (package catalog lists backups with what their
// manifests say); latest pointers, manifests and partial files are left out.
// A missing folder is empty.
func List(dir string) ([]Entry, error) {
	des, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, de := range des {
		if p, ok := backupfile.Parse(de.Name); ok && !de.Link {
			out = append(out, Entry{Path: filepath.Join(dir, de.Name), Parsed: p, Size: de.Size})
		}
	}
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}
