package repository

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
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/store/catalog"
)

// fakeS3 is a bucket in memory answering the calls API names, as an S3
// server would: an object appears whole on PutObject or
// CompleteMultipartUpload, never before.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	meta    map[string]map[string]string
	uploads map[string]*upload
	next    int
	aborted int
	// failPart fails UploadPart for this part number; slowPart holds it
	// until the part after it has arrived (parts go side by side), then
	// answers it: after that one.
	failPart, slowPart int32
	// stored hears each part number as it is stored while slowPart is
	// set.
	stored chan int32
	puts   int
}

type upload struct {
	key   string
	meta  map[string]string
	parts map[int32][]byte
}

func newFake() *fakeS3 {
	return &fakeS3{objects: map[string][]byte{}, meta: map[string]map[string]string{}, uploads: map[string]*upload{}, stored: make(chan int32, 16)}
}

func (f *fakeS3) HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	return &s3.HeadBucketOutput{}, nil
}

func (f *fakeS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	// Pages of two, to exercise the continuation.
	start := 0
	if in.ContinuationToken != nil {
		for i, k := range keys {
			if k == *in.ContinuationToken {
				start = i
			}
		}
	}
	out := &s3.ListObjectsV2Output{}
	for i := start; i < len(keys) && i < start+2; i++ {
		out.Contents = append(out.Contents, types.Object{Key: aws.String(keys[i]), Size: aws.Int64(int64(len(f.objects[keys[i]])))})
	}
	if start+2 < len(keys) {
		out.IsTruncated, out.NextContinuationToken = aws.Bool(true), aws.String(keys[start+2])
	}
	return out, nil
}

func (f *fakeS3) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NotFound{}
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(b))), Metadata: f.meta[*in.Key]}, nil
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, ok := f.objects[*in.Key]
	if !ok {
		return nil, &types.NoSuchKey{}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	f.objects[*in.Key], f.meta[*in.Key] = b, in.Metadata
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) DeleteObject(_ context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objects, *in.Key)
	return &s3.DeleteObjectOutput{}, nil
}

func (f *fakeS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	id := string(rune('a' + f.next))
	f.uploads[id] = &upload{key: *in.Key, meta: in.Metadata, parts: map[int32][]byte{}}
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String(id)}, nil
}

func (f *fakeS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if *in.PartNumber == f.failPart {
		return nil, errors.New("connection reset by peer")
	}
	if *in.PartNumber == f.slowPart {
		if err := f.await(*in.PartNumber + 1); err != nil {
			return nil, err
		}
	}
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uploads[*in.UploadId].parts[*in.PartNumber] = b
	if f.slowPart != 0 {
		select {
		case f.stored <- *in.PartNumber:
		default:
		}
	}
	return &s3.UploadPartOutput{ETag: aws.String("etag")}, nil
}

// await waits until part num is stored, for 5 s at most.
func (f *fakeS3) await(num int32) error {
	timeout := time.After(5 * time.Second)
	for {
		select {
		case n := <-f.stored:
			if n == num {
				return nil
			}
		case <-timeout:
			return fmt.Errorf("part %d did not come while part %d was being sent", num, num-1)
		}
	}
}

func (f *fakeS3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.uploads[*in.UploadId]
	var all []byte
	last := int32(0)
	for _, p := range in.MultipartUpload.Parts {
		// As S3 answers: InvalidPartOrder, InvalidPart.
		if *p.PartNumber <= last {
			return nil, fmt.Errorf("the list of parts was not in ascending order: part %d after %d", *p.PartNumber, last)
		}
		last = *p.PartNumber
		b, ok := u.parts[*p.PartNumber]
		if !ok {
			return nil, fmt.Errorf("part %d was not uploaded", *p.PartNumber)
		}
		all = append(all, b...)
	}
	f.objects[u.key], f.meta[u.key] = all, u.meta
	delete(f.uploads, *in.UploadId)
	return &s3.CompleteMultipartUploadOutput{}, nil
}

func (f *fakeS3) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.uploads, *in.UploadId)
	f.aborted++
	return &s3.AbortMultipartUploadOutput{}, nil
}

// CopyObject copies an object onto itself with new metadata (the only
// copy the repository makes).
func (f *fakeS3) CopyObject(_ context.Context, in *s3.CopyObjectInput, _ ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *in.CopySource != "bucket/"+*in.Key || in.MetadataDirective != types.MetadataDirectiveReplace {
		return nil, errors.New("the fake copies an object onto itself with new metadata only")
	}
	if _, ok := f.objects[*in.Key]; !ok {
		return nil, &types.NoSuchKey{}
	}
	f.meta[*in.Key] = in.Metadata
	return &s3.CopyObjectOutput{}, nil
}

func (f *fakeS3) UploadPartCopy(context.Context, *s3.UploadPartCopyInput, ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error) {
	return nil, errors.New("the fake copies no object of more than 5 GiB")
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPutStreamsPartsAndAbortsWhatFails(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	u := URL{"bucket", "aidb/"}
	big := bytes.Repeat([]byte("0123456789abcdef"), (2*PartSize+1000)/16) // three parts

	f := newFake()
	r := New(f, u, "")
	require.NoError(t, r.Put(ctx, "big.sql", bytes.NewReader(big), int64(len(big)), sum(big)))
	assert.Equal(t, big, f.objects["aidb/big.sql"], "the parts joined in order")
	assert.Equal(t, sum(big), f.meta["aidb/big.sql"][MetaSHA256], "the metadata carries the sha256")
	assert.Zero(t, f.puts, "a large file goes in parts, not one request")

	small := []byte("-- small\n")
	require.NoError(t, r.Put(ctx, "small.sql", bytes.NewReader(small), int64(len(small)), sum(small)))
	assert.Equal(t, small, f.objects["aidb/small.sql"])
	assert.Equal(t, 1, f.puts)

	// Bytes that are not the manifest's: aborted, no object.
	changed := bytes.Clone(big)
	changed[len(changed)-1] ^= 1
	err := r.Put(ctx, "changed.sql", bytes.NewReader(changed), int64(len(big)), sum(big))
	var mm *MismatchError
	require.ErrorAs(t, err, &mm)
	assert.Contains(t, err.Error(), "the upload was aborted")
	assert.NotContains(t, f.objects, "aidb/changed.sql")
	assert.Empty(t, f.uploads)
	assert.Equal(t, 1, f.aborted)
	err = r.Put(ctx, "short.sql", bytes.NewReader(small[:3]), int64(len(small)), sum(small))
	require.ErrorAs(t, err, &mm)
	assert.NotContains(t, f.objects, "aidb/short.sql")

	// A part that fails: aborted, and an object of that name that was
	// there stays as it was.
	f.failPart = 2
	err = r.Put(ctx, "big.sql", bytes.NewReader(changed), int64(len(big)), sum(changed))
	require.ErrorContains(t, err, "part 2")
	assert.Contains(t, err.Error(), "cannot reach AWS S3")
	assert.Equal(t, big, f.objects["aidb/big.sql"])
	assert.Empty(t, f.uploads)
	assert.Equal(t, 2, f.aborted)

	// A cancelled upload is aborted too.
	f.failPart = 0
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = r.Put(cctx, "x.sql", &cancelAfter{r: bytes.NewReader(big), n: PartSize + 1, cancel: cancel}, int64(len(big)), sum(big))
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, f.uploads)
	assert.Equal(t, 3, f.aborted)
	assert.NotContains(t, f.objects, "aidb/x.sql")
}

// cancelAfter cancels once n bytes were read: Ctrl-C mid-upload.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// writeBackup writes a backup file with its manifest into dir.
func writeBackup(t *testing.T, dir, db string, at time.Time, body string) string {
	t.Helper()
	name := backupfile.Name(db, backupfile.Full, at, backupfile.None)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	b, err := json.Marshal(manifest.Manifest{Format: manifest.Format, Database: db, Kind: backupfile.Full, File: name,
		Created: at, Compression: backupfile.None, Size: int64(len(body)), SHA256: sum([]byte(body))})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+manifest.Suffix), b, 0o600))
	return name
}

func TestPushIsIdempotentAndPullChecks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a := writeBackup(t, dir, "rulesdb", t0, "-- a\n")
	b := writeBackup(t, dir, "memorydb", t0, "-- b\n")
	c := writeBackup(t, dir, "rulesdb", t0.Add(time.Hour), "-- c\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rulesdb-20260301-030000.sql"), []byte("plain"), 0o600))
	set, err := json.Marshal(manifest.Set{Format: 1, Created: t0, Kind: backupfile.Full, Files: []manifest.SetFile{{Database: "rulesdb", File: a}, {Database: "memorydb", File: b}}})
	require.NoError(t, err)
	setName := manifest.SetName(backupfile.Full, t0)
	require.NoError(t, os.WriteFile(filepath.Join(dir, setName), set, 0o600))
	// The damaged one: its bytes changed after its manifest was written.
	d := writeBackup(t, dir, "rulesdb", t0.Add(2*time.Hour), "-- d\n")
	require.NoError(t, os.WriteFile(filepath.Join(dir, d), []byte("-- D\n"), 0o600))

	f := newFake()
	r := New(f, URL{"bucket", ""}, "")
	res, err := r.Push(ctx, catalog.Folder{Dir: dir}, nil)
	require.ErrorContains(t, err, "the local file changed or is damaged")
	assert.ElementsMatch(t, []string{r.Path(a), r.Path(b), r.Path(c)}, res.Uploaded)
	assert.Equal(t, []string{r.Path(setName)}, res.Sets)
	require.Len(t, res.Skipped, 1)
	assert.Contains(t, res.Skipped[0].Reason, "no manifest")
	assert.NotContains(t, f.objects, d, "a damaged file is not uploaded")
	assert.NotContains(t, f.objects, d+manifest.Suffix)

	// Listed through the catalog as whole, in the repository.
	items, err := catalog.New(r).List(ctx)
	require.NoError(t, err)
	require.Len(t, items, 3)
	for _, it := range items {
		assert.True(t, it.ChecksumOK, it.File)
		assert.Equal(t, "repository", it.Location)
	}

	require.NoError(t, os.Remove(filepath.Join(dir, d)))
	require.NoError(t, os.Remove(filepath.Join(dir, d+manifest.Suffix)))
	puts := f.puts
	res, err = r.Push(ctx, catalog.Folder{Dir: dir}, nil)
	require.NoError(t, err)
	assert.Empty(t, res.Uploaded, "a second push uploads nothing")
	assert.Empty(t, res.Sets)
	assert.Len(t, res.Present, 3)
	assert.Equal(t, puts, f.puts)

	// A data object whose manifest is missing (a push cut short) is not
	// whole: listed without a manifest, and the next push completes it.
	delete(f.objects, c+manifest.Suffix)
	items, err = catalog.New(r).List(ctx)
	require.NoError(t, err)
	for _, it := range items {
		if it.File == r.Path(c) {
			assert.False(t, it.ChecksumOK)
		}
	}
	res, err = r.Push(ctx, catalog.Folder{Dir: dir}, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{r.Path(c)}, res.Uploaded)

	// Another backup under a local backup's name is never replaced.
	f.objects[a] = []byte("-- other\n")
	f.objects[a+manifest.Suffix] = bytes.Replace(f.objects[a+manifest.Suffix], []byte(sum([]byte("-- a\n"))), []byte(sum([]byte("-- other\n"))), 1)
	_, err = r.Push(ctx, catalog.Folder{Dir: dir}, nil)
	var conflict *ConflictError
	require.ErrorAs(t, err, &conflict)
	assert.Equal(t, []byte("-- other\n"), f.objects[a])

	// Pull: into another folder, checked; again: nothing downloaded.
	to := filepath.Join(t.TempDir(), "backups")
	got, err := r.Pull(ctx, c, to)
	require.NoError(t, err)
	assert.True(t, got.Downloaded)
	m, err := manifest.Read(got.File)
	require.NoError(t, err)
	require.NoError(t, manifest.Check(got.File, m))
	got, err = r.Pull(ctx, c, to)
	require.NoError(t, err)
	assert.False(t, got.Downloaded)

	// A damaged object is not given its final name.
	f.objects[b] = []byte("-- B\n")
	_, err = r.Pull(ctx, b, to)
	require.ErrorContains(t, err, "damaged; nothing was written")
	assert.NoFileExists(t, filepath.Join(to, b))
	entries, err := os.ReadDir(to)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), "partial")
	}
	// A name the repository lacks is bad input.
	_, err = r.Pull(ctx, "rulesdb-20990101-000000.sql", to)
	require.ErrorContains(t, err, "no such backup")
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	// A file in the folder with other bytes is never replaced.
	require.NoError(t, os.WriteFile(filepath.Join(to, a), []byte("mine"), 0o600))
	_, err = r.Pull(ctx, a, to)
	require.ErrorContains(t, err, "in the folder already with other bytes")
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
}
