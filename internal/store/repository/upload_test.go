package repository

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// positional is n bytes that differ from place to place (lines numbering
// themselves), so parts swapped or overwritten do not add up to them.
func positional(n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "%015d\n", i)
	}
	return b[:n]
}

// write writes b in pieces of 64 KiB, as a dump does.
func write(t *testing.T, u *Upload, b []byte) {
	t.Helper()
	for len(b) > 0 {
		k := min(len(b), 64<<10)
		n, err := u.Write(b[:k])
		require.NoError(t, err)
		require.Equal(t, k, n)
		b = b[k:]
	}
}

func TestUploadAsWritten(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	big := positional(2*PartSize + 1000) // three parts, each of its own bytes
	small := []byte("-- small\n")
	man := []byte(`{"format":4}`)

	f := newFake()
	r := New(f, URL{"bucket", "aidb/"}, "")

	// In parts as written, two at a time (part 1 is answered only once
	// part 2 has arrived, so after it); completed in their order, the
	// sha256 in the metadata once whole, then the manifest.
	f.slowPart = 1
	u := r.Upload(ctx, "big.sql")
	write(t, u, big[:2*PartSize+10])
	require.Eventually(t, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, up := range f.uploads {
			return len(up.parts) == 2
		}
		return false
	}, 5*time.Second, 5*time.Millisecond, "parts go up while the file is written")
	f.mu.Lock()
	assert.NotContains(t, f.objects, "aidb/big.sql", "nothing is an object before Finish")
	f.mu.Unlock()
	write(t, u, big[2*PartSize+10:])
	require.NoError(t, u.Finish(int64(len(big)), sum(big), man), "the parts are completed in their order")
	f.slowPart = 0
	assert.Equal(t, big, f.objects["aidb/big.sql"])
	assert.Equal(t, sum(big), f.meta["aidb/big.sql"][MetaSHA256], "the metadata carries the sha256")
	assert.Equal(t, man, f.objects["aidb/big.sql.manifest.json"])
	require.NoError(t, u.Abort(), "Abort after Finish does nothing")
	assert.Zero(t, f.aborted)
	list, err := r.List(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 2)

	// A small file goes in one request with its sha256.
	u = r.Upload(ctx, "small.sql")
	write(t, u, small)
	require.NoError(t, u.Finish(int64(len(small)), sum(small), man))
	assert.Equal(t, small, f.objects["aidb/small.sql"])
	assert.Equal(t, sum(small), f.meta["aidb/small.sql"][MetaSHA256])

	// A manifest that does not describe what was written (its size; the
	// sha256 is the writer's, of the same bytes): aborted, no object.
	u = r.Upload(ctx, "changed.sql")
	write(t, u, big)
	var mm *MismatchError
	require.ErrorAs(t, u.Finish(int64(len(big))-1, sum(big), man), &mm)
	assert.NotContains(t, f.objects, "aidb/changed.sql")
	assert.NotContains(t, f.objects, "aidb/changed.sql.manifest.json")
	assert.Empty(t, f.uploads)
	assert.Equal(t, 1, f.aborted)

	// A part that fails does not fail the writer (the local file is
	// whole without the repository); Finish says so, nothing is listed.
	f.failPart = 2
	u = r.Upload(ctx, "cut.sql")
	write(t, u, big)
	err = u.Finish(int64(len(big)), sum(big), man)
	require.ErrorContains(t, err, "part 2")
	assert.NotContains(t, f.objects, "aidb/cut.sql")
	assert.NotContains(t, f.objects, "aidb/cut.sql.manifest.json")
	assert.Empty(t, f.uploads)
	assert.Equal(t, 2, f.aborted)

	// Ctrl-C mid-upload: Abort drops the parts.
	f.failPart = 0
	cctx, cancel := context.WithCancel(ctx)
	u = r.Upload(cctx, "x.sql")
	write(t, u, big[:PartSize+1])
	cancel()
	require.NoError(t, u.Abort())
	assert.Empty(t, f.uploads)
	assert.Equal(t, 3, f.aborted)
	assert.NotContains(t, f.objects, "aidb/x.sql")
	_, err = u.Write([]byte("x"))
	require.Error(t, err, "written after it ended")

	list, err = r.List(ctx)
	require.NoError(t, err)
	assert.Len(t, list, 4, "big and small, each with its manifest: %v", list)
}
