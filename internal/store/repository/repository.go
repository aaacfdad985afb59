// Package repository is the backup repository: S3-compatible object
// storage (AWS S3, MinIO, Ceph, R2, versitygw, ...) as a store of the
// catalog (catalog.Store), so list and prune never ask where a backup
// lives. It is reached with aws-sdk-go-v2, which reads credentials, region
// and endpoint as the AWS tools do (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_PROFILE with
// the shared config files, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
//
// An object counts as a backup only with its manifest object, which is
// written after the data object; the data object's metadata carries its
// sha256. Uploads stream in parts (one part in memory, no second pass over
// the file), and one that fails is aborted: no object appears.
package repository

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/store/catalog"
)

// API is the object storage calls the repository makes; *s3.Client
// answers them (tests use a small fake).
type API interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	UploadPartCopy(ctx context.Context, in *s3.UploadPartCopyInput, opts ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
}

// MetaSHA256 is the object metadata key that carries a data object's
// sha256 (x-amz-meta-sha256).
const MetaSHA256 = "sha256"

// PartSize is the smallest upload part: files up to it go in one request;
// larger ones in parts of at least this size (more for files that would
// need more than maxParts).
const PartSize = 8 << 20

const maxParts = 9000 // S3 allows 10000; some room for files that grow

// abortTimeout bounds the abort of a failed upload, which runs after
// Ctrl-C too.
const abortTimeout = 15 * time.Second

// Repository is a bucket and prefix in object storage, as a catalog store.
type Repository struct {
	api API
	url URL
	// endpoint names the server in messages ("" for AWS).
	endpoint string
}

// New is the repository at u, reached through api; endpoint names the
// server in messages ("" for AWS S3).
func New(api API, u URL, endpoint string) *Repository {
	return &Repository{api: api, url: u, endpoint: endpoint}
}

// URL is where the repository is.
func (r *Repository) URL() URL { return r.url }

// Location is the repository's URL.
func (r *Repository) Location() string { return r.url.String() }

// Path is the URL of the file name.
func (r *Repository) Path(name string) string { return r.url.Object(name) }

// Remote marks the repository as a store elsewhere (catalog lists its
// files with location "repository").
func (r *Repository) Remote() bool { return true }

// Check asks the server for the bucket: a missing bucket, refused
// credentials and a server that does not answer are errors saying which,
// before anything is read or written.
func (r *Repository) Check(ctx context.Context) error {
	_, err := r.api.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(r.url.Bucket)})
	return r.classify(err, "open repository "+r.url.String())
}

// List lists the files directly under the prefix (not in folders below
// it). Uploads that have not completed are not objects, and so are left
// out. The repository holds no pointers.
func (r *Repository) List(ctx context.Context) ([]catalog.Entry, error) {
	var out []catalog.Entry
	in := &s3.ListObjectsV2Input{Bucket: aws.String(r.url.Bucket), Prefix: aws.String(r.url.Prefix), Delimiter: aws.String("/")}
	for {
		page, err := r.api.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, r.classify(err, "list "+r.url.String())
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), r.url.Prefix)
			if name == "" || strings.Contains(name, "/") {
				continue
			}
			out = append(out, catalog.Entry{Name: name, Size: aws.ToInt64(o.Size)})
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			return out, nil
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// Open reads a file as the server sends it.
func (r *Repository) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	out, err := r.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.url.Bucket), Key: aws.String(r.url.key(name))})
	if err != nil {
		return nil, r.classify(err, "read "+r.Path(name))
	}
	return out.Body, nil
}

// Sum is the file's size and the sha256 its metadata carries ("" when it
// carries none): the catalog checks a repository backup against its
// manifest by these, without reading it (pull reads and checks it).
func (r *Repository) Sum(ctx context.Context, name string) (int64, string, error) {
	out, err := r.api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(r.url.Bucket), Key: aws.String(r.url.key(name))})
	if err != nil {
		return 0, "", r.classify(err, "read "+r.Path(name))
	}
	return aws.ToInt64(out.ContentLength), out.Metadata[MetaSHA256], nil
}

// Remove deletes a file; a missing one is no error.
func (r *Repository) Remove(ctx context.Context, name string) error {
	_, err := r.api.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(r.url.Bucket), Key: aws.String(r.url.key(name))})
	return r.classify(err, "remove "+r.Path(name))
}

// ErrNoPointers says the repository keeps no <db>-latest pointers: the
// newest backup there is found by the manifests' created times.
var ErrNoPointers = errors.New("the repository keeps no latest pointers")

// Link is refused: the repository holds no pointers (List lists none, so
// the catalog never asks it to mend one).
func (r *Repository) Link(context.Context, string, string) error { return ErrNoPointers }

// PutSmall writes a small file (a manifest) in one request.
func (r *Repository) PutSmall(ctx context.Context, name string, b []byte) error {
	_, err := r.api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(r.url.Bucket), Key: aws.String(r.url.key(name)),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/json")})
	return r.classify(err, "upload "+r.Path(name))
}

// unsignedPayload sends a part's body outside the request's signature
// (UNSIGNED-PAYLOAD), as the SDK does by itself over HTTPS, where its
// CRC32 goes in a trailer. Over plain HTTP (an S3-compatible server on the
// same network) the SDK would sign the payload, hashing every byte with
// sha256 once more on each side; instead the part carries its CRC32 in a
// header, which the server checks. A CRC32 finds damage, not tampering:
// what proves a backup's bytes is their sha256, which aidb records and
// checks on every read, and which a plain HTTP read does not protect
// either. Where checksums are turned off (AWS_REQUEST_CHECKSUM_CALCULATION
// when_required), a part would carry neither, so it stays signed.
//
// The payload hash is set first of all: the SDK's checksum step, which
// runs before the signer's, computes the sha256 beside the CRC32 unless it
// is already set.
var unsignedPayload = func(o *s3.Options) {
	if o.RequestChecksumCalculation == aws.RequestChecksumCalculationWhenRequired {
		return
	}
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware, func(stack *middleware.Stack) error {
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("aidb:UnsignedPayload",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				return next.HandleFinalize(v4.SetPayloadHash(ctx, "UNSIGNED-PAYLOAD"), in)
			}), middleware.Before)
	})
}

// MismatchError says the bytes uploaded were not those the manifest
// describes (the local file changed or is damaged): the upload was
// aborted.
type MismatchError struct{ msg string }

func (e *MismatchError) Error() string { return e.msg }

// Put uploads size bytes from src as the file name, whose sha256 must be
// sum (hex): it is recorded in the object's metadata before the bytes are
// sent, and they are hashed as they pass; bytes that do not match abort the
// upload (a *MismatchError). A file up to PartSize goes in one request;
// a larger one in parts, one in memory at a time. A failed or cancelled
// upload is aborted (under a context Ctrl-C does not cancel): no object of
// that name appears, and one that was there stays as it was.
func (r *Repository) Put(ctx context.Context, name string, src io.Reader, size int64, sum string) (retErr error) {
	return r.PutMeta(ctx, name, src, size, sum, nil)
}

// PutMeta is Put with more object metadata beside the sha256, recorded
// with the object's first request: no object of that name is ever seen
// without it.
func (r *Repository) PutMeta(ctx context.Context, name string, src io.Reader, size int64, sum string, more map[string]string) (retErr error) {
	h := sha256.New()
	in := io.TeeReader(src, h)
	part := max(PartSize, int((size+maxParts-1)/maxParts))
	buf := make([]byte, part)
	n, err := io.ReadFull(in, buf)
	meta := map[string]string{MetaSHA256: sum}
	maps.Copy(meta, more)
	key := aws.String(r.url.key(name))
	bucket := aws.String(r.url.Bucket)
	path := r.Path(name)
	check := func(total int64) error {
		if got := hex.EncodeToString(h.Sum(nil)); total != size || got != sum {
			return &MismatchError{fmt.Sprintf("upload %s: the file read %d bytes with sha256 %s, but its manifest says %d bytes with sha256 %s: the local file changed or is damaged; the upload was aborted", path, total, got, size, sum)}
		}
		return nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		if err := check(int64(n)); err != nil {
			return err
		}
		_, err := r.api.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: key, Body: bytes.NewReader(buf[:n]),
			ContentLength: aws.Int64(int64(n)), Metadata: meta})
		return r.classify(err, "upload "+path)
	}
	if err != nil {
		return fmt.Errorf("upload %s: read: %w", path, err)
	}

	created, err := r.api.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: key, Metadata: meta})
	if err != nil {
		return r.classify(err, "upload "+path)
	}
	id := created.UploadId
	defer func() {
		if retErr == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if _, err := r.api.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: bucket, Key: key, UploadId: id}); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("abort the upload of %s (the server keeps its parts until a lifecycle rule removes them; no object was made): %w", path, err))
		}
	}()
	var parts []types.CompletedPart
	total := int64(0)
	for num := int32(1); n > 0; num++ {
		out, err := r.api.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: key, UploadId: id, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n))}, unsignedPayload)
		if err != nil {
			return r.classify(err, fmt.Sprintf("upload %s (part %d)", path, num))
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag})
		total += int64(n)
		n, err = io.ReadFull(in, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("upload %s: read: %w", path, err)
		}
	}
	if err := check(total); err != nil {
		return err
	}
	_, err = r.api.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: key, UploadId: id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	return r.classify(err, "upload "+path)
}

// ForProject opens the project's repository (AIDB_REPOSITORY, or
// repository: in aidb.yaml); nil, and no error, when none is set.
func ForProject(ctx context.Context, p *compose.Project) (*Repository, error) {
	if p.Repository == "" {
		return nil, nil
	}
	u, err := ParseURL(p.Repository)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.RepositoryFrom, err)
	}
	return Open(ctx, u)
}
