package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/roles"
)

func TestWriteReadRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "rulesdb-20260101-000000.sql")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	rows := int64(7)
	want := Manifest{Format: Format, ToolVersion: "test", Database: "rulesdb", Kind: backupfile.Full, File: filepath.Base(file),
		Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Compression: backupfile.None, Size: 1, SHA256: "ab", Superuser: "rules",
		Tables:     []fingerprint.Table{{Schema: "public", Name: "rules", Columns: []string{"id"}, Rows: &rows, Hash: "h"}},
		Extensions: []fingerprint.Extension{}, Sequences: []fingerprint.Sequence{},
		Safety: &Safety{Command: "aidb nuke", Reason: "why"}}
	require.NoError(t, Write(file, want))
	st, err := os.Stat(PathFor(file))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "a manifest is as private as its backup")
	assert.Equal(t, file+".manifest.json", PathFor(file))

	got, err := Read(file)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// A latest pointer is followed to the file it names.
	link := filepath.Join(dir, backupfile.LatestName("rulesdb", backupfile.None))
	require.NoError(t, os.Symlink(filepath.Base(file), link))
	got, err = Read(link)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	// Write replaces a manifest whole and leaves no partial file.
	want.Size = 2
	require.NoError(t, Write(file, want))
	got, err = Read(file)
	require.NoError(t, err)
	assert.Equal(t, int64(2), got.Size)
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, des, 3, "the file, its manifest and the pointer")
}

func TestReadRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "a.sql")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))

	_, err := Read(file)
	assert.ErrorIs(t, err, ErrMissing, "a plain pg_dump file")
	assert.ErrorContains(t, err, file)

	for body, msg := range map[string]string{
		"{":                 "manifest of " + file + " is not valid JSON",
		`{"format": 0}`:     "manifest of " + file + " has format 0; this aidb reads formats 1 to 4",
		`{"format": 5}`:     "has format 5",
		`{"format": "two"}`: "is not valid JSON",
	} {
		require.NoError(t, os.WriteFile(PathFor(file), []byte(body), 0o600))
		_, err := Read(file)
		assert.ErrorContains(t, err, msg, body)
		assert.NotErrorIs(t, err, ErrMissing, body)
	}
	for _, f := range []int{1, 2, 3, 4} {
		m, err := Parse([]byte(`{"format": `+string(rune('0'+f))+`}`), file)
		require.NoError(t, err)
		assert.Equal(t, f == 1, m.WholeRowHash(), "format 1 hashes whole rows")
		assert.Equal(t, f < 3, m.ChildColumnOrder(), "formats 1 and 2 hash the column order of inheritance children")
		want := fingerprint.NoPrivileges
		if f >= 4 {
			want = fingerprint.WithOwners
		}
		assert.Equal(t, want, m.PrivilegeForm(), "format %d: owners and privileges from format 4 on", f)
	}
	m, err := Parse([]byte(`{"format": 4, "no_owner": true}`), file)
	require.NoError(t, err)
	assert.Equal(t, fingerprint.WithoutOwners, m.PrivilegeForm(), "a --no-owner backup is compared without owners")
}

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "a.sql")
	body := []byte("SELECT 1;\n")
	require.NoError(t, os.WriteFile(file, body, 0o600))
	sum := sha256.Sum256(body)
	m := Manifest{Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	require.NoError(t, Check(file, m))

	var mm *MismatchError
	short := m
	short.Size++
	err := Check(file, short)
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, file+" is 10 bytes but its manifest says 11: the file is truncated or was changed", err.Error())

	changed := m
	changed.SHA256 = "00"
	err = CheckFrom(bytes.NewReader(body), "x.sql", changed)
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, "x.sql has sha256 "+m.SHA256+" but its manifest says 00: the file was changed or is corrupt", err.Error())

	err = Check(filepath.Join(dir, "gone.sql"), m)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.False(t, errors.As(err, &mm), "a missing file is no mismatch")

	err = CheckFrom(iotest.ErrReader(errors.New("disk on fire")), "x.sql", m)
	assert.ErrorContains(t, err, "read x.sql: disk on fire")
}

// A data-only backup's schema part lives in its manifest with its own
// sha256: written and read back whole, and a part that was changed, cut
// or removed makes the backup damaged (a MismatchError, as for the file).
func TestSchemaPartWriteReadDamaged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "rulesdb-data-20260101-000000.sql")
	body := []byte("COPY public.scratch (id) FROM stdin;\n1\n\\.\n")
	require.NoError(t, os.WriteFile(file, body, 0o600))
	sum := sha256.Sum256(body)
	sql := "CREATE TABLE public.scratch (\n    id integer NOT NULL\n);\n"
	m := Manifest{Format: Format, Database: "rulesdb", Kind: backupfile.Data, File: filepath.Base(file),
		Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), Schema: NewSchema([]byte(sql))}
	want := sha256.Sum256([]byte(sql))
	assert.Equal(t, &Schema{SQL: sql, SHA256: hex.EncodeToString(want[:])}, m.Schema)
	require.NoError(t, Write(file, m))

	got, err := Read(file)
	require.NoError(t, err)
	require.NotNil(t, got.Schema)
	assert.Equal(t, sql, got.Schema.SQL, "the SQL as pg_dump wrote it")
	require.NoError(t, Check(file, got))
	raw, err := os.ReadFile(PathFor(file))
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"schema": {`)

	var mm *MismatchError
	altered := got
	altered.Schema = &Schema{SQL: strings.Replace(sql, "integer", "bigint", 1), SHA256: got.Schema.SHA256}
	err = Check(file, altered)
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, "the schema part of "+file+" has sha256 "+NewSchema([]byte(altered.Schema.SQL)).SHA256+" but its manifest says "+got.Schema.SHA256+": the manifest was changed", err.Error())

	cut := got
	cut.Schema = &Schema{SQL: sql[:10], SHA256: got.Schema.SHA256}
	require.ErrorAs(t, Check(file, cut), &mm)

	removed := got
	removed.Schema = &Schema{SHA256: got.Schema.SHA256}
	err = CheckSchema(file, removed)
	require.ErrorAs(t, err, &mm)
	assert.Equal(t, "the schema part of "+file+" is missing from its manifest: the manifest was changed", err.Error())

	// A file that does not match is named first; a manifest without a
	// schema part (another kind, or an older data-only backup) passes.
	changedFile := altered
	changedFile.Size++
	assert.ErrorContains(t, Check(file, changedFile), fmt.Sprintf("is %d bytes but its manifest says %d", len(body), len(body)+1))
	old := got
	old.Schema = nil
	require.NoError(t, Check(file, old))
	b, err := json.Marshal(old)
	require.NoError(t, err)
	assert.NotContains(t, string(b), `"schema"`, "absent when there is none (omitempty)")
	parsed, err := Parse([]byte(`{"format": 3, "kind": "data"}`), "old.sql")
	require.NoError(t, err)
	assert.Nil(t, parsed.Schema, "a manifest from before schema parts")
}

func TestSetNames(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 5, 17, 9, 30, 5, 0, time.FixedZone("CEST", 7200))
	assert.Equal(t, "set-20250517-073005.manifest.json", SetName(backupfile.Full, at), "UTC")
	assert.Equal(t, "set-data-20250517-073005.manifest.json", SetName(backupfile.Data, at))
	for _, k := range []backupfile.Kind{backupfile.Full, backupfile.Schema, backupfile.Data} {
		assert.True(t, IsSetName(SetName(k, at)), k)
	}
	for _, other := range []string{"set-20250517.manifest.json", "rulesdb-20250517-073005.sql.manifest.json", "set-20250517-073005.manifest.json.partial", "set-full-20250517-073005.manifest.json"} {
		assert.False(t, IsSetName(other), other)
	}

	s, err := ParseSet([]byte(`{"format":2,"kind":"full","files":[{"database":"rulesdb","file":"a.sql","sha256":"ab"}]}`), "/b/set.json")
	require.NoError(t, err)
	assert.Equal(t, []SetFile{{Database: "rulesdb", File: "a.sql", SHA256: "ab"}}, s.Files)
	_, err = ParseSet([]byte("["), "/b/set.json")
	assert.ErrorContains(t, err, "set manifest /b/set.json is not valid JSON")
	assert.ErrorContains(t, err, "move it out of the backup folder")
}

// Seal moves the schema SQL and role password hashes out of plain text;
// Unseal puts them back; a changed sealed part is found without the key.
func TestSealAndUnseal(t *testing.T) {
	t.Parallel()
	box := map[string][]byte{}
	seal := func(b []byte) (string, error) {
		k := fmt.Sprintf("SEALED-%d", len(box))
		box[k] = append([]byte(nil), b...)
		return k, nil
	}
	open := func(s string) ([]byte, error) {
		b, ok := box[s]
		if !ok {
			return nil, errors.New("no such sealed text")
		}
		return b, nil
	}
	m := Manifest{Schema: NewSchema([]byte("CREATE TABLE rules (id int);\n")),
		Roles: []roles.Role{{Name: "app", Password: "SCRAM-SHA-256$4096:x"}, {Name: "reader"}}}
	orig := m
	require.NoError(t, m.Seal(seal))
	b, err := json.Marshal(m)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "CREATE TABLE", "no schema SQL in plain text")
	assert.NotContains(t, string(b), "SCRAM-SHA-256", "no password hash in plain text")
	assert.Equal(t, "SCRAM-SHA-256$4096:x", orig.Roles[0].Password, "the caller's roles are not changed")
	require.NoError(t, CheckSchema("f", m), "sealed and whole")

	var back Manifest
	require.NoError(t, json.Unmarshal(b, &back))
	require.NoError(t, back.Unseal("f", open))
	assert.Equal(t, orig.Schema, back.Schema)
	assert.Equal(t, orig.Roles, back.Roles)
	assert.Nil(t, back.Sealed)

	// A changed sealed part: damage, found with or without the key.
	var changed Manifest
	require.NoError(t, json.Unmarshal(b, &changed))
	changed.Sealed.Age += "x"
	var mm *MismatchError
	require.ErrorAs(t, CheckSchema("f", changed), &mm)
	require.ErrorAs(t, changed.Unseal("f", open), &mm)

	// Nothing secret: nothing sealed.
	plain := Manifest{Roles: []roles.Role{{Name: "reader"}}}
	require.NoError(t, plain.Seal(seal))
	assert.Nil(t, plain.Sealed)
}

// The schema form follows the format, the options and the source's major:
// MAINTAIN is left out for a backup of a server before 17 only.
func TestSchemaForm(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version string
		major   int
		noMaint bool
	}{
		{"15.14 (Debian 15.14-0+deb12u1)", 15, true},
		{"16.4", 16, true},
		{"17.6 (Debian 17.6-0+deb13u1)", 17, false},
		{"18beta1", 18, false},
		{"", 0, false},
	} {
		m := Manifest{Format: Format, ServerVersion: tc.version}
		assert.Equal(t, tc.major, m.ServerMajor(), tc.version)
		f := m.SchemaForm()
		assert.Equal(t, tc.noMaint, f.NoMaintain, tc.version)
		assert.Equal(t, fingerprint.WithOwners, f.Privileges, tc.version)
		assert.False(t, f.ChildColumnOrder, tc.version)
	}
	old := Manifest{Format: 2, ServerVersion: "15.4", NoOwner: true}.SchemaForm()
	assert.True(t, old.ChildColumnOrder)
	assert.Equal(t, fingerprint.NoPrivileges, old.Privileges)
	assert.Equal(t, fingerprint.WithoutOwners, Manifest{Format: 4, NoOwner: true}.SchemaForm().Privileges)
}
