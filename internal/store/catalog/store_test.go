package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/store/retention"
)

// memStore is a store held in memory, as an object store would answer:
// pointers are names whose value is another name.
type memStore struct {
	files    map[string][]byte
	pointers map[string]string
	removed  []string
	// broken names files that cannot be read.
	broken map[string]bool
}

func newMemStore() *memStore {
	return &memStore{files: map[string][]byte{}, pointers: map[string]string{}, broken: map[string]bool{}}
}

func (s *memStore) Location() string        { return "mem://backups" }
func (s *memStore) Path(name string) string { return "mem://backups/" + name }

func (s *memStore) List(context.Context) ([]Entry, error) {
	var out []Entry
	for n, b := range s.files {
		out = append(out, Entry{Name: n, Size: int64(len(b))})
	}
	for n, t := range s.pointers {
		out = append(out, Entry{Name: n, Pointer: true, Target: t})
	}
	return out, nil
}

func (s *memStore) Open(_ context.Context, name string) (io.ReadCloser, error) {
	if t, ok := s.pointers[name]; ok {
		name = t
	}
	if s.broken[name] {
		return nil, fmt.Errorf("open %s: input/output error", s.Path(name))
	}
	b, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", s.Path(name), fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *memStore) Remove(_ context.Context, name string) error {
	if _, ok := s.files[name]; ok {
		s.removed = append(s.removed, name)
	}
	delete(s.files, name)
	delete(s.pointers, name)
	return nil
}

func (s *memStore) Link(_ context.Context, name, target string) error {
	s.pointers[name] = target
	return nil
}

// put stores a full backup of db with a manifest created at created.
func (s *memStore) put(t *testing.T, db string, created time.Time, safety *manifest.Safety) string {
	t.Helper()
	name := backupfile.Name(db, backupfile.Full, created, backupfile.None)
	body := []byte("-- " + name + "\n")
	s.files[name] = body
	sum := sha256.Sum256(body)
	b, err := json.Marshal(manifest.Manifest{Format: manifest.Format, Database: db, Kind: backupfile.Full, File: name,
		Created: created, Compression: backupfile.None, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), Safety: safety})
	require.NoError(t, err)
	s.files[name+manifest.Suffix] = b
	return name
}

// TestCatalogWorksOnAnyStore lists, finds, prunes and points through the
// Store interface alone: nothing here is a file.
func TestCatalogWorksOnAnyStore(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newMemStore()
	c := New(s)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a := s.put(t, "rulesdb", base, nil)
	b := s.put(t, "rulesdb", base.Add(time.Hour), nil)
	newest := s.put(t, "rulesdb", base.Add(2*time.Hour), nil)
	safety := s.put(t, "rulesdb", base.Add(3*time.Hour), &manifest.Safety{Command: "aidb nuke", Reason: "why"})
	s.files["rulesdb-20260301-040000.sql"] = []byte("plain pg_dump") // foreign
	s.files["notes.txt"] = []byte("not a backup")
	require.NoError(t, c.PointLatest(ctx, "rulesdb", backupfile.None, b))
	s.pointers["rulesdb-latest.sql.gz"] = a // a stale pointer of another compression
	require.NoError(t, c.PointLatest(ctx, "rulesdb", backupfile.None, b))
	assert.Equal(t, map[string]string{"rulesdb-latest.sql": b}, s.pointers, "one pointer per database")
	s.pointers["rulesdb-latest.sql.bak"] = a // named like a pointer, but none

	files, err := c.Files(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{s.Path("rulesdb-20260301-040000.sql"), s.Path(safety), s.Path(newest), s.Path(b), s.Path(a)}, files, "backup files by name, newest first")

	items, err := c.List(ctx)
	require.NoError(t, err)
	require.Len(t, items, 5)
	assert.Equal(t, s.Path(safety), items[1].File, "paths are the store's")
	var latest []string
	for _, it := range items {
		if it.Latest {
			latest = append(latest, it.File)
		}
	}
	assert.Equal(t, []string{s.Path(b)}, latest)
	assert.Equal(t, retention.Foreign, items[0].State())
	assert.Contains(t, items[0].Problem, "no manifest")

	got, m, err := c.Newest(ctx, "rulesdb", backupfile.Full, func(m manifest.Manifest) bool { return m.Safety == nil })
	require.NoError(t, err)
	assert.Equal(t, s.Path(newest), got)
	assert.Equal(t, base.Add(2*time.Hour), m.Created)

	// The file the pointer names is changed: it goes, and the pointer moves.
	s.files[b] = []byte("changed")
	plan, err := c.PlanPrune(ctx, retention.Policy{KeepLast: 1, RemoveDamaged: true}, base.Add(4*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, "mem://backups", plan.Dir)
	require.NoError(t, c.Prune(ctx, plan))
	assert.ElementsMatch(t, []string{a + manifest.Suffix, a, b + manifest.Suffix, b, safety + manifest.Suffix, safety}, s.removed)
	assert.Equal(t, map[string]string{"rulesdb-latest.sql": newest, "rulesdb-latest.sql.bak": a}, s.pointers, "the pointer follows to the newest intact backup")
}

// A set manifest that cannot be read when the prune runs is kept: nothing
// says its files are gone.
func TestPruneKeepsASetItCannotRead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newMemStore()
	c := New(s)
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	old := s.put(t, "rulesdb", base, nil)
	s.put(t, "rulesdb", base.Add(time.Hour), nil)
	set := manifest.SetName(backupfile.Full, base)
	b, err := json.Marshal(manifest.Set{Format: manifest.Format, Created: base, Kind: backupfile.Full, Files: []manifest.SetFile{{Database: "rulesdb", File: old}}})
	require.NoError(t, err)
	s.files[set] = b

	plan, err := c.PlanPrune(ctx, retention.Policy{KeepLast: 1}, base.Add(2*time.Hour))
	require.NoError(t, err)
	require.Len(t, plan.Sets, 1)
	require.True(t, plan.Sets[0].Remove, "its only file goes")
	s.broken[set] = true
	err = c.Prune(ctx, plan)
	assert.ErrorContains(t, err, "read set manifest mem://backups/"+set)
	assert.NotContains(t, s.removed, set)
	assert.Contains(t, s.removed, old)

	delete(s.broken, set)
	require.NoError(t, c.Prune(ctx, plan), "a second run finishes")
	assert.Contains(t, s.removed, set)
}

func TestFolderListsLinksByName(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	other := t.TempDir()
	for _, n := range []string{"a.sql", "b.sql"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("ab"), 0o600))
	}
	require.NoError(t, os.WriteFile(filepath.Join(other, "c.sql"), nil, 0o600))
	require.NoError(t, os.Symlink("a.sql", filepath.Join(dir, "rel-latest.sql")))
	require.NoError(t, os.Symlink(filepath.Join(dir, "b.sql"), filepath.Join(dir, "abs-latest.sql")))
	require.NoError(t, os.Symlink(filepath.Join(other, "c.sql"), filepath.Join(dir, "out-latest.sql")))

	f := Folder{Dir: dir + string(filepath.Separator)}
	entries, err := f.List(t.Context())
	require.NoError(t, err)
	slices.SortFunc(entries, func(a, b Entry) int { return cmpString(a.Name, b.Name) })
	assert.Equal(t, []Entry{
		{Name: "a.sql", Size: 2},
		{Name: "abs-latest.sql", Pointer: true, Target: "b.sql"},
		{Name: "b.sql", Size: 2},
		{Name: "out-latest.sql", Pointer: true, Target: filepath.Join(other, "c.sql")},
		{Name: "rel-latest.sql", Pointer: true, Target: "a.sql"},
	}, entries, "a link into the folder names a file; one out of it names none")

	r, err := f.Open(t.Context(), "rel-latest.sql")
	require.NoError(t, err)
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.Equal(t, "ab", string(b), "Open follows a link")
	assert.Equal(t, filepath.Join(dir, "a.sql"), f.Path("a.sql"))
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
