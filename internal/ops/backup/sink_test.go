package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/encryption"
)

// The sink gathers the stream's small pieces into larger writes: what
// reaches the file and what reaches the upload (one io.MultiWriter, as
// createFile wires them) are the same bytes, whole, and the size and
// sha256 the manifest takes are theirs, with or without compression and
// encryption; the plain SQL comes back out of them.
func TestSinkFileAndUploadHoldTheSameBytes(t *testing.T) {
	t.Parallel()
	var dump strings.Builder
	dump.WriteString("--\n-- PostgreSQL database dump\n--\n\nSET row_security = off;\n\n")
	dump.WriteString("--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: rules\n--\n\nCOPY public.t (id, body) FROM stdin;\n")
	for i := range 60000 { // about 3 MB: many buffers' worth
		fmt.Fprintf(&dump, "%d\tbody of row %d with some words in it\n", i, i)
	}
	dump.WriteString("\\.\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n")
	plain := dump.String()

	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	dir := t.TempDir()
	rp := filepath.Join(dir, "recipients.txt")
	require.NoError(t, os.WriteFile(rp, []byte(id.Recipient().String()+"\n"), 0o600))
	to, err := encryption.LoadRecipients(rp)
	require.NoError(t, err)
	kp := filepath.Join(dir, "key.txt")
	require.NoError(t, os.WriteFile(kp, []byte(id.String()+"\n"), 0o600))
	keys, err := encryption.LoadKeys(kp)
	require.NoError(t, err)

	for _, c := range []backupfile.Compression{backupfile.None, backupfile.Zstd, backupfile.Zstd.Sealed()} {
		t.Run(string(c), func(t *testing.T) {
			t.Parallel()
			var file, upload bytes.Buffer
			var progress []int64
			s, err := newSink(io.MultiWriter(&file, &upload), true, c, to, "", "", func(n int64) { progress = append(progress, n) })
			require.NoError(t, err)
			for i := 0; i < len(plain); i += 32 << 10 { // the exec stream's pieces
				_, err := s.Write([]byte(plain[i:min(i+32<<10, len(plain))]))
				require.NoError(t, err)
			}
			require.NoError(t, s.Close())
			assert.Equal(t, file.Bytes(), upload.Bytes(), "the upload gets the file's bytes")
			sum := sha256.Sum256(file.Bytes())
			assert.Equal(t, hex.EncodeToString(sum[:]), s.sum(), "the manifest's sha256 is the file's")
			assert.Equal(t, int64(file.Len()), s.size())
			require.NotEmpty(t, progress)

			var r io.Reader = &file
			if c.IsSealed() {
				r, err = keys.Open(r)
				require.NoError(t, err)
			}
			if c.Inner() == backupfile.Zstd {
				zr, err := zstd.NewReader(r)
				require.NoError(t, err)
				defer zr.Close()
				r = zr
			}
			got, err := io.ReadAll(r)
			require.NoError(t, err)
			assert.Equal(t, plain, string(got), "the plain SQL comes back whole")
		})
	}
}
