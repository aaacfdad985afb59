package repository

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
)

// Object is one backup in the repository, as restore and verify read it:
// its manifest (read from its own object first), the size and sha256 the
// storage records, and its bytes as a stream (restore.Object).
type Object struct {
	repo     *Repository
	name     string
	manifest manifest.Manifest
	size     int64
	sum      string
}

// Object reads the manifest of the backup name and asks the storage for
// its data object's size and sha256 metadata. A backup without its
// manifest object (an upload cut short) is not a whole backup and is
// refused (bad input), as is a name the repository does not hold.
func (r *Repository) Object(ctx context.Context, name string) (*Object, error) {
	url := r.Path(name)
	mb, err := r.readAll(ctx, name+manifest.Suffix)
	if errors.Is(err, os.ErrNotExist) {
		if _, _, serr := r.Sum(ctx, name); serr == nil {
			return nil, fault.BadInput(fmt.Errorf("read %s: it has no manifest in the repository (an upload cut short): it is not a whole backup; aidb list shows the whole ones", url))
		}
		return nil, fault.BadInput(fmt.Errorf("read %s: no such backup in %s: aidb list shows the backups", url, r.url))
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	m, err := manifest.Parse(mb, url)
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("read %s: %w", url, err))
	}
	size, sum, err := r.Sum(ctx, name)
	if err != nil {
		// %v, not %w: the object's error (fs.ErrNotExist among them) is
		// detail here; this is an incomplete backup, not a missing one.
		return nil, fault.BadInput(fmt.Errorf("read %s: its manifest is there but its data object is not (%v): it is not a whole backup", url, err)) //nolint:errorlint // told, not wrapped (above)
	}
	return &Object{repo: r, name: name, manifest: m, size: size, sum: sum}, nil
}

// OpenObject connects to the repository of url (s3://BUCKET[/PREFIX]/FILE)
// and returns the backup it names (Object).
func OpenObject(ctx context.Context, url string) (*Object, error) {
	u, name, err := ParseObject(url)
	if err != nil {
		return nil, err
	}
	r, err := Open(ctx, u)
	if err != nil {
		return nil, err
	}
	return r.Object(ctx, name)
}

// URL names the backup.
func (o *Object) URL() string { return o.repo.Path(o.name) }

// Name is the backup's file name.
func (o *Object) Name() string { return o.name }

// Manifest is the backup's manifest.
func (o *Object) Manifest() manifest.Manifest { return o.manifest }

// Stored is the size the storage holds and the sha256 the object's
// metadata carries ("" when it carries none).
func (o *Object) Stored() (int64, string) { return o.size, o.sum }

// Open streams the object's bytes as the server sends them.
func (o *Object) Open(ctx context.Context) (io.ReadCloser, error) {
	return o.repo.Open(ctx, o.name)
}
