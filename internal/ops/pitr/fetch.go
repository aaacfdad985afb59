package pitr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/aidb/aidb/internal/fault"
)

// metaSHA256 is the object metadata that carries a shipped file's sha256
// (repository.MetaSHA256).
const metaSHA256 = "sha256"

// fetchSuffix marks a file being fetched: no segment or record name ends
// so, so a file cut short never counts.
const fetchSuffix = ".aidb-fetch"

// FetchRequest brings one database's shipped segments and base backups
// back into the backup folder.
type FetchRequest struct {
	DB        compose.Database
	BackupDir string
	Remote    Remote
	// Keys open sealed files; nil refuses them.
	Keys     Opener
	Progress func(string)
}

// Fetched is what one fetch brought into the folder.
type Fetched struct {
	Database string   `json:"database"`
	Location string   `json:"repository"`
	Segments []string `json:"segments"`
	Bases    []string `json:"base_backups"`
}

// Fetch downloads what of db's stream the folder lacks and the
// repository holds (a machine rebuilt, a folder pruned or lost): each
// whole base backup (its files, then its record, so a fetch cut short
// leaves no base backup that counts) and each segment (through a
// temporary name, checked against the sha256 its object carries and
// against the segment size, given back its modification time, then
// renamed). What is in the folder already is never overwritten. A
// stream folder that is not there is made as enable makes it (e runs
// the one-shot that gives it to the image's postgres user).
func Fetch(ctx context.Context, e Streams, req FetchRequest) (Fetched, error) {
	db, local := req.DB, FoldersOf(req.BackupDir, req.DB)
	res := Fetched{Database: db.Name, Location: req.Remote.Location(), Segments: []string{}, Bases: []string{}}
	bases, err := Bases(os.DirFS(local.Base))
	if err != nil {
		return res, err
	}
	have, err := remoteNames(ctx, req.Remote, db, segmentSize(bases))
	if err != nil {
		return res, err
	}
	whole := map[string]bool{}
	for _, b := range bases {
		whole[b.Name] = true
	}
	for name, files := range have.baseFiles {
		if whole[name] || !have.bases[name] {
			continue
		}
		progress(req.Progress, "%s: fetching base backup %s from %s", db.Name, name, req.Remote.Location())
		if err := fetchBase(ctx, req, filepath.Join(local.Base, name), files); err != nil {
			return res, err
		}
		res.Bases = append(res.Bases, name)
	}
	if bases, err = Bases(os.DirFS(local.Base)); err != nil {
		return res, err
	}
	size := segmentSize(bases)
	if len(bases) == 0 {
		size = 0 // none says it: any size PostgreSQL allows
	} else if size != DefaultSegmentSize {
		// Listed again: names are read by the segment size.
		if have, err = remoteNames(ctx, req.Remote, db, size); err != nil {
			return res, err
		}
	}
	into := filepath.Join(local.WAL, FetchedFolder)
	names := make([]string, 0, len(have.segments))
	for seg := range have.segments {
		if exists(filepath.Join(local.WAL, seg)) || exists(filepath.Join(into, seg)) {
			continue
		}
		names = append(names, seg)
	}
	if len(names) == 0 {
		return res, nil
	}
	slices.Sort(names)
	progress(req.Progress, "%s: fetching %d WAL segments from %s", db.Name, len(names), req.Remote.Location())
	owner, err := prepareFetched(ctx, e, db, bases, local.WAL, into)
	if err != nil {
		return res, err
	}
	for _, seg := range names {
		if err := fetchSegment(ctx, req, have.segmentFiles[seg], filepath.Join(into, seg), size, owner); err != nil {
			return res, err
		}
		res.Segments = append(res.Segments, seg)
	}
	return res, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// prepareFetched makes the stream folder (as enable makes it: the
// image's postgres user owns it, the image the base backups were taken
// with, whose servers replay) when it is not there, and its
// FetchedFolder, given to the same owner; it returns that owner.
func prepareFetched(ctx context.Context, e Streams, db compose.Database, bases []Base, wal, into string) (fileOwner, error) {
	if !exists(wal) {
		image := ""
		if len(bases) > 0 {
			image = bases[len(bases)-1].Image
		} else {
			var err error
			if image, err = e.Image(ctx, db); err != nil {
				return fileOwner{}, err
			}
		}
		if err := prepareFolder(ctx, e, db, image, wal); err != nil {
			return fileOwner{}, err
		}
	}
	owner, err := ownerOf(wal)
	if err != nil {
		return owner, err
	}
	if err := os.MkdirAll(into, 0o755); err != nil {
		return owner, fmt.Errorf("create %s: %w", into, err)
	}
	if err := owner.give(into); err != nil {
		return owner, fmt.Errorf("give %s to the owner of %s (uid %d), whose server reads it: %w", into, wal, owner.uid, err)
	}
	return owner, nil
}

// fetchBase downloads a base backup's files into dir, its record last;
// a failure removes dir again.
func fetchBase(ctx context.Context, req FetchRequest, dir string, files []string) (retErr error) {
	defer func() {
		if retErr != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if err := os.RemoveAll(dir); err != nil { // a fetch cut short: no record, never counted
		return fmt.Errorf("fetch base backup into %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fetch base backup into %s: %w", dir, err)
	}
	var record string
	for _, name := range files {
		if path.Base(name) == RecordName {
			record = name
			continue
		}
		if err := fetchFile(ctx, req, name, filepath.Join(dir, strings.TrimSuffix(path.Base(name), ageSuffix)), nil); err != nil {
			return err
		}
	}
	return fetchFile(ctx, req, record, filepath.Join(dir, RecordName), nil)
}

// fetchSegment downloads one segment and checks it is whole.
// It is given to the stream folder's owner (the image's postgres user,
// as the segments pg_receivewal writes): a recovering server of that
// image reads it.
func fetchSegment(ctx context.Context, req FetchRequest, name, file string, size uint64, owner fileOwner) error {
	check := func(f *os.File, n int64) error {
		if (size != 0 && uint64(n) != size) || (size == 0 && !validSegmentSize(uint64(n))) {
			want := "a size PostgreSQL allows"
			if size != 0 {
				want = fmt.Sprintf("the %d bytes of its base backups' segments", size)
			}
			return fmt.Errorf("fetch %s: it holds %d bytes, not a whole segment (%s): the repository's copy is damaged; nothing was written", name, n, want)
		}
		if err := owner.give(f.Name()); err != nil {
			return fmt.Errorf("fetch %s: give it to the owner of %s (uid %d), whose server reads it: %w", name, filepath.Dir(file), owner.uid, err)
		}
		return nil
	}
	return fetchFile(ctx, req, name, file, check)
}

// fetchFile downloads name into file: opened when sealed, decompressed
// when compressed, hashed against the object's sha256 as it passes,
// written under a temporary name and renamed once whole (and, when
// given, checked first).
func fetchFile(ctx context.Context, req FetchRequest, name, file string, check func(*os.File, int64) error) (retErr error) {
	body, meta, err := req.Remote.OpenMeta(ctx, name)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	defer func() { _ = body.Close() }()
	h := sha256.New()
	r := io.Reader(io.TeeReader(body, h))
	if strings.HasSuffix(name, ageSuffix) {
		if req.Keys == nil {
			return fault.BadInput(fmt.Errorf("fetch %s from %s: it is encrypted with age: set AIDB_AGE_IDENTITY_FILE to a key that opens it; nothing was restored", name, req.Remote.Location()))
		}
		if r, err = req.Keys.Open(r); err != nil {
			return fmt.Errorf("fetch %s: %w", name, err)
		}
	}
	if strings.HasSuffix(strings.TrimSuffix(name, ageSuffix), zstdSuffix) {
		zr, err := zstd.NewReader(r)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	tmp := file + fetchSuffix
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	defer func() {
		_ = f.Close()
		if retErr != nil {
			_ = os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, r)
	if err != nil {
		return fmt.Errorf("fetch %s: download: %w", name, err)
	}
	// Read to the end: the hash covers every byte of the object.
	if _, err := io.Copy(h, body); err != nil {
		return fmt.Errorf("fetch %s: download: %w", name, err)
	}
	want, got := meta[metaSHA256], hex.EncodeToString(h.Sum(nil))
	if want == "" {
		return fmt.Errorf("fetch %s: the repository recorded no sha256 for it (an upload cut short): it is not trusted; nothing was written", name)
	}
	if want != got {
		return fmt.Errorf("fetch %s: its bytes have sha256 %s, but the repository recorded %s: its copy is damaged; nothing was written", name, got, want)
	}
	if check != nil {
		if err := check(f, n); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	if check != nil { // a segment: its time is the window's end
		mod, err := time.Parse(time.RFC3339Nano, meta[metaModTime])
		if err != nil {
			return fmt.Errorf("fetch %s: the repository recorded no time it was written (mtime %q): the window cannot end in it; nothing was written", name, meta[metaModTime])
		}
		if err := os.Chtimes(tmp, mod, mod); err != nil {
			return fmt.Errorf("fetch %s: %w", name, err)
		}
	}
	if err := os.Rename(tmp, file); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	return nil
}

// validSegmentSize says whether n is a size initdb --wal-segsize allows:
// a power of two from 1 MB to 1 GB.
func validSegmentSize(n uint64) bool {
	return n >= 1<<20 && n <= 1<<30 && n&(n-1) == 0
}

// fileOwner is a file's owner.
type fileOwner struct{ uid, gid int }

// give makes path the owner's (nothing where files have no unix owner:
// uid -1).
func (o fileOwner) give(path string) error {
	if o.uid < 0 {
		return nil
	}
	return os.Chown(path, o.uid, o.gid)
}

// Offsite is the repository a restore or verify to a time fetches from
// first: what the folder lacks of a database's stream (zero: the folder
// alone).
type Offsite struct {
	Remote Remote
	Keys   Opener
}

// fetchFirst fetches what the folder lacks from o's repository. A fetch
// that fails is no failure by itself (the folder may hold all that is
// needed): it is said, and returned for the error of a plan that then
// finds too little.
func fetchFirst(ctx context.Context, e Streams, o Offsite, db compose.Database, backupDir string, progressFn func(string)) error {
	if o.Remote == nil {
		return nil
	}
	got, err := Fetch(ctx, e, FetchRequest{DB: db, BackupDir: backupDir, Remote: o.Remote, Keys: o.Keys, Progress: progressFn})
	if err != nil {
		progress(progressFn, "%s: could not fetch the stream's copy from %s (%v); going on with the folder's", db.Name, o.Remote.Location(), err)
		return fmt.Errorf("fetch %s's stream from %s: %w", db.Name, o.Remote.Location(), err)
	}
	if len(got.Bases)+len(got.Segments) > 0 {
		progress(progressFn, "%s: fetched %d base backups and %d WAL segments from %s", db.Name, len(got.Bases), len(got.Segments), o.Remote.Location())
	}
	return nil
}
