// Package catalog is the one catalog of backups: it lists the backups of a
// store with what their manifests say of them, finds the newest intact
// backup of a database and kind, keeps the <db>-latest pointers, and plans
// and carries out prunes (the decisions are package retention's, a pure
// function the catalog feeds). Where the files live is the Store's
// business: the backup folder today (Folder), an object store later.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/archive/verifylog"
	"github.com/aidb/aidb/internal/store/retention"
)

// Catalog is the backups of one store.
type Catalog struct{ store Store }

// New is the catalog of the backups in s.
func New(s Store) *Catalog { return &Catalog{store: s} }

// Location names the store (the folder's path).
func (c *Catalog) Location() string { return c.store.Location() }

// Listed is one backup file with what its manifest says of it. list --json
// and prune --json name its fields alike.
type Listed struct {
	File string `json:"file"`
	// Location is where the file is: "local" (the backup folder) or
	// "repository".
	Location    string                 `json:"location"`
	Database    string                 `json:"database"`
	Kind        backupfile.Kind        `json:"kind"`
	Compression backupfile.Compression `json:"compression"`
	// Created is the manifest's created time; the file name's for a file
	// without a readable manifest.
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
	// Manifest is false for a file without one (a plain pg_dump file).
	Manifest bool `json:"manifest"`
	// ChecksumOK says the file's size and sha256 match its manifest.
	ChecksumOK bool `json:"checksum_ok"`
	// Problem says what is wrong when ChecksumOK is false.
	Problem string `json:"problem,omitempty"`
	Latest  bool   `json:"latest"`
	// Safety marks a safety backup aidb took before a command replaced or
	// removed data, with why and by which command.
	Safety *manifest.Safety `json:"safety,omitempty"`
	// Verification is the file's last verification (package verifylog),
	// nil when its bytes were never verified.
	Verification *Verification `json:"verification,omitempty"`
	// name is the file's name in the store.
	name string
	// foreign says the file has no manifest at all.
	foreign bool
}

// Verification is when a file was last verified, what was found, and the
// image it was restored into.
type Verification struct {
	At      time.Time         `json:"at"`
	Outcome verifylog.Outcome `json:"outcome"`
	Image   string            `json:"image,omitempty"`
}

// State is what retention makes of the file.
func (l Listed) State() retention.State {
	switch {
	case l.ChecksumOK:
		return retention.Intact
	case l.foreign:
		return retention.Foreign
	}
	return retention.Damaged
}

// listing is one reading of the store, by name.
type listing struct {
	entries []Entry
	byName  map[string]Entry
}

func (c *Catalog) read(ctx context.Context) (listing, error) {
	entries, err := c.store.List(ctx)
	if err != nil {
		return listing{}, err
	}
	l := listing{entries: entries, byName: make(map[string]Entry, len(entries))}
	for _, e := range entries {
		l.byName[e.Name] = e
	}
	return l, nil
}

// has says whether the store holds a file (not a pointer) of that name.
func (l listing) has(name string) bool {
	e, ok := l.byName[name]
	return ok && !e.Pointer
}

// backup is a backup file as its name describes it.
type backup struct {
	Entry
	backupfile.Parsed
	// byManifest marks a file whose name is not aidb's (copied to "my
	// backup.sql", say) but that has a manifest beside it: its Parsed is
	// empty, and what it is comes from its manifest.
	byManifest bool
}

// backups are the listing's backup files, newest first by their names:
// those named as aidb names them, and those of any other name with a
// manifest beside them (last, until their manifests are read).
func (l listing) backups() []backup {
	var out []backup
	for _, e := range l.entries {
		if e.Pointer {
			continue
		}
		if p, ok := backupfile.Parse(e.Name); ok {
			out = append(out, backup{Entry: e, Parsed: p})
		} else if _, ok := l.byName[e.Name+manifest.Suffix]; ok {
			out = append(out, backup{Entry: e, byManifest: true})
		}
	}
	slices.SortFunc(out, func(a, b backup) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// latest maps each latest pointer's name to the name it points at (which
// may be gone).
func (l listing) latest() map[string]string {
	m := map[string]string{}
	for _, e := range l.entries {
		if _, _, ok := backupfile.ParseLatest(e.Name); ok && e.Pointer {
			m[e.Name] = e.Target
		}
	}
	return m
}

// Files are the paths of the backup files, newest first by their names;
// their manifests are not read.
func (c *Catalog) Files(ctx context.Context) ([]string, error) {
	l, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range l.backups() {
		out = append(out, c.store.Path(b.Name))
	}
	return out, nil
}

// List describes every backup file, newest first by the manifests' created
// times, checking each against its manifest (it reads every file once).
func (c *Catalog) List(ctx context.Context) ([]Listed, error) {
	l, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	return c.list(ctx, l), nil
}

func (c *Catalog) list(ctx context.Context, l listing) []Listed {
	latest := map[string]bool{}
	for _, target := range l.latest() {
		latest[target] = true
	}
	log := c.verifications(ctx, l)
	bs := l.backups()
	out := make([]Listed, 0, len(bs))
	for _, b := range bs {
		it := Listed{File: c.store.Path(b.Name), Location: c.where(), Database: b.Database, Kind: b.Kind, Compression: b.Compression,
			Created: b.Created, Size: b.Size, Latest: latest[b.Name], name: b.Name}
		m, err := c.manifest(ctx, l, b.Name)
		switch {
		case errors.Is(err, manifest.ErrMissing):
			it.Problem, it.foreign = "no manifest: not made by aidb, or its manifest was removed", true
		case err != nil:
			it.Problem = err.Error()
		default:
			it.Manifest = true
			it.Safety = m.Safety
			if !m.Created.IsZero() {
				it.Created = m.Created
			}
			if b.byManifest {
				// Its name says nothing: it is what its manifest says.
				it.Database, it.Kind, it.Compression = m.Database, m.Kind, m.Compression
			}
			if !b.byManifest && (m.Database != b.Database || m.Kind != b.Kind) {
				// A file renamed (or copied) under another database's or
				// kind's name must not count as one of that database's
				// backups, nor push its real ones out of a keep rule.
				it.Problem = fmt.Sprintf("its manifest says it is a %s backup of %s, but its name says %s of %s: renamed or copied under another name", m.Kind, m.Database, b.Kind, b.Database)
			} else if err := c.check(ctx, b.Name, m); err != nil {
				it.Problem = err.Error()
			} else {
				it.ChecksumOK = true
			}
			if r, ok := log.Last(b.Name, m.SHA256); ok {
				it.Verification = &Verification{At: r.At, Outcome: r.Outcome, Image: r.Image}
			}
		}
		out = append(out, it)
	}
	slices.SortStableFunc(out, func(a, b Listed) int { return b.Created.Compare(a.Created) })
	return out
}

// Verifications is the store's verification log (package verifylog): every
// recorded verification of its files.
func (c *Catalog) Verifications(ctx context.Context) (verifylog.Log, error) {
	l, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	return c.verifications(ctx, l), nil
}

// verifications reads the store's verification log. A log that cannot be
// read leaves every file unverified: it says nothing about the backups.
func (c *Catalog) verifications(ctx context.Context, l listing) verifylog.Log {
	if !l.has(verifylog.Name) {
		return nil
	}
	r, err := c.store.Open(ctx, verifylog.Name)
	if err != nil {
		return nil
	}
	defer func() { _ = r.Close() }()
	log, _ := verifylog.Parse(r)
	return log
}

// manifest reads the manifest of the backup file name; one the listing
// does not hold is manifest.ErrMissing.
func (c *Catalog) manifest(ctx context.Context, l listing, name string) (manifest.Manifest, error) {
	path := c.store.Path(name)
	if _, ok := l.byName[name+manifest.Suffix]; !ok {
		return manifest.Manifest{}, fmt.Errorf("%s: %w", path, manifest.ErrMissing)
	}
	b, err := c.readAll(ctx, name+manifest.Suffix)
	if err != nil {
		return manifest.Manifest{}, err
	}
	return manifest.Parse(b, path)
}

// Summer is a store that keeps each file's sha256 beside it (an object
// store, in the object's metadata, recorded as the bytes were uploaded and
// checked): the catalog checks its files against their manifests by size
// and that sha256, without reading them.
type Summer interface {
	// Sum is the file's size and recorded sha256 ("" when none).
	Sum(ctx context.Context, name string) (int64, string, error)
}

// Remote is a store elsewhere than this machine: its files are listed with
// location "repository".
type Remote interface{ Remote() bool }

// where is the store's location for Listed.Location.
func (c *Catalog) where() string {
	if r, ok := c.store.(Remote); ok && r.Remote() {
		return "repository"
	}
	return "local"
}

// check compares the file's bytes with its manifest (manifest.Check), or,
// in a Summer, its size and recorded sha256.
func (c *Catalog) check(ctx context.Context, name string, m manifest.Manifest) error {
	if s, ok := c.store.(Summer); ok {
		size, sum, err := s.Sum(ctx, name)
		switch {
		case err != nil:
			return err
		case size != m.Size:
			return fmt.Errorf("%s is %d bytes but its manifest says %d: the upload was cut short or the file was replaced", c.store.Path(name), size, m.Size)
		case sum != m.SHA256:
			return fmt.Errorf("%s has sha256 %q recorded but its manifest says %s: the file was replaced", c.store.Path(name), sum, m.SHA256)
		}
		// A data-only backup's schema part lives in the manifest: it is
		// checked wherever the backup is.
		return manifest.CheckSchema(c.store.Path(name), m)
	}
	r, err := c.store.Open(ctx, name)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	return manifest.CheckFrom(r, c.store.Path(name), m)
}

func (c *Catalog) readAll(ctx context.Context, name string) ([]byte, error) {
	r, err := c.store.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	return io.ReadAll(r)
}

// Described is a backup file with its manifest as read, unchecked: what
// push compares and uploads.
type Described struct {
	// Name is the file's name in the store; Path is how people name it.
	Name, Path string
	Size       int64
	// Manifest is the parsed manifest and ManifestBytes its bytes, unless
	// Err says why there is none (manifest.ErrMissing) or it is unreadable.
	Manifest      manifest.Manifest
	ManifestBytes []byte
	Err           error
}

// Describe lists the backup files with their manifests, reading no backup
// file (their checksums are not checked), newest first by their names.
func (c *Catalog) Describe(ctx context.Context) ([]Described, error) {
	l, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	var out []Described
	for _, b := range l.backups() {
		d := Described{Name: b.Name, Path: c.store.Path(b.Name), Size: b.Size}
		if _, ok := l.byName[b.Name+manifest.Suffix]; !ok {
			d.Err = fmt.Errorf("%s: %w", d.Path, manifest.ErrMissing)
		} else if d.ManifestBytes, d.Err = c.readAll(ctx, b.Name+manifest.Suffix); d.Err == nil {
			d.Manifest, d.Err = manifest.Parse(d.ManifestBytes, d.Path)
		}
		out = append(out, d)
	}
	return out, nil
}

// Sets reads the set manifests of the store, by name, with their bytes.
func (c *Catalog) Sets(ctx context.Context) (map[string]manifest.Set, map[string][]byte, error) {
	l, err := c.read(ctx)
	if err != nil {
		return nil, nil, err
	}
	sets, err := c.sets(ctx, l)
	if err != nil {
		return nil, nil, err
	}
	raw := map[string][]byte{}
	for name := range sets {
		if raw[name], err = c.readAll(ctx, name); err != nil {
			return nil, nil, err
		}
	}
	return sets, raw, nil
}

// Newest finds the newest intact backup of database db and kind whose
// manifest match accepts (nil: any), as a path: newest by the manifests'
// created times, never by file names, and intact meaning size and sha256
// match the manifest (each candidate is read, newest first, until one is).
// A file without a manifest, or damaged, never counts. It returns "" when
// there is none. Restore's advice and verify's schema for a data-only
// backup find their schema backup here.
func (c *Catalog) Newest(ctx context.Context, db string, kind backupfile.Kind, match func(manifest.Manifest) bool) (string, manifest.Manifest, error) {
	l, err := c.read(ctx)
	if err != nil {
		return "", manifest.Manifest{}, err
	}
	type candidate struct {
		name string
		m    manifest.Manifest
	}
	var cs []candidate
	for _, b := range l.backups() {
		if b.Database != db || b.Kind != kind {
			continue
		}
		m, err := c.manifest(ctx, l, b.Name)
		if err != nil || m.Database != db || m.Kind != kind || (match != nil && !match(m)) {
			continue
		}
		cs = append(cs, candidate{b.Name, m})
	}
	slices.SortStableFunc(cs, func(a, b candidate) int { return b.m.Created.Compare(a.m.Created) })
	for _, cand := range cs {
		if c.check(ctx, cand.name, cand.m) == nil {
			return c.store.Path(cand.name), cand.m, nil
		}
	}
	return "", manifest.Manifest{}, nil
}

// PointLatest makes db's latest pointer (backupfile.LatestName) name the
// backup file name, and removes db's pointers with other compressions: a
// database has one. Failing to remove another pointer is no error: the new
// one is in place, and a backup that was taken is not failed for an old
// pointer.
func (c *Catalog) PointLatest(ctx context.Context, db string, comp backupfile.Compression, name string) error {
	if err := c.store.Link(ctx, backupfile.LatestName(db, comp), name); err != nil {
		return err
	}
	for _, other := range backupfile.OtherLatestNames(db, comp) {
		_ = c.store.Remove(ctx, other)
	}
	return nil
}
