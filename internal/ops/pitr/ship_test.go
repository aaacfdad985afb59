package pitr

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/fault"
)

// memRemote is a repository in memory: objects with the sha256 metadata
// the real one records.
type memRemote struct {
	mu   sync.Mutex
	objs map[string]memObject
	// failPut, if set, fails every upload (the repository unreachable).
	failPut error
}

type memObject struct {
	data []byte
	meta map[string]string
}

func newMemRemote() *memRemote { return &memRemote{objs: map[string]memObject{}} }

func (m *memRemote) Location() string { return "s3://mem/" }

func (m *memRemote) ListTree(_ context.Context, dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for k := range m.objs {
		if strings.HasPrefix(k, dir) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (m *memRemote) PutStream(_ context.Context, name string, meta map[string]string, fill func(io.Writer) error) error {
	if m.failPut != nil {
		return m.failPut
	}
	var b bytes.Buffer
	if err := fill(&b); err != nil {
		return err
	}
	sum := sha256.Sum256(b.Bytes())
	all := map[string]string{metaSHA256: hex.EncodeToString(sum[:])}
	maps.Copy(all, meta)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[name] = memObject{data: b.Bytes(), meta: all}
	return nil
}

func (m *memRemote) PutMeta(_ context.Context, name string, src io.Reader, size int64, sum string, meta map[string]string) error {
	if m.failPut != nil {
		return m.failPut
	}
	b, err := io.ReadAll(src)
	if err != nil {
		return err
	}
	got := sha256.Sum256(b)
	if int64(len(b)) != size || hex.EncodeToString(got[:]) != sum {
		return fmt.Errorf("put %s: %d bytes with sha256 %x, not %d with %s", name, len(b), got, size, sum)
	}
	all := map[string]string{metaSHA256: sum}
	maps.Copy(all, meta)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[name] = memObject{data: b, meta: all}
	return nil
}

func (m *memRemote) OpenMeta(_ context.Context, name string) (io.ReadCloser, map[string]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[name]
	if !ok {
		return nil, nil, fs.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(o.data)), o.meta, nil
}

func (m *memRemote) Remove(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, name)
	return nil
}

func (m *memRemote) names() []string {
	out, _ := m.ListTree(context.Background(), "")
	return out
}

// segSize is the tests' segment size (initdb --wal-segsize 1).
const segSize = 1 << 20

// streamFolder writes a backup folder for db: a base backup starting in
// segment 2 with the given files, whole segments from..to written at
// t0+n minutes, and segment to+1 as pg_receivewal's *.partial.
func streamFolder(t *testing.T, db compose.Database, name string, from, to uint64) string {
	t.Helper()
	dir := t.TempDir()
	f := FoldersOf(dir, db)
	require.NoError(t, os.MkdirAll(f.WAL, 0o755))
	b := day(name, 0, 1, from, from)
	b.SegmentSize, b.StartLSN, b.EndLSN = segSize, LSN(from*segSize), LSN(from*segSize+40)
	writeBase(t, f.Base, b)
	for n := from; n <= to; n++ {
		p := filepath.Join(f.WAL, SegmentName(1, n, segSize))
		require.NoError(t, os.WriteFile(p, randomBytes(t, segSize), 0o600))
		at := t0.Add(time.Duration(n) * time.Minute)
		require.NoError(t, os.Chtimes(p, at, at))
	}
	require.NoError(t, os.WriteFile(filepath.Join(f.WAL, SegmentName(1, to+1, segSize)+".partial"), randomBytes(t, segSize), 0o600))
	return dir
}

func writeBase(t *testing.T, baseDir string, b Base) {
	t.Helper()
	dir := filepath.Join(baseDir, b.Name)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for _, f := range []string{"base.tar.gz", "pg_wal.tar.gz", "backup_manifest"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), randomBytes(t, 3000), 0o600))
	}
	require.NoError(t, writeRecord(dir, b))
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b[:n/2]) // half random, half zeros: as a segment switched early
	require.NoError(t, err)
	return b
}

// ageKeys writes an age identity and its recipient into files.
func ageKeys(t *testing.T) (*encryption.Recipients, *encryption.Keys) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "r"), []byte(id.Recipient().String()+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "k"), []byte(id.String()+"\n"), 0o600))
	r, err := encryption.LoadRecipients(filepath.Join(dir, "r"))
	require.NoError(t, err)
	k, err := encryption.LoadKeys(filepath.Join(dir, "k"))
	require.NoError(t, err)
	return r, k
}

// sameFiles says that two folders hold the same files, byte for byte,
// with the same modification times for segments.
func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	var names []string
	require.NoError(t, filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".partial") {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		names = append(names, rel)
		return nil
	}))
	require.NotEmpty(t, names)
	for _, rel := range names {
		a, err := os.ReadFile(filepath.Join(want, rel))
		require.NoError(t, err)
		at := rel
		if strings.HasPrefix(rel, "wal") { // fetched segments go to the fetched folder
			at = filepath.Join(filepath.Dir(rel), FetchedFolder, filepath.Base(rel))
		}
		b, err := os.ReadFile(filepath.Join(got, at))
		require.NoError(t, err, rel)
		assert.True(t, bytes.Equal(a, b), "%s differs", rel)
		if strings.HasPrefix(rel, "wal") {
			ia, _ := os.Stat(filepath.Join(want, rel))
			ib, _ := os.Stat(filepath.Join(got, at))
			assert.True(t, ia.ModTime().Equal(ib.ModTime()), "%s: modified %s, fetched as %s", rel, ia.ModTime(), ib.ModTime())
		}
	}
}

func TestShipAndFetchSealed(t *testing.T) {
	t.Parallel()
	db := compose.Database{Name: "rulesdb"}
	src := streamFolder(t, db, "20261205T000000.000Z", 2, 5)
	remote := newMemRemote()
	rec, keys := ageKeys(t)

	res, err := Ship(t.Context(), ShipRequest{DB: db, BackupDir: src, Remote: remote, Seal: rec})
	require.NoError(t, err)
	assert.Len(t, res.Segments, 4, "the whole segments, not the partial one")
	assert.Equal(t, []string{"20261205T000000.000Z"}, res.Bases)
	assert.Equal(t, []string{
		"base/rulesdb/20261205T000000.000Z/aidb-base.json",
		"base/rulesdb/20261205T000000.000Z/backup_manifest.age",
		"base/rulesdb/20261205T000000.000Z/base.tar.gz.age",
		"base/rulesdb/20261205T000000.000Z/pg_wal.tar.gz.age",
		"wal/rulesdb/000000010000000000000002.zst.age",
		"wal/rulesdb/000000010000000000000003.zst.age",
		"wal/rulesdb/000000010000000000000004.zst.age",
		"wal/rulesdb/000000010000000000000005.zst.age",
	}, remote.names())
	for name, o := range remote.objs {
		if strings.HasSuffix(name, ".age") {
			assert.True(t, encryption.IsSealed(o.data), "%s is sealed", name)
		}
	}
	seg := remote.objs["wal/rulesdb/000000010000000000000002.zst.age"]
	assert.Less(t, len(seg.data), segSize*3/4, "a segment half zeros goes compressed")

	again, err := Ship(t.Context(), ShipRequest{DB: db, BackupDir: src, Remote: remote, Seal: rec})
	require.NoError(t, err)
	assert.Empty(t, again.Segments, "what the repository holds is not sent again")
	assert.Empty(t, again.Bases)

	// A machine rebuilt: an empty folder fetches it all back.
	dst := t.TempDir()
	require.NoError(t, os.MkdirAll(FoldersOf(dst, db).WAL, 0o755))
	got, err := Fetch(t.Context(), nil, FetchRequest{DB: db, BackupDir: dst, Remote: remote, Keys: keys})
	require.NoError(t, err)
	assert.Len(t, got.Segments, 4)
	assert.Equal(t, []string{"20261205T000000.000Z"}, got.Bases)
	sameFiles(t, src, dst)
	p, err := PlanRestore(db, dst, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, "20261205T000000.000Z", p.Base.Name)
	assert.Equal(t, t0.Add(5*time.Minute), p.Window.To.UTC(), "the window ends where the source's does")

	// Fetching again fetches nothing; what is there is never overwritten.
	again2, err := Fetch(t.Context(), nil, FetchRequest{DB: db, BackupDir: dst, Remote: remote, Keys: keys})
	require.NoError(t, err)
	assert.Empty(t, again2.Segments)
	assert.Empty(t, again2.Bases)
}

func TestFetchRefusesWhatItCannotTrust(t *testing.T) {
	t.Parallel()
	db := compose.Database{Name: "memorydb"}
	src := streamFolder(t, db, "20261205T000000.000Z", 2, 3)
	rec, keys := ageKeys(t)
	remote := newMemRemote()
	_, err := Ship(t.Context(), ShipRequest{DB: db, BackupDir: src, Remote: remote, Seal: rec})
	require.NoError(t, err)
	seg := "wal/memorydb/000000010000000000000003.zst.age"

	fresh := func(t *testing.T) string {
		dst := t.TempDir()
		require.NoError(t, os.MkdirAll(FoldersOf(dst, db).WAL, 0o755))
		return dst
	}
	empty := func(t *testing.T, dst string) {
		t.Helper()
		for _, dir := range []string{FoldersOf(dst, db).WAL, filepath.Join(FoldersOf(dst, db).WAL, FetchedFolder)} {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				assert.NotEqual(t, "000000010000000000000003", e.Name(), "no damaged segment is left under a segment's name")
				assert.False(t, strings.HasSuffix(e.Name(), fetchSuffix), "no temporary file is left")
			}
		}
	}
	// tampered is the plain repository with seg's object changed by change.
	plain := newMemRemote()
	_, err = Ship(t.Context(), ShipRequest{DB: db, BackupDir: src, Remote: plain})
	require.NoError(t, err)
	plainSeg := strings.TrimSuffix(seg, ageSuffix)
	tampered := func(change func(o *memObject)) *memRemote {
		m := newMemRemote()
		maps.Copy(m.objs, plain.objs)
		o := m.objs[plainSeg]
		o.data, o.meta = slices.Clone(o.data), maps.Clone(o.meta)
		change(&o)
		m.objs[plainSeg] = o
		return m
	}
	refused := func(t *testing.T, r *memRemote, keys Opener, says string) {
		t.Helper()
		dst := fresh(t)
		_, err := Fetch(t.Context(), nil, FetchRequest{DB: db, BackupDir: dst, Remote: r, Keys: keys})
		require.Error(t, err)
		assert.Contains(t, err.Error(), says)
		empty(t, dst)
	}

	t.Run("sealed without keys", func(t *testing.T) {
		dst := fresh(t)
		_, err := Fetch(t.Context(), nil, FetchRequest{DB: db, BackupDir: dst, Remote: remote})
		require.Error(t, err)
		assert.Equal(t, fault.Invalid, fault.KindOf(err), "bad input: %v", err)
		assert.Contains(t, err.Error(), "AIDB_AGE_IDENTITY_FILE")
		empty(t, dst)
	})
	t.Run("sealed and damaged in the repository", func(t *testing.T) {
		bad := newMemRemote()
		maps.Copy(bad.objs, remote.objs)
		o := bad.objs[seg]
		o.data = slices.Clone(o.data)
		o.data[len(o.data)-20] ^= 0xff
		bad.objs[seg] = o
		refused(t, bad, keys, seg)
	})
	t.Run("bytes that are not those the repository recorded", func(t *testing.T) {
		refused(t, tampered(func(o *memObject) { o.meta[metaSHA256] = strings.Repeat("0", 64) }), nil, "damaged")
	})
	t.Run("no sha256 recorded (an upload cut short)", func(t *testing.T) {
		refused(t, tampered(func(o *memObject) { delete(o.meta, metaSHA256) }), nil, "no sha256")
	})
	t.Run("no time recorded", func(t *testing.T) {
		refused(t, tampered(func(o *memObject) { delete(o.meta, metaModTime) }), nil, "no time")
	})
	t.Run("not a whole segment", func(t *testing.T) {
		refused(t, tampered(func(o *memObject) {
			zw, err := zstd.NewWriter(nil)
			require.NoError(t, err)
			o.data = zw.EncodeAll(make([]byte, segSize/2), nil)
			sum := sha256.Sum256(o.data)
			o.meta[metaSHA256] = hex.EncodeToString(sum[:])
		}), nil, "not a whole segment")
	})
	t.Run("a base backup without its record is not fetched", func(t *testing.T) {
		half := newMemRemote()
		maps.Copy(half.objs, remote.objs)
		delete(half.objs, "base/memorydb/20261205T000000.000Z/aidb-base.json")
		dst := fresh(t)
		got, err := Fetch(t.Context(), nil, FetchRequest{DB: db, BackupDir: dst, Remote: half, Keys: keys})
		require.NoError(t, err)
		assert.Empty(t, got.Bases)
		bases, err := Bases(os.DirFS(FoldersOf(dst, db).Base))
		require.NoError(t, err)
		assert.Empty(t, bases)
	})
}

func TestShipQueuesWhileTheRepositoryIsAway(t *testing.T) {
	t.Parallel()
	db := compose.Database{Name: "rulesdb"}
	src := streamFolder(t, db, "20261205T000000.000Z", 2, 4)
	remote := newMemRemote()
	remote.failPut = io.ErrUnexpectedEOF
	_, err := Ship(t.Context(), ShipRequest{DB: db, BackupDir: src, Remote: remote})
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	segs, err := Segments(os.DirFS(FoldersOf(src, db).WAL), segSize)
	require.NoError(t, err)
	assert.Len(t, segs, 3, "the folder keeps every segment")
	remote.failPut = nil
	res, err := Ship(t.Context(), ShipRequest{DB: db, BackupDir: src, Remote: remote})
	require.NoError(t, err)
	assert.Len(t, res.Segments, 3, "they go once it answers")
	assert.Equal(t, "000000010000000000000002", res.Segments[0], "oldest first")
}

func TestPruneShipped(t *testing.T) {
	t.Parallel()
	db := compose.Database{Name: "rulesdb"}
	src := streamFolder(t, db, "20261205T000000.000Z", 2, 8)
	f := FoldersOf(src, db)
	newer := day("20261206T000000.000Z", 24, 1, 6, 6)
	newer.SegmentSize, newer.StartLSN, newer.EndLSN = segSize, LSN(6*segSize), LSN(6*segSize+40)
	writeBase(t, f.Base, newer)
	remote := newMemRemote()
	_, err := Ship(t.Context(), ShipRequest{DB: db, BackupDir: src, Remote: remote})
	require.NoError(t, err)

	// A window reaching before the newer base's end keeps both, whatever
	// the folder holds (a rebuilt machine's holds less).
	require.NoError(t, os.RemoveAll(filepath.Join(f.Base, "20261205T000000.000Z")))
	n, err := PruneShipped(t.Context(), remote, db, t0.Add(12*time.Hour))
	require.NoError(t, err)
	assert.Zero(t, n, "every base backup the window needs stays")
	assert.Len(t, remote.names(), 8+7)

	n, err = PruneShipped(t.Context(), remote, db, t0.Add(25*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 4+4, n, "the older base backup's four files and segments 2 to 5")
	assert.Equal(t, []string{
		"base/rulesdb/20261206T000000.000Z/aidb-base.json",
		"base/rulesdb/20261206T000000.000Z/backup_manifest",
		"base/rulesdb/20261206T000000.000Z/base.tar.gz",
		"base/rulesdb/20261206T000000.000Z/pg_wal.tar.gz",
		"wal/rulesdb/000000010000000000000006.zst",
		"wal/rulesdb/000000010000000000000007.zst",
		"wal/rulesdb/000000010000000000000008.zst",
	}, remote.names())
}

func TestClearUnrecorded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := day("20261205T000000.000Z", 0, 1, 2, 2)
	writeBase(t, dir, b)
	half := filepath.Join(dir, "20261206T000000.000Z")
	require.NoError(t, os.MkdirAll(half, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(half, "base.tar.gz"), []byte("cut short"), 0o600))
	require.NoError(t, clearUnrecorded(dir))
	_, err := os.Stat(half)
	assert.True(t, os.IsNotExist(err), "the folder without a record is gone")
	bases, err := Bases(os.DirFS(dir))
	require.NoError(t, err)
	require.Len(t, bases, 1, "the whole base backup stays")
	assert.Equal(t, b.Name, bases[0].Name)
}
