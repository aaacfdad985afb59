package catalog

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/aidb/aidb/internal/store/folder"
)

// Store is where backup files live, reduced to the few calls the catalog
// makes to list, check, find, prune and point at them: each store answers
// them alike, so none of those asks where a backup lives (offen's
// docker-volume-backup keeps its storage backends behind one interface in
// the same way). The backup folder (Folder) is the first store; an object
// store (the repository) is meant to be the second.
//
// Files are named by their names in the store: no folders.
type Store interface {
	// Location names the store in plans and messages: the folder's path.
	Location() string
	// Path is how people and the other commands name a file of the store
	// (the folder's file's path).
	Path(name string) string
	// List returns every file with a final name: backup files, manifests,
	// set manifests, other files, and pointers with the names they point
	// at. Files being written are left out.
	List(ctx context.Context) ([]Entry, error)
	// Open reads a file.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Remove removes a file, or a pointer (not the file it names), for
	// good: the removal outlives a crash once Remove returns. A missing
	// file is no error.
	Remove(ctx context.Context, name string) error
	// Link makes name a pointer to the file target, replacing an existing
	// pointer of that name at once (never none in between).
	Link(ctx context.Context, name, target string) error
}

// Entry is one name in a store.
type Entry struct {
	Name string
	// Size is a file's size in bytes.
	Size int64
	// Pointer says the entry points at another file, Target: a name in
	// the store, or, for a pointer that leads out of the store, where it
	// leads (which no name in the store matches).
	Pointer bool
	Target  string
}

// Folder is the backup folder as a store: files are the folder's regular
// files, pointers its symbolic links. It writes through package backupdir,
// so every change is flushed to disk before it returns.
type Folder struct {
	// Dir is the folder's path.
	Dir string
}

// Location is the folder's path.
func (f Folder) Location() string { return f.Dir }

// Path is the file's path in the folder.
func (f Folder) Path(name string) string { return filepath.Join(f.Dir, name) }

// List lists the folder; a missing folder is empty. A link's target is
// the name of a file in the folder when it names one there (relative or
// absolute), else the path it names.
func (f Folder) List(context.Context) ([]Entry, error) {
	des, err := folder.ReadDir(f.Dir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Clean(f.Dir)
	out := make([]Entry, len(des))
	for i, de := range des {
		out[i] = Entry{Name: de.Name, Size: de.Size, Pointer: de.Link}
		if de.Link {
			target := de.Target
			if !filepath.IsAbs(target) {
				target = filepath.Join(dir, target)
			}
			if filepath.Dir(target) == dir {
				target = filepath.Base(target)
			}
			out[i].Target = target
		}
	}
	return out, nil
}

// Open opens the file (following a link).
func (f Folder) Open(_ context.Context, name string) (io.ReadCloser, error) {
	return os.Open(f.Path(name))
}

// Remove removes the file or link and flushes the folder.
func (f Folder) Remove(_ context.Context, name string) error { return folder.Remove(f.Dir, name) }

// Link makes name a relative symbolic link to target, atomically.
func (f Folder) Link(_ context.Context, name, target string) error {
	return folder.Link(f.Dir, name, target)
}
