package pgimage

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDeb822Mirror(t *testing.T) {
	t.Parallel()
	text := `Types: deb
# a comment: with a colon
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
`
	assert.Equal(t, "http://archive.example/debian", deb822Mirror(text, "bookworm"))
	assert.Equal(t, "http://security.example/debian-security", deb822Mirror(text, "bookworm-security"))
	assert.Equal(t, "", deb822Mirror(text, "trixie"))
	assert.Equal(t, "", deb822Mirror("Types: deb-src\nURIs: http://x\nSuites: bookworm\n", "bookworm"), "source archives hold no binaries")
	assert.Equal(t, "", deb822Mirror("Types: deb\nURIs: http://x\nSuites: bookworm\nEnabled: no\n", "bookworm"))
}

func TestOneLineMirror(t *testing.T) {
	t.Parallel()
	text := `# deb http://commented.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://opts.example/debian bookworm main
deb http://plain.example/debian trixie main
`
	assert.Equal(t, "http://opts.example/debian", oneLineMirror(text, "bookworm"))
	assert.Equal(t, "http://plain.example/debian", oneLineMirror(text, "trixie"))
	assert.Equal(t, "", oneLineMirror(text, "bullseye"))
}

func TestOSReleaseValue(t *testing.T) {
	t.Parallel()
	text := "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_CODENAME=bookworm\n"
	assert.Equal(t, "bookworm", osReleaseValue(text, "VERSION_CODENAME"))
	assert.Equal(t, "debian", osReleaseValue(text, "ID"))
	assert.Equal(t, "", osReleaseValue(text, "VERSION_ID"))
}

func TestTag(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "aidb.local/postgres:15", Tag("15"))
}
