package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The repository's folders below its prefix (wal/<db>/, base/<db>/<name>/)
// hold the files of point-in-time recovery, which are no backups of the
// catalog: List never lists them. These calls reach them.

// ListTree lists the names (relative to the prefix, as Open takes them)
// of every object under the folder dir ("wal/rulesdb/"), at any depth.
func (r *Repository) ListTree(ctx context.Context, dir string) ([]string, error) {
	var out []string
	in := &s3.ListObjectsV2Input{Bucket: aws.String(r.url.Bucket), Prefix: aws.String(r.url.key(dir))}
	for {
		page, err := r.api.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, r.classify(err, "list "+r.Path(dir))
		}
		for _, o := range page.Contents {
			out = append(out, strings.TrimPrefix(aws.ToString(o.Key), r.url.Prefix))
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			return out, nil
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// PutStream uploads what fill writes as the file name, in parts as it is
// written (Upload), and records its sha256 and meta in the object's
// metadata. A fill or upload that fails leaves no object of that name
// (one that was there stays as it was).
func (r *Repository) PutStream(ctx context.Context, name string, meta map[string]string, fill func(io.Writer) error) error {
	u := r.Upload(ctx, name)
	u.meta = meta
	h := sha256.New()
	n := &counter{}
	if err := fill(io.MultiWriter(u, h, n)); err != nil {
		return errors.Join(err, u.Abort())
	}
	return u.Finish(n.n, hex.EncodeToString(h.Sum(nil)), nil)
}

// OpenMeta reads a file with its object metadata (MetaSHA256 among it).
func (r *Repository) OpenMeta(ctx context.Context, name string) (io.ReadCloser, map[string]string, error) {
	out, err := r.api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.url.Bucket), Key: aws.String(r.url.key(name))})
	if err != nil {
		return nil, nil, r.classify(err, "read "+r.Path(name))
	}
	return out.Body, out.Metadata, nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }
