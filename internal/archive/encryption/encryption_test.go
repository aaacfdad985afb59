package encryption

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/aidb/aidb/internal/fault"
)

func write(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newIdentity(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestSealAndOpen(t *testing.T) {
	t.Parallel()
	a, b := newIdentity(t), newIdentity(t)
	to, err := LoadRecipients(write(t, "# the team\n\n"+a.Recipient().String()+"\n"+b.Recipient().String()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := to.Names(); len(got) != 2 || got[0] != a.Recipient().String() {
		t.Fatalf("names %v", got)
	}
	var sealed bytes.Buffer
	w, err := to.Seal(&sealed)
	if err != nil {
		t.Fatal(err)
	}
	plain := strings.Repeat("COPY public.t (a) FROM stdin;\n1\n\\.\n", 5000)
	if _, err := io.WriteString(w, plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !IsSealed(sealed.Bytes()[:4]) || IsSealed([]byte("-- P")) || IsSealed([]byte("ag")) {
		t.Error("IsSealed does not tell an age header from SQL")
	}
	for _, id := range []*age.X25519Identity{a, b} {
		keys, err := LoadKeys(write(t, "# created: today\n"+id.String()+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := keys.Open(bytes.NewReader(sealed.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != plain {
			t.Fatalf("opened %d bytes (err %v), want the %d written", len(got), err, len(plain))
		}
	}
	mine, err := LoadKeys(write(t, a.String()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !mine.Opens(to) {
		t.Error("a recipient's own identity does not open what is encrypted to it")
	}
	other, err := LoadKeys(write(t, newIdentity(t).String()+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if other.Opens(to) {
		t.Error("a stranger's identity says it opens the backups")
	}
	if _, err := other.Open(bytes.NewReader(sealed.Bytes())); !errors.Is(err, ErrNoMatch) {
		t.Errorf("a stranger's key: err = %v, want ErrNoMatch", err)
	}
}

func TestLoadRecipientsRefusesBadFiles(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"empty":        "",
		"only comment": "# nobody\n",
		"not a key":    "age1notakey\n",
		"secret key":   newIdentity(t).String() + "\n",
	} {
		_, err := LoadRecipients(write(t, content))
		if fault.KindOf(err) != fault.Invalid {
			t.Errorf("%s: err = %v, want bad input", name, err)
		}
	}
	_, err := LoadRecipients(write(t, "\n\nage1bad\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("err = %v, want the line named", err)
	}
	if _, err := LoadRecipients(filepath.Join(t.TempDir(), "missing")); fault.KindOf(err) != fault.Invalid {
		t.Errorf("missing file: err = %v, want bad input", err)
	}
}

func TestLoadKeysRefusesBadFiles(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"a public key": newIdentity(t).Recipient().String() + "\n",
		"nothing":      "\n",
		"garbage SSH":  "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n-----END OPENSSH PRIVATE KEY-----\n",
	} {
		if _, err := LoadKeys(write(t, content)); fault.KindOf(err) != fault.Invalid {
			t.Errorf("%s: err = %v, want bad input", name, err)
		}
	}
}

func TestKeyErrorSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	e := &KeyError{File: "rulesdb-1.sql.zst.age", Recipients: []string{"age1abc"}}
	if got := e.Error(); !strings.Contains(got, "encrypted to age1abc") || !strings.Contains(got, "no age identity file is given") {
		t.Errorf("%q", got)
	}
	e.KeyFile = "/keys/me.txt"
	if got := e.Error(); !strings.Contains(got, "no identity in /keys/me.txt matches") {
		t.Errorf("%q", got)
	}
	if fault.KindOf(e) != fault.Invalid {
		t.Error("a key error is bad input (exit 2)")
	}
}
