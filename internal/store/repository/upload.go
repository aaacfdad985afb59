package repository

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/aidb/aidb/internal/archive/manifest"
)

// maxCopy is the largest object one CopyObject request copies (5 GiB);
// larger ones are copied in parts.
const maxCopy = 5 << 30

// Upload is a file sent to the repository as it is written (backup's
// Uploader): its bytes go up in parts while the next part fills, two
// parts being sent (inFlight) and one filling at a time, so a slow server
// slows the writer rather than filling memory. Its size and sha256 are
// known only at the end: Finish records the sha256 in the object's
// metadata (a server-side copy of the object onto itself, no second pass
// here) and only then writes the manifest object. The sha256 is the writer's: it hashes the
// bytes as it hands them to the local file and to the upload at once (one
// io.MultiWriter), so the upload counts them but does not hash them again.
// Until Finish returns nil no backup of that name is listed: an upload cut
// short (Ctrl-C, the server gone) is aborted, and what a failure left (an
// object without its manifest) is removed, or at worst never listed as
// whole.
//
// A failed part does not fail the writer (the file being written is the
// local backup, whole without the repository): Write drops the bytes
// from then on, and Finish returns the error.
type Upload struct {
	r    *Repository
	ctx  context.Context
	name string
	n    int64
	buf  []byte
	num  int32
	size int // the part size, growing so that any file fits in maxParts

	parts chan part
	free  chan []byte // a part's buffer, once sent, for the next part
	done  chan struct{}
	// create makes the multipart upload once, for the first sender.
	create sync.Mutex
	mu     sync.Mutex
	id     *string
	sent   []types.CompletedPart
	err    error
	ended  bool
	// meta is more object metadata Finish records beside the sha256.
	meta map[string]string
}

// part is one part of an upload, numbered from 1.
type part struct {
	num int32
	b   []byte
}

// inFlight is how many parts are sent at once, one more filling: enough
// that the round trip after each part (the server's answer) overlaps the
// next part's bytes, for a repository far away.
const inFlight = 2

// Upload starts the upload of the file name. Nothing is sent before a
// part is full (or Finish).
func (r *Repository) Upload(ctx context.Context, name string) *Upload {
	return &Upload{r: r, ctx: ctx, name: name, size: PartSize, buf: make([]byte, 0, PartSize)}
}

// URL is where the file goes.
func (u *Upload) URL() string { return u.r.Path(u.name) }

// Write counts p and sends it in parts; it fails only when the upload
// was already finished or aborted.
func (u *Upload) Write(p []byte) (int, error) {
	if u.ended {
		return 0, fmt.Errorf("upload %s: written after it ended", u.URL())
	}
	n := len(p)
	u.n += int64(n)
	for len(p) > 0 {
		k := min(len(p), u.size-len(u.buf))
		u.buf = append(u.buf, p[:k]...)
		p = p[k:]
		if len(u.buf) == u.size {
			u.send()
		}
	}
	return n, nil
}

// failed is the upload's first error.
func (u *Upload) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *Upload) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
	}
}

// send hands the full part to a sender (started with the first part).
func (u *Upload) send() {
	u.num++
	p := part{num: u.num, b: u.buf}
	// Parts grow so that a file of any size fits in maxParts of them.
	if u.num%1000 == 0 {
		u.size *= 2
	}
	if u.failed() != nil {
		// Nothing more goes up: the part's buffer fills again.
		u.buf = u.buf[:0]
		return
	}
	select {
	case b := <-u.free:
		if cap(b) >= u.size {
			u.buf = b[:0]
			break
		}
		u.buf = make([]byte, 0, u.size)
	default:
		u.buf = make([]byte, 0, u.size)
	}
	if u.parts == nil {
		u.parts, u.done, u.free = make(chan part), make(chan struct{}), make(chan []byte, inFlight)
		var wg sync.WaitGroup
		for range inFlight {
			wg.Go(u.sender)
		}
		go func() { wg.Wait(); close(u.done) }()
	}
	u.parts <- p
}

// uploadID creates the multipart upload on the first call; after a
// failed one it returns the upload's error, asking no more.
func (u *Upload) uploadID(bucket, key *string) (*string, error) {
	u.create.Lock()
	defer u.create.Unlock()
	u.mu.Lock()
	id, err := u.id, u.err
	u.mu.Unlock()
	if id != nil || err != nil {
		return id, err
	}
	out, err := u.r.api.CreateMultipartUpload(u.ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key})
	if err != nil {
		return nil, u.r.classify(err, "upload "+u.URL())
	}
	u.mu.Lock()
	u.id = out.UploadId
	u.mu.Unlock()
	return out.UploadId, nil
}

// sender sends parts as they come, inFlight of them running side by
// side; after a failure they drain what comes.
func (u *Upload) sender() {
	bucket, key := aws.String(u.r.url.Bucket), aws.String(u.r.url.key(u.name))
	for p := range u.parts {
		if u.failed() != nil {
			continue
		}
		id, err := u.uploadID(bucket, key)
		if err != nil {
			u.fail(err)
			continue
		}
		out, err := u.r.api.UploadPart(u.ctx, &s3.UploadPartInput{Bucket: bucket, Key: key, UploadId: id, PartNumber: aws.Int32(p.num),
			Body: bytes.NewReader(p.b), ContentLength: aws.Int64(int64(len(p.b)))}, unsignedPayload)
		if err != nil {
			u.fail(u.r.classify(err, fmt.Sprintf("upload %s (part %d)", u.URL(), p.num)))
			continue
		}
		u.mu.Lock()
		u.sent = append(u.sent, types.CompletedPart{PartNumber: aws.Int32(p.num), ETag: out.ETag})
		u.mu.Unlock()
		// The part's buffer fills again: the writer takes no fresh memory
		// per part (a fresh 8 MiB is zeroed and faulted in page by page).
		select {
		case u.free <- p.b:
		default:
		}
	}
}

// stop ends the sender and waits for it.
func (u *Upload) stop() {
	if u.parts != nil && !u.ended {
		close(u.parts)
		<-u.done
	}
	u.ended = true
}

// Abort ends an upload that will not be finished: the server drops its
// parts (under a context Ctrl-C does not cancel). Abort after Finish does
// nothing.
func (u *Upload) Abort() error {
	if u.ended {
		return nil
	}
	u.stop()
	return u.abort()
}

func (u *Upload) abort() error {
	if u.id == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(u.ctx), abortTimeout)
	defer cancel()
	_, err := u.r.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(u.r.url.Bucket), Key: aws.String(u.r.url.key(u.name)), UploadId: u.id})
	u.id = nil
	if err != nil {
		return fmt.Errorf("abort the upload of %s (the server keeps its parts until a lifecycle rule removes them; no object was made): %w", u.URL(), err)
	}
	return nil
}

// Finish completes the upload of a file of size bytes with sha256 sum (as
// its manifest says, of the bytes written; a size that is not what was
// written aborts the upload), records the sha256
// in the object's metadata, then writes the manifest object m beside it.
// On any failure what was sent is aborted or removed, and the error says
// that the repository does not hold the backup.
func (u *Upload) Finish(size int64, sum string, m []byte) (retErr error) {
	if u.ended {
		return fmt.Errorf("upload %s: finished twice", u.URL())
	}
	bucket, key := aws.String(u.r.url.Bucket), aws.String(u.r.url.key(u.name))
	meta := map[string]string{MetaSHA256: sum}
	maps.Copy(meta, u.meta)
	if u.parts == nil {
		// A file up to one part goes in one request, its sha256 known.
		u.ended = true
		if err := u.check(size); err != nil {
			return err
		}
		_, err := u.r.api.PutObject(u.ctx, &s3.PutObjectInput{Bucket: bucket, Key: key, Body: bytes.NewReader(u.buf),
			ContentLength: aws.Int64(int64(len(u.buf))), Metadata: meta})
		if err := u.r.classify(err, "upload "+u.URL()); err != nil {
			return err
		}
		return u.manifest(m)
	}
	if len(u.buf) > 0 {
		u.send()
	}
	u.stop()

	completed := false
	defer func() {
		if retErr == nil {
			return
		}
		if !completed {
			retErr = errors.Join(retErr, u.abort())
			return
		}
		// A whole object without its sha256 or manifest is never listed as
		// a backup; it is removed all the same.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(u.ctx), abortTimeout)
		defer cancel()
		if _, err := u.r.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: bucket, Key: key}); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("remove %s, which has no manifest (it is not listed as a backup): %w", u.URL(), err))
		}
	}()
	if err := u.failed(); err != nil {
		return err
	}
	if err := u.check(size); err != nil {
		return err
	}
	// Parts come back in the order they were answered.
	slices.SortFunc(u.sent, func(a, b types.CompletedPart) int { return cmp.Compare(*a.PartNumber, *b.PartNumber) })
	_, err := u.r.api.CompleteMultipartUpload(u.ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: key, UploadId: u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.sent}})
	if err := u.r.classify(err, "upload "+u.URL()); err != nil {
		return err
	}
	completed = true
	if err := u.r.setSum(u.ctx, u.name, size, meta); err != nil {
		return err
	}
	return u.manifest(m)
}

// manifest writes the manifest object; a file that has none (nil: a
// part of a base backup, a WAL segment) counts by its own object.
func (u *Upload) manifest(m []byte) error {
	if m == nil {
		return nil
	}
	return u.r.PutSmall(u.ctx, u.name+manifest.Suffix, m)
}

// check compares the size written with what the manifest says.
func (u *Upload) check(size int64) error {
	if u.n != size {
		return &MismatchError{fmt.Sprintf("upload %s: %d bytes were written, but the manifest says %d; the upload was aborted", u.URL(), u.n, size)}
	}
	return nil
}

// setSum records meta in the metadata of the object name, of size bytes,
// by copying it onto itself on the server (in parts above maxCopy).
func (r *Repository) setSum(ctx context.Context, name string, size int64, meta map[string]string) (retErr error) {
	bucket, key := aws.String(r.url.Bucket), aws.String(r.url.key(name))
	source := aws.String(r.url.Bucket + "/" + (&url.URL{Path: r.url.key(name)}).EscapedPath())
	what := "record the sha256 of " + r.Path(name)
	if size <= maxCopy {
		_, err := r.api.CopyObject(ctx, &s3.CopyObjectInput{Bucket: bucket, Key: key, CopySource: source,
			Metadata: meta, MetadataDirective: types.MetadataDirectiveReplace})
		return r.classify(err, what)
	}
	created, err := r.api.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key, Metadata: meta})
	if err != nil {
		return r.classify(err, what)
	}
	defer func() {
		if retErr != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
			defer cancel()
			_, _ = r.api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: bucket, Key: key, UploadId: created.UploadId})
		}
	}()
	var parts []types.CompletedPart
	for num, off := int32(1), int64(0); off < size; num, off = num+1, off+maxCopy {
		end := min(off+maxCopy, size) - 1
		out, err := r.api.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: bucket, Key: key, UploadId: created.UploadId,
			PartNumber: aws.Int32(num), CopySource: source, CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end))})
		if err != nil {
			return r.classify(err, what)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.CopyPartResult.ETag})
	}
	_, err = r.api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: key, UploadId: created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	return r.classify(err, what)
}
