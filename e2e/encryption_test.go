package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/ops/backup"
)

// TestEncryptedBackupsRestoreOnlyWithTheirKey: with AIDB_AGE_RECIPIENTS_FILE
// every backup (the user's and the safety backups) is written encrypted as
// it streams (….sql.zst.age, no plain SQL on disk), its manifest records
// the recipients and both checksums; verify and restore open it with
// AIDB_AGE_IDENTITY_FILE, and without it, or with a stranger's key, refuse
// before anything changes (exit 2), naming the recipients.
func TestEncryptedBackupsRestoreOnlyWithTheirKey(t *testing.T) {
	t.Parallel()
	p := newProject(t, "age")
	dir := p.backupDir()
	id, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	stranger, err := age.GenerateX25519Identity()
	require.NoError(t, err)
	keys := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(keys, name)
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	recipients := write("recipients.txt", "# the team\n"+id.Recipient().String()+"\n")
	mine := write("me.key", id.String()+"\n")
	theirs := write("stranger.key", stranger.String()+"\n")
	p.env = append(p.env, "AIDB_AGE_RECIPIENTS_FILE="+recipients)
	p.seeded("40")
	url := p.status()["rulesdb"].URL
	before := content(t, url)

	// Uncompressed, so that no plain SQL in the file is a finding of the
	// encryption, not of the compression.
	r := p.aidb("backup", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var res backup.Result
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	require.Len(t, res.Files, 2)
	var file string
	for _, f := range res.Files {
		assert.True(t, strings.HasSuffix(f.Path, ".sql.age"), f.Path)
		b, err := os.ReadFile(f.Path)
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(b, []byte("age-encryption.org/v1\n")), "an age file")
		assert.NotContains(t, string(b), "COPY public", "no plain SQL on disk")
		m, err := manifest.Read(f.Path)
		require.NoError(t, err)
		require.NotNil(t, m.Encryption)
		assert.Equal(t, []string{id.Recipient().String()}, m.Encryption.Recipients)
		assert.Len(t, m.PlainSHA256, 64, "both checksums: the stored file's and the plain SQL's")
		if f.Database == "rulesdb" {
			file = f.Path
		}
	}
	_, err = os.Lstat(filepath.Join(dir, "rulesdb-latest.sql.age"))
	require.NoError(t, err, "the latest pointer names the encrypted file")

	// Without the identity, and with a stranger's: refused, exit 2.
	v := p.aidb("verify", file)
	assert.Equal(t, 2, v.code, v.stderr)
	assert.Contains(t, v.stderr, "is encrypted to "+id.Recipient().String())
	assert.Contains(t, v.stderr, "AIDB_AGE_IDENTITY_FILE")

	conn := connect(t, url)
	_, err = conn.Exec(t.Context(), "DELETE FROM rule_tags")
	require.NoError(t, err)
	changed := content(t, url)
	require.NotEqual(t, before, changed)

	r = p.aidb("restore", "--yes", "rulesdb", file)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "no age identity file is given")
	assert.Equal(t, changed, content(t, url), "refused before anything changed")

	p.env = append(p.env, "AIDB_AGE_IDENTITY_FILE="+theirs)
	r = p.aidb("restore", "--yes", "rulesdb", file)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "no identity in "+theirs+" matches")
	assert.Equal(t, changed, content(t, url), "refused before anything changed")

	// With it: verified, and restored (its safety backup encrypted too).
	p.env = append(p.env, "AIDB_AGE_IDENTITY_FILE="+mine)
	v = p.aidb("verify", "--all")
	assert.Equal(t, 0, v.code, v.stderr)
	r = p.aidb("restore", "--yes", "rulesdb", file)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, before, content(t, url))
	safety, err := filepath.Glob(filepath.Join(dir, "rulesdb-*.sql*"))
	require.NoError(t, err)
	plain := 0
	for _, f := range safety {
		if !strings.HasSuffix(f, ".age") && !strings.HasSuffix(f, ".json") {
			plain++
		}
	}
	assert.Zero(t, plain, "every backup, the safety backup included, is encrypted: %v", safety)
}
