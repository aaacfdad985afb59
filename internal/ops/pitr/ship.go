package pitr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/aidb/aidb/compose"
)

// Remote is the repository calls shipping and fetching make
// (*repository.Repository answers them). Names are relative to the
// repository's prefix and mirror the backup folder: wal/<db>/<segment>
// and base/<db>/<name>/<file>.
type Remote interface {
	ListTree(ctx context.Context, dir string) ([]string, error)
	PutStream(ctx context.Context, name string, meta map[string]string, fill func(io.Writer) error) error
	PutMeta(ctx context.Context, name string, src io.Reader, size int64, sum string, meta map[string]string) error
	OpenMeta(ctx context.Context, name string) (io.ReadCloser, map[string]string, error)
	Remove(ctx context.Context, name string) error
	Location() string
}

// Sealer encrypts what is shipped (*encryption.Recipients); nil ships
// plain files.
type Sealer interface {
	Seal(w io.Writer) (io.WriteCloser, error)
}

// Opener decrypts what is fetched (*encryption.Keys).
type Opener interface {
	Open(r io.Reader) (io.Reader, error)
}

// Suffixes of shipped files: a segment is compressed (WAL compresses
// well; a segment switched early is mostly zeros), and every file but a
// base backup's record is sealed when there are recipients.
const (
	zstdSuffix = ".zst"
	ageSuffix  = ".age"
)

// metaModTime is the object metadata that carries a segment's
// modification time: the window's end is read from it (every record in a
// segment was written before it), and a fetched segment gets it back.
const metaModTime = "mtime"

// remoteFolders are db's folders in the repository.
func remoteFolders(db compose.Database) Folders {
	return Folders{WAL: "wal/" + db.Name + "/", Base: "base/" + db.Name + "/"}
}

// Shipped is what one ship sent to the repository.
type Shipped struct {
	Database string   `json:"database"`
	Location string   `json:"repository"`
	Segments []string `json:"segments"`
	Bases    []string `json:"base_backups"`
	Sealed   bool     `json:"encrypted"`
}

// ShipRequest sends one database's whole segments and base backups to
// the repository.
type ShipRequest struct {
	DB        compose.Database
	BackupDir string
	Remote    Remote
	Seal      Sealer
}

// Ship uploads what of db's stream the repository lacks: every whole
// segment (never a *.partial one), compressed and sealed, oldest first,
// then every whole base backup, its files first and its record last, so
// the repository lists a base backup only once all of it is there. The
// folder is the queue: what fails to go (the repository unreachable) is
// sent by the next ship, and nothing local is ever removed here.
func Ship(ctx context.Context, req ShipRequest) (Shipped, error) {
	db, local, remote := req.DB, FoldersOf(req.BackupDir, req.DB), remoteFolders(req.DB)
	res := Shipped{Database: db.Name, Location: req.Remote.Location(), Segments: []string{}, Bases: []string{}, Sealed: req.Seal != nil}
	bases, err := Bases(os.DirFS(local.Base))
	if err != nil {
		return res, err
	}
	segs, err := localSegments(local.WAL, segmentSize(bases))
	if err != nil {
		return res, err
	}
	have, err := remoteNames(ctx, req.Remote, db, segmentSize(bases))
	if err != nil {
		return res, err
	}
	for _, s := range segs {
		if have.segments[s.Name] {
			continue
		}
		if err := shipSegment(ctx, req, filepath.Join(local.WAL, s.Name), remote.WAL+s.Name, s.ModTime); err != nil {
			return res, err
		}
		res.Segments = append(res.Segments, s.Name)
	}
	for _, b := range bases {
		if have.bases[b.Name] {
			continue
		}
		if err := shipBase(ctx, req, filepath.Join(local.Base, b.Name), remote.Base+b.Name+"/"); err != nil {
			return res, err
		}
		res.Bases = append(res.Bases, b.Name)
	}
	return res, nil
}

// segmentSize is the stream's segment size as its base backups record it.
func segmentSize(bases []Base) uint64 {
	for _, b := range bases {
		if b.SegmentSize > 0 {
			return b.SegmentSize
		}
	}
	return DefaultSegmentSize
}

// localSegments lists a stream folder's whole segments (none when it is
// not there).
func localSegments(dir string, size uint64) ([]Segment, error) {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return Segments(os.DirFS(dir), size)
}

// FetchedFolder is the folder inside a stream folder that fetched
// segments go to: pg_receivewal resumes from the newest segment of its
// own folder (it skips folders), so nothing fetched, an old timeline's
// WAL among it, ever decides where the live stream resumes. A recovery
// reads both.
const FetchedFolder = "fetched"

// streamSegments lists the whole segments of f's stream folder and of
// its FetchedFolder, oldest first; a name in both is the stream's.
func streamSegments(f Folders, size uint64) ([]Segment, error) {
	live, err := localSegments(f.WAL, size)
	if err != nil {
		return nil, err
	}
	fetched, err := localSegments(filepath.Join(f.WAL, FetchedFolder), size)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, s := range live {
		have[s.Name] = true
	}
	for _, s := range fetched {
		if !have[s.Name] {
			live = append(live, s)
		}
	}
	slices.SortFunc(live, compareSegments)
	return live, nil
}

// shipped is what the repository holds of one database: segments by
// name, base backups with their record by name.
type shipped struct {
	segments map[string]bool
	// segmentFiles and baseFiles are the objects' names as stored.
	segmentFiles map[string]string
	bases        map[string]bool
	baseFiles    map[string][]string
}

func remoteNames(ctx context.Context, r Remote, db compose.Database, size uint64) (shipped, error) {
	f := remoteFolders(db)
	out := shipped{segments: map[string]bool{}, segmentFiles: map[string]string{}, bases: map[string]bool{}, baseFiles: map[string][]string{}}
	wal, err := r.ListTree(ctx, f.WAL)
	if err != nil {
		return out, err
	}
	for _, name := range wal {
		seg := strings.TrimSuffix(strings.TrimSuffix(path.Base(name), ageSuffix), zstdSuffix)
		if _, ok := ParseSegment(seg, size); ok {
			out.segments[seg] = true
			out.segmentFiles[seg] = name
		}
	}
	base, err := r.ListTree(ctx, f.Base)
	if err != nil {
		return out, err
	}
	for _, name := range base {
		dir, file, ok := strings.Cut(strings.TrimPrefix(name, f.Base), "/")
		if !ok || dir == "" || dir == "." || dir == ".." || file == "" || strings.Contains(file, "/") {
			continue // not a file of a base backup's folder as Ship writes them
		}
		out.baseFiles[dir] = append(out.baseFiles[dir], name)
		if file == RecordName {
			out.bases[dir] = true
		}
	}
	return out, nil
}

// shipSegment sends one segment, compressed and sealed, with its sha256
// and modification time in the object's first request: it is held in
// memory whole (at most a segment, less once compressed), so no object
// of its name is ever seen without them.
func shipSegment(ctx context.Context, req ShipRequest, file, name string, mod time.Time) error {
	name += zstdSuffix
	if req.Seal != nil {
		name += ageSuffix
	}
	var buf bytes.Buffer
	err := sealed(req.Seal, &buf, func(w io.Writer) error {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			return err
		}
		if err := copyFile(zw, file); err != nil {
			_ = zw.Close()
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return fmt.Errorf("ship %s: %w", file, err)
	}
	sum := sha256.Sum256(buf.Bytes())
	meta := map[string]string{metaModTime: mod.UTC().Format(time.RFC3339Nano)}
	return req.Remote.PutMeta(ctx, name, bytes.NewReader(buf.Bytes()), int64(buf.Len()), hex.EncodeToString(sum[:]), meta)
}

// shipBase sends one base backup's files, sealed, then its record.
func shipBase(ctx context.Context, req ShipRequest, dir, prefix string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("ship base backup %s: %w", dir, err)
	}
	names := []string{}
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != RecordName {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for _, n := range append(names, RecordName) {
		name, seal := prefix+n, req.Seal
		if n == RecordName {
			// The record holds no data (times, WAL positions, the image):
			// plain, as a backup's manifest, so the window reads without keys.
			seal = nil
		} else if seal != nil {
			name += ageSuffix
		}
		file := filepath.Join(dir, n)
		if err := req.Remote.PutStream(ctx, name, nil, func(w io.Writer) error {
			return sealed(seal, w, func(w io.Writer) error { return copyFile(w, file) })
		}); err != nil {
			return err
		}
	}
	return nil
}

// sealed runs write into w, through s's encryption when s is set.
func sealed(s Sealer, w io.Writer, write func(io.Writer) error) error {
	if s == nil {
		return write(w)
	}
	sw, err := s.Seal(w)
	if err != nil {
		return err
	}
	if err := write(sw); err != nil {
		_ = sw.Close()
		return err
	}
	return sw.Close()
}

func copyFile(w io.Writer, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	_, err = io.Copy(w, f)
	return err
}

// PruneShipped keeps the repository's own recovery window from cutoff on,
// by the rule the folder's follows (PlanPrune), planned from what the
// repository holds (its base backups' records), not from the folder: a
// rebuilt machine's folder holds less. The base backup a recovery to
// cutoff starts from (the newest that ended at or before it; the oldest
// when none did) and every newer one stay; older ones go (the record
// first, so one half removed is no base backup), and every segment older
// than the start of each kept one. It returns how many objects went.
func PruneShipped(ctx context.Context, r Remote, db compose.Database, cutoff time.Time) (int, error) {
	all, have, err := remoteBases(ctx, r, db)
	if err != nil || len(all) == 0 {
		return 0, err
	}
	anchor := 0
	for i, b := range all {
		if !b.End.After(cutoff) {
			anchor = i
		}
	}
	kept := all[anchor:]
	keep := parentsOf(all, kept) // the chains of incremental ones stay
	for _, b := range kept {
		keep[b.Name] = true
	}
	n := 0
	for name, files := range have.baseFiles {
		if keep[name] || name > kept[0].Name {
			continue
		}
		slices.SortFunc(files, func(a, b string) int { // the record first
			return cmpBool(path.Base(b) == RecordName, path.Base(a) == RecordName)
		})
		for _, f := range files {
			if err := r.Remove(ctx, f); err != nil {
				return n, err
			}
			n++
		}
	}
	for seg, file := range have.segmentFiles {
		s, ok := ParseSegment(seg, segmentSize(kept))
		if !ok || !olderThanAll(s, kept) {
			continue
		}
		if err := r.Remove(ctx, file); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// remoteBases reads the records of the repository's whole base backups of
// db, oldest first, with what it holds of db.
func remoteBases(ctx context.Context, r Remote, db compose.Database) ([]Base, shipped, error) {
	have, err := remoteNames(ctx, r, db, DefaultSegmentSize)
	if err != nil {
		return nil, have, err
	}
	var out []Base
	for name := range have.bases {
		body, _, err := r.OpenMeta(ctx, remoteFolders(db).Base+name+"/"+RecordName)
		if err != nil {
			return nil, have, err
		}
		var b Base
		err = json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&b)
		_ = body.Close()
		if err != nil || b.End.IsZero() {
			continue // not a record aidb wrote: never counted
		}
		b.Name = name
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Base) int { return a.End.Compare(b.End) })
	if size := segmentSize(out); size != DefaultSegmentSize {
		have, err = remoteNames(ctx, r, db, size)
	}
	return out, have, err
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
