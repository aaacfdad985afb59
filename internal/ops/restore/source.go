package restore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
)

// detect tells the compression of a file by its first bytes, not its name.
func detect(path string) (backupfile.Compression, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return backupfile.Gzip, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return backupfile.Zstd, nil
	case encryption.IsSealed(head):
		// What is under the encryption shows once it is opened.
		return backupfile.None.Sealed(), nil
	}
	return backupfile.None, nil
}

// Object is a backup kept in a repository, read as a stream: restore and
// verify read it once, as psql loads it, and never copy it whole (package
// repository's *Object answers it).
type Object interface {
	// URL names the backup (s3://BUCKET/PREFIX/FILE).
	URL() string
	// Manifest is the backup's manifest, read from its own object.
	Manifest() manifest.Manifest
	// Stored is the size the object storage holds and the sha256 its
	// metadata carries ("" when it carries none).
	Stored() (int64, string)
	// Open streams the object's bytes.
	Open(ctx context.Context) (io.ReadCloser, error)
}

// inspectObject is inspect for a repository backup: its compression by
// its first bytes (one short read), its manifest from its object.
func inspectObject(ctx context.Context, o Object) (source, error) {
	m := o.Manifest()
	s := source{name: o.URL(), path: o.URL(), object: o, manifest: &m}
	s.size, _ = o.Stored()
	f, err := o.Open(ctx)
	if err != nil {
		return s, &FileError{File: s.name, Err: fmt.Errorf("backup %s cannot be read: %w", s.name, err)}
	}
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	_ = f.Close()
	switch head = head[:n]; {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		s.compression = backupfile.Gzip
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		s.compression = backupfile.Zstd
	case encryption.IsSealed(head):
		s.compression = backupfile.None.Sealed()
	default:
		s.compression = backupfile.None
	}
	return s, nil
}

// checkStored is manifest.Check for a repository backup, without reading
// it: the size the storage holds and the sha256 its metadata records must
// be the manifest's. The bytes themselves are hashed as they stream into
// the restore, and a mismatch at their end keeps the COMMIT (or the swap)
// from happening: that check, not this one, is the proof.
func checkStored(o Object, m manifest.Manifest) error {
	size, sum := o.Stored()
	if size != m.Size {
		return manifest.Mismatch(fmt.Sprintf("%s holds %d bytes, but its manifest says %d: the object is damaged or was replaced", o.URL(), size, m.Size))
	}
	if sum != "" && sum != m.SHA256 {
		return manifest.Mismatch(fmt.Sprintf("%s records sha256 %s, but its manifest says %s: the object is damaged or was replaced", o.URL(), sum, m.SHA256))
	}
	return nil
}

// openFile opens the backup's bytes: a repository object's stream, or the
// file.
func (s source) openFile(ctx context.Context) (io.ReadCloser, error) {
	if s.object != nil {
		return s.object.Open(ctx)
	}
	return os.Open(s.path)
}

// sniff tells the compression of a stream by its first bytes (detect's
// rule), without consuming them.
func sniff(r io.Reader) (backupfile.Compression, io.Reader) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return backupfile.Gzip, br
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return backupfile.Zstd, br
	}
	return backupfile.None, br
}

// CheckKeys refuses (encryption.KeyError) an encrypted backup file that
// keys cannot open, reading its age header only; nil for a file that is
// not encrypted. m is the file's manifest (for the recipients it names).
func CheckKeys(file string, m *manifest.Manifest, keys *encryption.Keys) error {
	path, err := filepath.EvalSymlinks(file)
	if err != nil {
		return err
	}
	c, err := detect(path)
	if err != nil || !c.IsSealed() {
		return err
	}
	return canOpen(context.Background(), source{name: file, path: path, compression: c, manifest: m}, keys)
}

// CheckObjectKeys is CheckKeys for a backup in a repository: it reads the
// object's first bytes and, when it is encrypted, its age header only.
func CheckObjectKeys(ctx context.Context, o Object, keys *encryption.Keys) error {
	src, err := inspectObject(ctx, o)
	if err != nil || !src.compression.IsSealed() {
		return err
	}
	return canOpen(ctx, src, keys)
}

// canOpen refuses a sealed file that keys cannot open, before anything
// changes: it reads the age header only.
func canOpen(ctx context.Context, src source, keys *encryption.Keys) error {
	var recipients []string
	if src.manifest != nil && src.manifest.Encryption != nil {
		recipients = src.manifest.Encryption.Recipients
	}
	if keys == nil {
		return &encryption.KeyError{File: src.name, Recipients: recipients}
	}
	f, err := src.openFile(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if _, err := keys.Open(f); err != nil {
		if errors.Is(err, encryption.ErrNoMatch) {
			return &encryption.KeyError{File: src.name, KeyFile: keys.File(), Recipients: recipients}
		}
		return &FileError{File: src.name, Next: RestoreAnother, Err: fmt.Errorf("%s cannot be decrypted: %w", src.name, err)}
	}
	return nil
}

// content streams a backup file's plain SQL while hashing its bytes. At the
// end of the file it checks size and sha256 against the manifest, if there
// is one: a file that changed since the preflight (replaced, cut, flipped)
// ends in an error instead of a clean end of file, so the script it feeds
// never reaches its COMMIT.
type content struct {
	tail     dumpformat.Tail // the end of the plain SQL, for the end-of-dump check
	f        io.ReadCloser
	raw      *countingReader
	h        hash.Hash
	plain    io.Reader
	closer   func()
	m        *manifest.Manifest
	checked  bool
	progress func(int64)
}

func openContent(path string, c backupfile.Compression, m *manifest.Manifest, keys *encryption.Keys, progress func(int64)) (*content, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	return readContent(f, path, c, m, keys, progress)
}

// readContent is openContent on a stream (a repository object): f is
// closed with the content, or at once on an error.
func readContent(f io.ReadCloser, path string, c backupfile.Compression, m *manifest.Manifest, keys *encryption.Keys, progress func(int64)) (*content, error) {
	ct := &content{f: f, h: sha256.New(), m: m, closer: func() {}, progress: progress}
	ct.raw = &countingReader{r: io.TeeReader(f, ct.h), progress: progress}
	var under io.Reader = ct.raw
	if c.IsSealed() {
		if keys == nil {
			_ = f.Close()
			return nil, &encryption.KeyError{File: path}
		}
		opened, err := keys.Open(ct.raw)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("decrypt %s: %w", path, err)
		}
		c, under = sniff(opened)
	}
	switch c {
	case backupfile.Gzip:
		zr, err := gzip.NewReader(under)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("%s is not a readable gzip file: %w", path, err)
		}
		ct.plain = zr
	case backupfile.Zstd:
		zr, err := zstd.NewReader(under)
		if err != nil {
			_ = f.Close()
			return nil, err
		}
		ct.plain, ct.closer = zr, zr.Close
	default:
		ct.plain = under
	}
	return ct, nil
}

func (c *content) Read(p []byte) (int, error) {
	n, err := c.plain.Read(p)
	if c.m == nil { // without a manifest, the end of the dump is the check
		_, _ = c.tail.Write(p[:n])
	}
	if errors.Is(err, io.EOF) && !c.checked {
		c.checked = true
		if c.m == nil && !c.tail.Complete() {
			return n, errCutShort
		}
		// Read what the decompressor left, so the hash covers every byte.
		if _, cerr := io.Copy(io.Discard, c.raw); cerr != nil {
			return n, cerr
		}
		if c.m != nil {
			if c.raw.n != c.m.Size {
				return n, fmt.Errorf("the file changed while it was being restored: %d bytes read, the manifest says %d", c.raw.n, c.m.Size)
			}
			if sum := hex.EncodeToString(c.h.Sum(nil)); sum != c.m.SHA256 {
				return n, fmt.Errorf("the file changed while it was being restored: its sha256 is now %s, the manifest says %s", sum, c.m.SHA256)
			}
		}
	}
	return n, err
}

func (c *content) Close() error {
	c.closer()
	return c.f.Close()
}

var errCutShort = errors.New("the file does not end as a pg_dump file does (no \"" + dumpformat.ClosingLine + "\" line): it was cut short or is not a pg_dump file")

type countingReader struct {
	r        io.Reader
	n        int64
	progress func(int64)
	calls    int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	c.calls++
	if c.progress != nil && (c.calls%64 == 0 || err != nil) {
		c.progress(c.n)
	}
	return n, err
}
