package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
)

// source is a backup file that passed the checks of what it is.
type source struct {
	// name is the file as the user named it.
	name string
	// path is the file, symbolic links (latest pointers) followed.
	path        string
	size        int64
	compression backupfile.Compression
	// manifest is nil for a file without one.
	manifest *manifest.Manifest
	// dumpHeader says the plain SQL starts as pg_dump's does (checked
	// only without a manifest).
	dumpHeader bool
	// firstLine is the plain SQL's first line, for messages.
	firstLine string
	warnings  []string
	// object is set for a backup in a repository (path is its URL).
	object Object
}

// CheckFile refuses with a FileError (bad input, fault.Invalid) what cannot
// be restored as a backup, saying what it is and how it could be: no name, a missing file, a
// symbolic link that loops or leads nowhere, a folder, an empty file, and,
// for a file without a manifest, one that holds no plain SQL (a pg_dump
// archive of the custom, tar or directory format, a pg_dumpall dump, a
// compression aidb does not read, binary data). It reads the file's first
// bytes only; a restore's preflight reads all of it.
func CheckFile(file string) error {
	_, err := inspect(file)
	return err
}

// inspect runs CheckFile's checks and reads the manifest.
func inspect(file string) (source, error) {
	s := source{name: file}
	path, size, err := locate(file)
	if err != nil {
		return s, err
	}
	s.path, s.size = path, size
	if s.compression, err = detect(path); err != nil {
		return s, &FileError{File: file, Err: fmt.Errorf("backup file %s cannot be read: %w", file, err)}
	}
	s.warnings = nameWarnings(file, s.compression)

	m, err := manifest.Read(file)
	switch {
	case errors.Is(err, manifest.ErrMissing):
	case err != nil:
		return s, &FileError{File: file, Err: err}
	default:
		s.manifest = &m
		return s, nil
	}
	if strings.HasSuffix(file, manifest.Suffix) {
		return s, refuseFile(file, FixFile, "%s is a backup's manifest, not the backup: name the backup file beside it, %s", file, strings.TrimSuffix(file, manifest.Suffix))
	}
	head, err := plainHead(path, s.compression)
	if err != nil {
		return s, refuseFile(file, RestoreAnother, "backup file %s is %s but cannot be decompressed: %v; it is damaged or cut short", file, compressedName(s.compression), err)
	}
	if err := whatIs(file, s.compression, head); err != nil {
		return s, err
	}
	s.dumpHeader = dumpformat.StartsAsDump(head)
	first, _, _ := bytes.Cut(head, []byte("\n"))
	s.firstLine = string(first)
	return s, nil
}

// locate checks that file names a readable regular file, not empty, and
// returns its path with symbolic links followed, and its size.
func locate(file string) (string, int64, error) {
	bad := func(next FileNext, format string, a ...any) (string, int64, error) {
		return "", 0, refuseFile(file, next, format, a...)
	}
	if strings.TrimSpace(file) == "" {
		return bad(NameAnother, "no backup file given: name one")
	}
	st, err := os.Stat(file)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return bad(NameAnother, "backup file %s is a symbolic link that leads back to itself (a loop of links, %s): point it at a backup file, or name the backup file itself", file, linkChain(file))
	case errors.Is(err, fs.ErrNotExist):
		if lst, lerr := os.Lstat(file); lerr == nil && lst.Mode()&fs.ModeSymlink != 0 {
			return bad(NameAnother, "backup file %s is a symbolic link to a file that does not exist (%s): point it at a backup file, or name the backup file itself", file, linkChain(file))
		}
		if db, c, ok := backupfile.ParseLatest(filepath.Base(file)); ok {
			// The newest backup was compressed: its pointer has the
			// compression's extension, and the others were removed.
			for _, other := range backupfile.OtherLatestNames(db, c) {
				if alt := filepath.Join(filepath.Dir(file), other); fileExists(alt) {
					return bad(FixFile, "backup file %s: no such file; the newest full backup of %s is compressed, and its pointer is %s: name that one", file, db, alt)
				}
			}
		}
		return bad(NameAnother, "backup file %s: no such file", file)
	case errors.Is(err, fs.ErrPermission):
		return bad(FixFile, "backup file %s cannot be read: permission denied; give this user read access, or run as the user that owns it", file)
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return bad(FixFile, "backup file %s cannot be read: %v", file, err)
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(file, "toc.dat")); err == nil {
			return bad(FixFile, "%s is a pg_dump directory-format archive (pg_dump -Fd), not a plain SQL backup: convert it with pg_restore -f - %s > %s.sql, then restore %s.sql; nothing was changed",
				file, file, strings.TrimSuffix(file, "/"), strings.TrimSuffix(file, "/"))
		}
		return bad(NameAnother, "backup file %s is a folder: name a backup file in it", file)
	}
	if !st.Mode().IsRegular() {
		return bad(NameAnother, "backup file %s is not a regular file (it is a %s): name a backup file", file, fileType(st.Mode()))
	}
	path, err := filepath.EvalSymlinks(file)
	if err != nil {
		return bad(NameAnother, "backup file %s: %v", file, err)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return bad(FixFile, "backup file %s cannot be read: permission denied; give this user read access, or run as the user that owns it", file)
		}
		return bad(FixFile, "backup file %s cannot be read: %v", file, err)
	}
	_ = f.Close()
	if st.Size() == 0 {
		return bad(RestoreAnother, "backup file %s is empty (0 bytes), so it holds no backup (was it cut off while it was written?)", file)
	}
	return path, st.Size(), nil
}

// linkChain follows a symbolic link a few steps, for a message: "a -> b -> a".
func linkChain(file string) string {
	chain := []string{file}
	seen := map[string]bool{filepath.Clean(file): true}
	cur := file
	for range 8 {
		dest, err := os.Readlink(cur)
		if err != nil {
			break
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(cur), dest)
		}
		chain = append(chain, dest)
		if seen[filepath.Clean(dest)] {
			break
		}
		seen[filepath.Clean(dest)] = true
		cur = dest
	}
	return strings.Join(chain, " -> ")
}

func fileType(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return m.Type().String()
}

// nameWarnings says when a file's name and its compression disagree: the
// content decides how it is read.
func nameWarnings(file string, c backupfile.Compression) []string {
	if c.IsSealed() {
		return nil // what is under the encryption shows once it is opened
	}
	name := strings.TrimSuffix(file, ".partial")
	gz, zst := strings.HasSuffix(name, ".gz"), strings.HasSuffix(name, ".zst")
	switch {
	case c == backupfile.Gzip && !gz:
		return []string{fmt.Sprintf("%s is gzip-compressed though its name does not end in .gz: it is read as gzip", file)}
	case c == backupfile.Zstd && !zst:
		return []string{fmt.Sprintf("%s is zstd-compressed though its name does not end in .zst: it is read as zstd", file)}
	case c == backupfile.None && (gz || zst):
		return []string{fmt.Sprintf("%s is not compressed though its name says so: it is read as plain SQL", file)}
	}
	return nil
}

// headSize is how much of a file's plain content whatIs looks at.
const headSize = 1024

// plainHead is the first bytes of a file's content, decompressed.
func plainHead(path string, c backupfile.Compression) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var r io.Reader = f
	switch c {
	case backupfile.Gzip:
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, err
		}
		r = zr
	case backupfile.Zstd:
		zr, err := zstd.NewReader(f)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	head := make([]byte, headSize)
	n, err := io.ReadFull(r, head)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil
	}
	return head[:n], err
}

// whatIs refuses, with a FileError naming what it holds and what to run
// instead, a file without a manifest that does not hold plain SQL; nil for
// text that may be SQL (the end of the file is checked when it is read
// whole).
func whatIs(file string, c backupfile.Compression, head []byte) error {
	in := ""
	if c != backupfile.None {
		in = compressedName(c) + " "
	}
	const nothing = "; nothing was changed"
	convert := func(kind string) error {
		out := plainName(file)
		cmd := "pg_restore -f - " + file + " > " + out
		inCtr := "docker exec -i CONTAINER pg_restore -f - < " + file + " > " + out
		switch c {
		case backupfile.Gzip:
			cmd = "gzip -dc " + file + " | pg_restore -f - > " + out
			inCtr = "gzip -dc " + file + " | docker exec -i CONTAINER pg_restore -f - > " + out
		case backupfile.Zstd:
			cmd = "zstd -dc " + file + " | pg_restore -f - > " + out
			inCtr = "zstd -dc " + file + " | docker exec -i CONTAINER pg_restore -f - > " + out
		}
		return refuseFile(file, RunInContainer, "%s is a %spg_dump %s archive, not a plain SQL backup, which is what aidb restores and checks: convert it with %s "+
			"(a pg_restore of the archive's PostgreSQL version or newer; the database's container has one: %s), then restore %s%s",
			file, in, kind, cmd, inCtr, out, nothing)
	}
	tarName := func() string {
		if len(head) >= 262 && string(head[257:262]) == "ustar" {
			return strings.TrimRight(string(head[:100]), "\x00")
		}
		return ""
	}
	switch {
	case bytes.HasPrefix(head, []byte("PGDMP")):
		return convert("custom-format (pg_dump -Fc)")
	case tarName() == "toc.dat":
		return convert("tar-format (pg_dump -Ft)")
	case tarName() != "":
		return refuseFile(file, FixFile, "%s is a %star archive (its first entry is %s), not a backup file: unpack it and restore the .sql backup inside%s", file, in, tarName(), nothing)
	case bytes.HasPrefix(head, []byte("--\n-- PostgreSQL database cluster dump")):
		return refuseFile(file, RunInContainer, "%s is a %spg_dumpall dump of a whole server (every database and its roles), not a backup of one database: restore one database's pg_dump file (docker exec CONTAINER pg_dump -U USER DB > FILE.sql makes one)%s", file, in, nothing)
	}
	if c != backupfile.None {
		// A compression inside a compression is not looked into further.
		if other := compressionOf(head); other != "" {
			return refuseFile(file, FixFile, "%s is %s and holds %s: decompress it and restore what it holds%s", file, compressedName(c), other, nothing)
		}
	} else if other := compressionOf(head); other != "" {
		return refuseFile(file, FixFile, "%s is %s: aidb reads plain SQL, gzip and zstd files; decompress it and restore what it holds%s", file, other, nothing)
	}
	if bytes.HasPrefix(head, []byte("age-encryption.org/")) || bytes.HasPrefix(head, []byte("-----BEGIN AGE ENCRYPTED FILE-----")) {
		return refuseFile(file, FixFile, "%s is encrypted with age and has no manifest, so aidb cannot check what it holds: decrypt it first (age -d -i KEYFILE -o %s %s), then restore that file%s", file, strings.TrimSuffix(file, ".age")+".decrypted", file, nothing)
	}
	if binary(head) {
		return refuseFile(file, NameAnother, "%s is %sbinary data, not SQL (it starts with % x): it is not a backup%s", file, in, head[:min(len(head), 8)], nothing)
	}
	return nil
}

// compressionOf names a compression or packing aidb does not read, by its
// magic bytes.
func compressionOf(head []byte) string {
	for _, m := range []struct {
		magic []byte
		name  string
	}{
		{[]byte{0x1f, 0x8b}, "gzip-compressed data"},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, "zstd-compressed data"},
		{[]byte("BZh"), "bzip2-compressed (bunzip2 -k FILE decompresses it)"},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, "xz-compressed (unxz -k FILE decompresses it)"},
		{[]byte{0x04, 0x22, 0x4d, 0x18}, "lz4-compressed (lz4 -d FILE decompresses it)"},
		{[]byte("PK\x03\x04"), "a zip archive (unzip FILE unpacks it)"},
		{[]byte{'7', 'z', 0xbc, 0xaf, 0x27, 0x1c}, "a 7-Zip archive"},
	} {
		if bytes.HasPrefix(head, m.magic) {
			return m.name
		}
	}
	return ""
}

func compressedName(c backupfile.Compression) string {
	switch c {
	case backupfile.Gzip:
		return "gzip-compressed"
	case backupfile.Zstd:
		return "zstd-compressed"
	}
	return "plain"
}

// binary says whether the bytes cannot be SQL text: a NUL byte, or not
// UTF-8 (a rune cut by the end of head aside). A dump in another encoding
// (LATIN1) is still text: only control bytes and NULs count then.
func binary(head []byte) bool {
	if bytes.IndexByte(head, 0) >= 0 {
		return true
	}
	valid := head
	for i := 0; i < utf8.UTFMax && len(valid) > 0 && !utf8.Valid(valid); i++ {
		valid = valid[:len(valid)-1]
	}
	if utf8.Valid(valid) {
		return false
	}
	controls := 0
	for _, b := range head {
		if b < 0x20 && b != '\n' && b != '\r' && b != '\t' && b != '\f' {
			controls++
		}
	}
	return controls > len(head)/100
}

// readDump reads a file without a manifest whole, the way a restore will:
// it must decompress cleanly and end as a pg_dump file does; it lists the
// tables the file creates and loads.
func readDump(src source) (dumpformat.Tables, error) {
	bad := func(next FileNext, format string, a ...any) (dumpformat.Tables, error) {
		return dumpformat.Tables{}, refuseFile(src.name, next, format, a...)
	}
	ct, err := openContent(src.path, src.compression, nil, nil, nil)
	if err != nil {
		return bad(FixFile, "backup file %s cannot be read: %v; nothing was changed", src.name, err)
	}
	defer func() { _ = ct.Close() }()
	d, err := dumpformat.ScanTables(ct)
	switch {
	case errors.Is(err, errCutShort) && src.dumpHeader:
		return bad(RestoreAnother, "%s was cut short: it starts as a pg_dump file does but does not end with pg_dump's closing line (%q); nothing was changed", src.name, dumpformat.ClosingLine)
	case errors.Is(err, errCutShort):
		return bad(NameAnother, "%s is not a pg_dump file: it neither starts with pg_dump's header nor ends with its closing line (%q); its first line is %q. Restore a file made by aidb or pg_dump; nothing was changed", src.name, dumpformat.ClosingLine, firstLine(src.firstLine))
	case err != nil:
		return bad(RestoreAnother, "%s cannot be read to its end: %v; it is damaged; nothing was changed", src.name, err)
	case d.CreatesDatabase > 0:
		// psql would stop at its DROP/CREATE DATABASE (no transaction
		// block allows them), or \connect away from the database being
		// restored into.
		return bad(FixFile, "%s was made with pg_dump --create (-C): at line %d it creates or connects to a database of its own, which a restore into this database cannot do; make it again without -C (and -c), or remove its DROP DATABASE, CREATE DATABASE and \\connect lines; nothing was changed", src.name, d.CreatesDatabase)
	}
	return d, nil
}

// firstLine shortens a line for a message.
func firstLine(s string) string {
	if r := []rune(s); len(r) > 60 {
		return string(r[:60]) + "…"
	}
	return s
}

// plainName is where a converted archive's plain SQL goes: the file's name
// with .sql for its extension, or .plain.sql where that is the file itself.
func plainName(file string) string {
	base := strings.TrimSuffix(strings.TrimSuffix(file, ".gz"), ".zst")
	base = strings.TrimSuffix(base, filepath.Ext(base))
	if out := base + ".sql"; out != file {
		return out
	}
	return base + ".plain.sql"
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
