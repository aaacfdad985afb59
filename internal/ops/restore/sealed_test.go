package restore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/encryption"
	"github.com/aidb/aidb/internal/archive/manifest"
)

// sealedFile writes sampleDump, zstd-compressed then age-encrypted to id,
// as a backup does, and returns its path and manifest.
func sealedFile(t *testing.T, id *age.X25519Identity) (string, *manifest.Manifest) {
	t.Helper()
	dir := t.TempDir()
	rec := filepath.Join(dir, "recipients.txt")
	require.NoError(t, os.WriteFile(rec, []byte(id.Recipient().String()+"\n"), 0o600))
	to, err := encryption.LoadRecipients(rec)
	require.NoError(t, err)
	var out bytes.Buffer
	seal, err := to.Seal(&out)
	require.NoError(t, err)
	zw, err := zstd.NewWriter(seal)
	require.NoError(t, err)
	_, err = io.WriteString(zw, sampleDump)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, seal.Close())
	path := filepath.Join(dir, "rulesdb-20250517-093005.sql.zst.age")
	require.NoError(t, os.WriteFile(path, out.Bytes(), 0o600))
	sum := sha256.Sum256(out.Bytes())
	return path, &manifest.Manifest{Size: int64(out.Len()), SHA256: hex.EncodeToString(sum[:]),
		Encryption: &manifest.Encryption{Method: "age", Recipients: to.Names()}}
}

func keysFor(t *testing.T, id *age.X25519Identity) *encryption.Keys {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.txt")
	require.NoError(t, os.WriteFile(p, []byte(id.String()+"\n"), 0o600))
	k, err := encryption.LoadKeys(p)
	require.NoError(t, err)
	return k
}

func TestSealedFileReadsBackWithItsKey(t *testing.T) {
	t.Parallel()
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	path, m := sealedFile(t, id)
	c, err := detect(path)
	require.NoError(t, err)
	assert.True(t, c.IsSealed(), "an age file is told by its first bytes")

	ct, err := openContent(path, c, m, keysFor(t, id), nil)
	require.NoError(t, err)
	defer func() { _ = ct.Close() }()
	got, err := io.ReadAll(ct)
	require.NoError(t, err, "the stored file's checksum is checked at the end, through the decryption")
	assert.Equal(t, sampleDump, string(got), "decrypted, then decompressed by what is under the encryption")

	m.SHA256 = "0000"
	ct2, err := openContent(path, c, m, keysFor(t, id), nil)
	require.NoError(t, err)
	defer func() { _ = ct2.Close() }()
	_, err = io.ReadAll(ct2)
	assert.ErrorContains(t, err, "changed while it was being restored")
}

func TestSealedFileRefusedWithoutItsKey(t *testing.T) {
	t.Parallel()
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	stranger, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	path, m := sealedFile(t, id)
	src := source{name: path, path: path, compression: backupfile.None.Sealed(), manifest: m}

	var ke *encryption.KeyError
	require.True(t, errors.As(canOpen(t.Context(), src, nil), &ke), "no identity file")
	assert.Empty(t, ke.KeyFile)
	assert.Equal(t, []string{id.Recipient().String()}, ke.Recipients, "the manifest's recipients are named")

	require.True(t, errors.As(canOpen(t.Context(), src, keysFor(t, stranger)), &ke), "a key that does not match")
	assert.NotEmpty(t, ke.KeyFile)
	assert.NoError(t, canOpen(t.Context(), src, keysFor(t, id)))
}

func TestSealedFileWithoutManifestIsRefused(t *testing.T) {
	t.Parallel()
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	path, _ := sealedFile(t, id)
	err = CheckFile(path)
	var fe *FileError
	require.True(t, errors.As(err, &fe), "%v", err)
	assert.Contains(t, err.Error(), "encrypted with age and has no manifest", "without a manifest there is nothing to check it against")
}
