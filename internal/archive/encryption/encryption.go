// Package encryption seals backups with age (filippo.io/age) as they are
// written and opens them as they are read: the recipients a backup is
// encrypted to (X25519 "age1…" keys or SSH public keys, one a line), and
// the identities that decrypt it. Nothing here holds a whole file: Seal
// returns a writer and Open a reader, so encryption streams with the dump
// and the restore.
package encryption

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"filippo.io/age/armor"

	"github.com/aidb/aidb/internal/fault"
)

// Magic is how an age file begins.
var Magic = []byte("age-encryption.org/v1\n")

// IsSealed says whether a file's first bytes are an age header.
// It needs 4 bytes at least.
func IsSealed(head []byte) bool {
	n := min(len(head), len(Magic))
	return n >= 4 && bytes.Equal(head[:n], Magic[:n])
}

// Recipients are whom new backups are encrypted to.
type Recipients struct {
	list  []age.Recipient
	names []string
}

// LoadRecipients reads a recipients file: one recipient a line, an age
// X25519 public key (age1…) or an SSH public key (ssh-ed25519, ssh-rsa);
// empty lines and lines starting with # are skipped. A file that names
// none, or a line that is no recipient, is bad input naming the line.
func LoadRecipients(path string) (*Recipients, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("age recipients file %s: %w", path, err))
	}
	defer func() { _ = f.Close() }()
	r := &Recipients{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var rec age.Recipient
		if strings.HasPrefix(line, "ssh-") {
			rec, err = agessh.ParseRecipient(line)
		} else {
			rec, err = age.ParseX25519Recipient(line)
		}
		if err != nil {
			return nil, fault.BadInput(fmt.Errorf("age recipients file %s, line %d: %w (write an age1… public key or an SSH public key)", path, n, err))
		}
		r.list = append(r.list, rec)
		r.names = append(r.names, short(line))
	}
	if err := sc.Err(); err != nil {
		return nil, fault.BadInput(fmt.Errorf("age recipients file %s: %w", path, err))
	}
	if len(r.list) == 0 {
		return nil, fault.BadInput(fmt.Errorf("age recipients file %s names no recipient (one age1… or SSH public key a line)", path))
	}
	return r, nil
}

// short is a recipient as manifests and messages name it: an age key
// whole, an SSH key as its type and comment (or the key's end).
func short(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return line
	}
	if len(f) >= 3 {
		return f[0] + " " + f[2]
	}
	return f[0] + " …" + f[1][max(0, len(f[1])-12):]
}

// Names are the recipients as a manifest records them.
func (r *Recipients) Names() []string { return r.names }

// Seal returns a writer that encrypts what is written to it into w; Close
// writes the end of the age stream (it does not close w).
func (r *Recipients) Seal(w io.Writer) (io.WriteCloser, error) {
	return age.Encrypt(w, r.list...)
}

// SealText encrypts b to the recipients as armored (PEM-like) text, for a
// field of a manifest.
func (r *Recipients) SealText(b []byte) (string, error) {
	var out strings.Builder
	aw := armor.NewWriter(&out)
	w, err := age.Encrypt(aw, r.list...)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(b); err != nil {
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	if err := aw.Close(); err != nil {
		return "", err
	}
	return out.String(), nil
}

// OpenText opens what SealText wrote (ErrNoMatch for keys that do not
// match).
func (k *Keys) OpenText(s string) ([]byte, error) {
	r, err := k.Open(armor.NewReader(strings.NewReader(s)))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// Keys are the identities that open encrypted backups.
type Keys struct {
	ids  []age.Identity
	file string
}

// LoadKeys reads an identity file: age identities (AGE-SECRET-KEY-1…, as
// age-keygen writes them), or an unencrypted SSH private key.
func LoadKeys(path string) (*Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("age identity file %s: %w", path, err))
	}
	if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		id, err := agessh.ParseIdentity(b)
		if err != nil {
			return nil, fault.BadInput(fmt.Errorf("age identity file %s: %w (an SSH key protected by a passphrase is not read: decrypt it, or use an age identity)", path, err))
		}
		return &Keys{ids: []age.Identity{id}, file: path}, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fault.BadInput(fmt.Errorf("age identity file %s: %w", path, err))
	}
	return &Keys{ids: ids, file: path}, nil
}

// Opens says whether the keys can open what is encrypted to r: an age
// identity opens what is encrypted to its own public key. An SSH identity
// cannot be told from here, and counts as opening.
func (k *Keys) Opens(r *Recipients) bool {
	for _, id := range k.ids {
		x, ok := id.(*age.X25519Identity)
		if !ok {
			return true
		}
		for _, n := range r.names {
			if n == x.Recipient().String() {
				return true
			}
		}
	}
	return false
}

// File is the identity file the keys came from.
func (k *Keys) File() string { return k.file }

// Open returns the plain bytes of the age stream r. It reads the header
// first: identities that do not match fail here, before any content.
func (k *Keys) Open(r io.Reader) (io.Reader, error) {
	out, err := age.Decrypt(r, k.ids...)
	var nomatch *age.NoIdentityMatchError
	if errors.As(err, &nomatch) {
		return nil, ErrNoMatch
	}
	return out, err
}

// ErrNoMatch says no identity of the keys opens the file.
var ErrNoMatch = errors.New("no identity in the identity file matches a recipient of the file")

// KeyError refuses an encrypted backup that cannot be opened: no identity
// file given, or none of its identities matching. Nothing was changed.
type KeyError struct {
	File string
	// KeyFile is the identity file tried; "" when none was given.
	KeyFile string
	// Recipients are whom the file was encrypted to, by its manifest
	// (empty without one).
	Recipients []string
}

func (e *KeyError) Error() string {
	to := ""
	if len(e.Recipients) > 0 {
		to = " to " + strings.Join(e.Recipients, ", ")
	}
	if e.KeyFile == "" {
		return fmt.Sprintf("%s is encrypted%s and no age identity file is given; nothing was changed", e.File, to)
	}
	return fmt.Sprintf("%s is encrypted%s and no identity in %s matches; nothing was changed", e.File, to, e.KeyFile)
}

// Kind is fault.Invalid: the file was refused before anything changed.
func (e *KeyError) Kind() fault.Kind { return fault.Invalid }
