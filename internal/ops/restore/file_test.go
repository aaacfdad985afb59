package restore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
)

func TestCheckFileNamesWhatAFileIs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, b, 0o600))
		return path
	}
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(b)
		require.NoError(t, zw.Close())
		return buf.Bytes()
	}
	tarHead := make([]byte, 512)
	copy(tarHead, "toc.dat")
	copy(tarHead[257:], "ustar")
	otherTar := make([]byte, 512)
	copy(otherTar, "notes.txt")
	copy(otherTar[257:], "ustar")
	loopA, loopB := filepath.Join(dir, "a.sql"), filepath.Join(dir, "b.sql")
	require.NoError(t, os.Symlink(loopB, loopA))
	require.NoError(t, os.Symlink(loopA, loopB))
	dangling := filepath.Join(dir, "latest.sql")
	require.NoError(t, os.Symlink(filepath.Join(dir, "gone.sql"), dangling))
	dirFormat := filepath.Join(dir, "dumpdir")
	require.NoError(t, os.Mkdir(dirFormat, 0o700))
	write("dumpdir/toc.dat", []byte("PGDMP"))
	manifestOnly := write("x.sql.manifest.json", []byte(`{"format": 2}`))
	write("rulesdb-latest.sql.zst", []byte("a pointer's stand-in"))

	// next is the way on the message leaves to the caller: cmd/aidb's
	// advice names the make target that lists the backups (NameAnother,
	// RestoreAnother) or the command that shows CONTAINER (RunInContainer).
	cases := []struct {
		name, file string
		want       []string // empty: accepted
		next       FileNext
	}{
		{"no name", "", []string{"no backup file given"}, NameAnother},
		{"missing", filepath.Join(dir, "nope.sql"), []string{"no such file"}, NameAnother},
		{"latest pointer of another compression", filepath.Join(dir, "rulesdb-latest.sql"), []string{"no such file", "its pointer is " + filepath.Join(dir, "rulesdb-latest.sql.zst")}, FixFile},
		{"loop", loopA, []string{"leads back to itself", loopA + " -> " + loopB + " -> " + loopA + ")"}, NameAnother},
		{"dangling", dangling, []string{"symbolic link to a file that does not exist", "gone.sql"}, NameAnother},
		{"folder", dir, []string{"is a folder"}, NameAnother},
		{"directory format", dirFormat, []string{"directory-format archive (pg_dump -Fd)", "pg_restore -f - " + dirFormat + " > " + dirFormat + ".sql"}, FixFile},
		{"empty", write("empty.sql", nil), []string{"is empty (0 bytes)"}, RestoreAnother},
		{"custom", write("r.dump", []byte("PGDMP\x01\x0e\x00")), []string{"custom-format (pg_dump -Fc)", "pg_restore -f - " + filepath.Join(dir, "r.dump") + " > " + filepath.Join(dir, "r.sql"), "docker exec -i CONTAINER pg_restore"}, RunInContainer},
		{"custom named .sql", write("c.sql", []byte("PGDMP\x01\x0e\x00")), []string{"custom-format", "> " + filepath.Join(dir, "c.plain.sql")}, RunInContainer},
		{"gzipped custom", write("g.sql.gz", gz([]byte("PGDMP\x01\x0e\x00"))), []string{"gzip-compressed pg_dump custom-format", "gzip -dc "}, RunInContainer},
		{"tar format", write("t.tar", tarHead), []string{"tar-format (pg_dump -Ft)"}, RunInContainer},
		{"other tar", write("o.tar", otherTar), []string{"a tar archive (its first entry is notes.txt)"}, FixFile},
		{"pg_dumpall", write("all.sql", []byte("--\n-- PostgreSQL database cluster dump\n--\n")), []string{"pg_dumpall dump of a whole server", "docker exec CONTAINER pg_dump"}, RunInContainer},
		{"xz", write("x.sql.xz", []byte{0xfd, '7', 'z', 'X', 'Z', 0, 1}), []string{"xz-compressed"}, FixFile},
		{"gzip in gzip", write("gg.sql.gz", gz(gz([]byte("x")))), []string{"is gzip-compressed and holds gzip-compressed data"}, FixFile},
		{"age", write("e.sql.age", []byte("age-encryption.org/v1\n-> X25519 abc\n")), []string{"encrypted with age"}, FixFile},
		{"binary", write("bin.sql", []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0}), []string{"binary data, not SQL (it starts with 7f 45 4c 46"}, NameAnother},
		{"a manifest", manifestOnly, []string{"is a backup's manifest, not the backup", filepath.Join(dir, "x.sql")}, FixFile},
		{"plain dump", write("p.sql", []byte(sampleDump)), nil, 0},
		{"plain dump in latin1", write("l.sql", []byte("--\n-- PostgreSQL database dump\n--\nCOPY t (x) FROM stdin;\ncaf\xe9\n\\.\n")), nil, 0},
		{"gzip named .sql", write("z.sql", gz([]byte(sampleDump))), nil, 0},
	}
	for _, c := range cases {
		err := CheckFile(c.file)
		if c.want == nil {
			assert.NoError(t, err, c.name)
			continue
		}
		require.Error(t, err, c.name)
		assert.Equal(t, fault.Invalid, fault.KindOf(err), c.name)
		var fe *FileError
		if assert.ErrorAs(t, err, &fe, c.name) {
			assert.Equal(t, c.file, fe.File, c.name)
			assert.Equal(t, c.next, fe.Next, c.name)
		}
		for _, w := range c.want {
			assert.Contains(t, err.Error(), w, c.name)
		}
		assert.NotContains(t, err.Error(), "<nil>", c.name)
		assertNoCLI(t, err, c.name)
	}
}

// assertNoCLI says err names no make target, flag or aidb command: those
// are cmd/aidb's to add.
func assertNoCLI(t *testing.T, err error, name string) {
	t.Helper()
	for _, cli := range []string{"make -f", "Makefile.ai", " --", "aidb restore ", "aidb status", "aidb backup", "aidb list"} {
		assert.NotContains(t, err.Error(), cli, name)
	}
}

func TestReadDumpSaysCutShortOrNotADump(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cut := filepath.Join(dir, "cut.sql")
	require.NoError(t, os.WriteFile(cut, []byte(sampleDump[:len(sampleDump)/2]), 0o600))
	src, err := inspect(cut)
	require.NoError(t, err)
	_, err = readDump(src)
	assert.ErrorContains(t, err, "was cut short")
	var fe *FileError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, FileError{File: cut, Next: RestoreAnother}, FileError{File: fe.File, Next: fe.Next}, "another backup is the way on")
	assertNoCLI(t, err, "cut short")

	notes := filepath.Join(dir, "notes.sql")
	require.NoError(t, os.WriteFile(notes, []byte("SELECT 1;\nSELECT 2;\n"), 0o600))
	src, err = inspect(notes)
	require.NoError(t, err)
	_, err = readDump(src)
	assert.ErrorContains(t, err, `is not a pg_dump file`)
	assert.ErrorContains(t, err, `its first line is "SELECT 1;"`)
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, FileError{File: notes, Next: NameAnother}, FileError{File: fe.File, Next: fe.Next}, "a backup is to be named")
	assertNoCLI(t, err, "not a dump")

	whole := filepath.Join(dir, "whole.sql")
	require.NoError(t, os.WriteFile(whole, []byte(sampleDump), 0o600))
	src, err = inspect(whole)
	require.NoError(t, err)
	d, err := readDump(src)
	require.NoError(t, err)
	assert.Equal(t, []dumpformat.Table{{Schema: "public", Name: "rules"}, {Schema: "My Schema", Name: "odd.table"}}, d.All())
}

func TestFewNames(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "a, b", fewNames([]string{"a", "b"}))
	assert.Equal(t, "a, b, c, d, e and 2 more", fewNames([]string{"a", "b", "c", "d", "e", "f", "g"}))
}
