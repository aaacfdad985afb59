package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
)

// memObject is a repository backup in memory.
type memObject struct {
	body   []byte
	m      manifest.Manifest
	size   int64
	sum    string
	opened int
}

func (o *memObject) URL() string                 { return "s3://bucket/aidb/rulesdb-20260301-000000.sql.zst" }
func (o *memObject) Manifest() manifest.Manifest { return o.m }
func (o *memObject) Stored() (int64, string)     { return o.size, o.sum }
func (o *memObject) Open(context.Context) (io.ReadCloser, error) {
	o.opened++
	return io.NopCloser(bytes.NewReader(o.body)), nil
}

func zstdOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := zstd.NewWriter(&out)
	require.NoError(t, err)
	_, err = w.Write(b)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return out.Bytes()
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A repository backup: its compression by its first bytes, its recorded
// size and sha256 checked against the manifest without reading it, and
// its bytes checked as they stream, so changed bytes end the read in an
// error (the script never reaches its COMMIT).
func TestObjectIsCheckedByItsRecordAndAsItStreams(t *testing.T) {
	t.Parallel()
	plain := []byte("-- PostgreSQL database dump\nSELECT 1;\n-- PostgreSQL database dump complete\n")
	body := zstdOf(t, plain)
	m := manifest.Manifest{Size: int64(len(body)), SHA256: hexSum(body), Compression: backupfile.Zstd}
	o := &memObject{body: body, m: m, size: m.Size, sum: m.SHA256}

	src, err := inspectObject(t.Context(), o)
	require.NoError(t, err)
	assert.Equal(t, backupfile.Zstd, src.compression)
	assert.Equal(t, o.URL(), src.name)
	require.NoError(t, checkStored(o, m))

	f, err := o.Open(t.Context())
	require.NoError(t, err)
	ct, err := readContent(f, o.URL(), src.compression, &m, nil, nil)
	require.NoError(t, err)
	got, err := io.ReadAll(ct)
	require.NoError(t, err)
	assert.Equal(t, plain, got)
	require.NoError(t, ct.Close())

	// A recorded size or sha256 that is not the manifest's: damaged.
	var mm *manifest.MismatchError
	require.ErrorAs(t, checkStored(&memObject{m: m, size: m.Size - 1, sum: m.SHA256}, m), &mm)
	require.ErrorAs(t, checkStored(&memObject{m: m, size: m.Size, sum: hexSum(plain)}, m), &mm)
	require.NoError(t, checkStored(&memObject{m: m, size: m.Size}, m), "no sha256 recorded: the streamed check decides")

	// Bytes that changed after the record (same size): the stream ends in
	// an error, not a clean end of file.
	other := zstdOf(t, bytes.Replace(plain, []byte("SELECT 1"), []byte("SELECT 2"), 1))
	require.Len(t, other, len(body))
	ct, err = readContent(io.NopCloser(bytes.NewReader(other)), o.URL(), backupfile.Zstd, &m, nil, nil)
	require.NoError(t, err)
	_, err = io.ReadAll(ct)
	require.ErrorContains(t, err, "the file changed while it was being restored")
}
