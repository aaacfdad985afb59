package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	fage "filippo.io/age"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/fault"
)

// Backups that would be encrypted and verified, with no identity that
// opens them, are refused before anything is dumped: none could be
// verified, and <db>-latest would stay on older data.
func TestSealedKeysRefuseUnverifiableBackups(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	id, _ := fage.GenerateX25519Identity()
	other, _ := fage.GenerateX25519Identity()
	rec := write("rec.txt", id.Recipient().String()+"\n")
	mine := write("mine.key", id.String()+"\n")
	theirs := write("theirs.key", other.String()+"\n")

	for _, tt := range []struct {
		name, keys string
		verify     bool
		want       string // "" ok
	}{
		{"no identity, verified", "", true, "no identity to open them is given"},
		{"no identity, not verified", "", false, ""},
		{"a stranger's identity", theirs, true, "opens them, so none could be verified"},
		{"the recipient's identity", mine, true, ""},
		{"an unreadable identity file", filepath.Join(dir, "missing.key"), false, "AIDB_AGE_IDENTITY_FILE"},
	} {
		p := &compose.Project{AgeRecipientsFile: rec, AgeIdentityFile: tt.keys}
		_, _, err := sealedKeys(p, tt.verify)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || fault.KindOf(err) != fault.Invalid):
			t.Errorf("%s: err = %v, want bad input containing %q", tt.name, err, tt.want)
		}
	}
	if r, k, err := sealedKeys(&compose.Project{}, true); r != nil || k != nil || err != nil {
		t.Errorf("no encryption: %v %v %v", r, k, err)
	}
}
