// Package manifest is the record beside every backup file,
// <file>.manifest.json: what the file holds (database, kind, tables with row
// counts and content hashes, sequences, schema hash, extensions), where it
// came from (server version, image, migration version) and how to check it
// (size, sha256 of its bytes). Restores and verification compare against it.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"time"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/roles"
	"github.com/aidb/aidb/internal/store/folder"
)

// Format is the manifest format version this aidb writes. Format 1's
// content hashes are md5 over every column of a row; format 2's are sha256
// over the columns a dump holds (generated ones are left out). Format 3's
// schema hash leaves out the column order of inheritance children (a dump
// cannot keep it) and describes inheritance instead. Format 4's backups
// keep owners and privileges (pg_dump without --no-owner --no-privileges)
// and carry the cluster roles the database refers to; its schema hash
// covers owners, ACLs, default privileges, row-level security and
// policies. All are read.
const Format = 4

// Suffix follows the backup file's name.
const Suffix = ".manifest.json"

// Manifest describes one backup file.
type Manifest struct {
	Format        int             `json:"format"`
	ToolVersion   string          `json:"tool_version"`
	Database      string          `json:"database"`
	Kind          backupfile.Kind `json:"kind"`
	File          string          `json:"file"`
	Created       time.Time       `json:"created"`
	ServerVersion string          `json:"server_version"`
	// Superuser is the source server's superuser (its POSTGRES_USER): a
	// verification's throwaway server runs with that name, so what names
	// it (an aclitem value, a grant) restores there. Empty in manifests
	// written before it was recorded.
	Superuser        string                  `json:"superuser,omitempty"`
	Image            string                  `json:"image"`
	MigrationVersion int64                   `json:"migration_version"`
	MigrationTable   string                  `json:"migration_table,omitempty"`
	Compression      backupfile.Compression  `json:"compression"`
	Size             int64                   `json:"size"`
	SHA256           string                  `json:"sha256"`
	Extensions       []fingerprint.Extension `json:"extensions"`
	SchemaHash       string                  `json:"schema_hash"`
	Tables           []fingerprint.Table     `json:"tables"`
	Sequences        []fingerprint.Sequence  `json:"sequences"`
	// Privileges are the lines of the schema's description that say who
	// owns what and who may do what (format 4): a restore that lost a
	// grant is told which.
	Privileges []string `json:"privileges,omitempty"`
	// Roles are the cluster roles the database refers to (owners,
	// grantees, policy roles, default-privilege roles and the roles they
	// are members of), which a restore creates where the server lacks
	// them (format 4).
	Roles []roles.Role `json:"roles,omitempty"`
	// DatabaseProperties are what belongs to the database rather than to
	// its schema (owner, connection limit, comment, ACL, its settings and
	// its roles' settings there), which a full or schema file sets at its
	// end and a restore compares; nil for data-only backups and in
	// manifests written before they were kept.
	DatabaseProperties *fingerprint.Database `json:"database_properties,omitempty"`
	// RolePasswords says Roles hold password hashes (backup
	// --with-role-passwords): the manifest and the file hold secrets.
	RolePasswords bool `json:"role_passwords,omitempty"`
	// NoOwner says the backup was taken without owners (backup
	// --no-owner): its objects belong to whoever restores it, and its
	// schema hash leaves owners out.
	NoOwner bool `json:"no_owner,omitempty"`
	// DumpSeconds and ScanSeconds are how long the dump and the fingerprint
	// scan took (they run concurrently).
	DumpSeconds float64 `json:"dump_seconds"`
	ScanSeconds float64 `json:"scan_seconds"`
	// Safety marks a backup aidb took by itself before a command replaced
	// or removed data; nil for the user's own backups (and in manifests
	// written before safety backups were marked).
	Safety *Safety `json:"safety,omitempty"`
	// Schema is the schema a data-only backup was taken from, kept with
	// it: verification loads it before the data. Nil for the other kinds,
	// and for data-only backups made before it was kept (those are
	// verified on the migrations at their version, as before).
	Schema *Schema `json:"schema,omitempty"`
	// Encryption says the file is encrypted (its Compression is sealed),
	// with what and to whom; SHA256 and Size are then the stored file's,
	// PlainSHA256 the plain SQL's. nil for a file that is not encrypted.
	Encryption *Encryption `json:"encryption,omitempty"`
	// Sealed holds, for an encrypted backup, what the manifest must not
	// show in plain text (a data-only backup's schema SQL, role password
	// hashes), encrypted to the backup's recipients (Seal, Unseal).
	Sealed      *Sealed `json:"sealed,omitempty"`
	PlainSHA256 string  `json:"plain_sha256,omitempty"`
}

// Encryption is how a backup file is encrypted.
type Encryption struct {
	// Method is "age".
	Method string `json:"method"`
	// Recipients are whom it is encrypted to: age public keys, and SSH
	// keys by type and comment.
	Recipients []string `json:"recipients"`
}

// Sealed is the age encryption (armored) of a manifest's secret parts,
// and its sha256: a changed sealed part is found without the identity,
// as CheckSchema finds a changed schema part.
type Sealed struct {
	Age    string `json:"age"`
	SHA256 string `json:"sha256"`
}

// secrets are the parts Seal moves into Sealed.
type secrets struct {
	SchemaSQL     string            `json:"schema_sql,omitempty"`
	RolePasswords map[string]string `json:"role_passwords,omitempty"`
}

// Seal moves the schema part's SQL and the roles' password hashes into
// Sealed, encrypted by seal (encryption.Recipients.SealText): the
// manifest of an encrypted backup holds neither in plain text. The schema
// part keeps its sha256. A manifest with neither is left as it is.
func (m *Manifest) Seal(seal func([]byte) (string, error)) error {
	var s secrets
	if m.Schema != nil {
		s.SchemaSQL = m.Schema.SQL
	}
	for _, r := range m.Roles {
		if r.Password != "" {
			if s.RolePasswords == nil {
				s.RolePasswords = map[string]string{}
			}
			s.RolePasswords[r.Name] = r.Password
		}
	}
	if s.SchemaSQL == "" && s.RolePasswords == nil {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	text, err := seal(b)
	if err != nil {
		return fmt.Errorf("encrypt the manifest's schema part and role passwords: %w", err)
	}
	sum := sha256.Sum256([]byte(text))
	m.Sealed = &Sealed{Age: text, SHA256: hex.EncodeToString(sum[:])}
	if m.Schema != nil {
		schema := *m.Schema
		schema.SQL = ""
		m.Schema = &schema
	}
	m.Roles = slices.Clone(m.Roles)
	for i := range m.Roles {
		m.Roles[i].Password = ""
	}
	return nil
}

// Unseal puts back what Seal moved, opened by open
// (encryption.Keys.OpenText), and checks the schema part against its
// sha256 (CheckSchema). A manifest without a sealed part is left as it is.
func (m *Manifest) Unseal(file string, open func(string) ([]byte, error)) error {
	if m.Sealed == nil {
		return nil
	}
	if err := CheckSchema(file, *m); err != nil {
		return err
	}
	b, err := open(m.Sealed.Age)
	if err != nil {
		return fmt.Errorf("decrypt the sealed part of the manifest of %s: %w", file, err)
	}
	var s secrets
	if err := json.Unmarshal(b, &s); err != nil {
		return &MismatchError{fmt.Sprintf("the sealed part of the manifest of %s does not read (%v): the manifest was changed", file, err)}
	}
	if m.Schema != nil {
		schema := *m.Schema
		schema.SQL = s.SchemaSQL
		m.Schema = &schema
	}
	m.Roles = slices.Clone(m.Roles)
	for i, r := range m.Roles {
		if pw, ok := s.RolePasswords[r.Name]; ok {
			m.Roles[i].Password = pw
		}
	}
	m.Sealed = nil
	return CheckSchema(file, *m)
}

// Schema is a data-only backup's schema part: the plain SQL of a
// schema-only pg_dump of the data's own snapshot, with the migration
// bookkeeping rows (what a schema backup taken then would hold), and its
// sha256. It lives in the manifest rather than in the data file, so that
// a plain psql of the file still loads data only, and everything that
// treats a file and its manifest as one backup (list, prune, sets, latest
// pointers, litter) keeps the two together. A schema part that does not
// match its sha256 makes the backup damaged, as a changed file does.
type Schema struct {
	// SQL is the dump, as pg_dump wrote it (`jq -r .schema.sql` prints it).
	SQL    string `json:"sql"`
	SHA256 string `json:"sha256"`
}

// NewSchema is the schema part holding sql.
func NewSchema(sql []byte) *Schema {
	sum := sha256.Sum256(sql)
	return &Schema{SQL: string(sql), SHA256: hex.EncodeToString(sum[:])}
}

// Safety says why aidb took a safety backup and which command took it. A
// safety backup is not one of the user's backups: it never moves the
// <db>-latest pointer and never counts toward --keep-last; retention keeps
// it by its own rule.
type Safety struct {
	// Reason is why, e.g. "the data of rulesdb before aidb restore
	// replaced it with rulesdb-20250517-093005.sql".
	Reason string `json:"reason"`
	// Command is the aidb command that took it, e.g. "aidb restore".
	Command string `json:"command"`
}

// PathFor is the manifest path of a backup file.
func PathFor(file string) string { return file + Suffix }

// Write stores m beside the backup file, atomically, mode 0600.
func Write(file string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := folder.WriteFileAtomic(PathFor(file), append(b, '\n')); err != nil {
		return fmt.Errorf("write manifest of %s: %w", file, err)
	}
	return nil
}

// ErrMissing says a backup file has no manifest (a plain pg_dump file made
// without aidb).
var ErrMissing = errors.New("no manifest")

// Read loads the manifest of a backup file. A latest pointer is followed to
// the file it names. A missing manifest is ErrMissing.
func Read(file string) (Manifest, error) {
	real, err := filepath.EvalSymlinks(file)
	if err != nil {
		return Manifest{}, err
	}
	b, err := os.ReadFile(PathFor(real))
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("%s: %w", file, ErrMissing)
	}
	if err != nil {
		return Manifest{}, err
	}
	return Parse(b, file)
}

// Parse reads a manifest's bytes; file names the backup file it describes
// in errors. Formats this aidb does not read are errors.
func Parse(b []byte, file string) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("manifest of %s is not valid JSON: %w", file, err)
	}
	if m.Format < 1 || m.Format > Format {
		return Manifest{}, fmt.Errorf("manifest of %s has format %d; this aidb reads formats 1 to %d", file, m.Format, Format)
	}
	return m, nil
}

// WholeRowHash says the content hashes are format 1's: md5 over every
// column, generated ones included.
func (m Manifest) WholeRowHash() bool { return m.Format < 2 }

// ChildColumnOrder says the schema hash covers the column order of
// inheritance children, as it did before format 3.
func (m Manifest) ChildColumnOrder() bool { return m.Format < 3 }

// PrivilegeForm says what the schema hash says of owners and privileges:
// nothing before format 4 (those backups held neither), no owners for a
// --no-owner backup.
func (m Manifest) PrivilegeForm() fingerprint.PrivilegeForm {
	switch {
	case m.Format < 4:
		return fingerprint.NoPrivileges
	case m.NoOwner:
		return fingerprint.WithoutOwners
	}
	return fingerprint.WithOwners
}

// ServerMajor is the major of the server the backup was taken on, read
// from ServerVersion ("15.14 (Debian 15.14-0+deb12u1)": 15); 0 when it
// does not say.
func (m Manifest) ServerMajor() int {
	return dumpformat.LeadingNumber(m.ServerVersion)
}

// SchemaForm is how the schema hash describes the schema, by format, by
// the backup's options and by the source's major: a backup of a server
// before PostgreSQL 17 is described without the MAINTAIN privilege (which
// a server of 17 on gives its owners and ALL grants), so that it compares
// equal where it is restored on a later major (an upgrade or its
// rehearsal, verify --image).
func (m Manifest) SchemaForm() fingerprint.SchemaForm {
	major := m.ServerMajor()
	return fingerprint.SchemaForm{
		ChildColumnOrder: m.ChildColumnOrder(),
		Privileges:       m.PrivilegeForm(),
		NoMaintain:       major > 0 && major < fingerprint.MaintainMajor,
	}
}

// MismatchError says a file's bytes are not the ones its manifest
// describes: cut, changed or corrupt.
type MismatchError struct{ msg string }

func (e *MismatchError) Error() string { return e.msg }

// Mismatch is a *MismatchError saying msg (for bytes checked elsewhere,
// such as a repository object's recorded size and sha256).
func Mismatch(msg string) *MismatchError { return &MismatchError{msg} }

// Check hashes the file and compares its size and sha256 with the
// manifest's; a difference is a *MismatchError saying which.
func Check(file string, m Manifest) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	return CheckFrom(f, file, m)
}

// CheckFrom is Check on the bytes of r, which file names in errors. A
// data-only backup's schema part is checked too (CheckSchema).
func CheckFrom(r io.Reader, file string, m Manifest) error {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	if n != m.Size {
		return &MismatchError{fmt.Sprintf("%s is %d bytes but its manifest says %d: the file is truncated or was changed", file, n, m.Size)}
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != m.SHA256 {
		return &MismatchError{fmt.Sprintf("%s has sha256 %s but its manifest says %s: the file was changed or is corrupt", file, sum, m.SHA256)}
	}
	return CheckSchema(file, m)
}

// CheckSchema compares a data-only backup's schema part with its sha256: a
// part that was changed, cut or removed is a *MismatchError. A manifest
// without one (another kind, or made before schema parts) passes.
func CheckSchema(file string, m Manifest) error {
	if m.Sealed != nil {
		// Sealed: its sha256 is checked here, the schema's once opened.
		sum := sha256.Sum256([]byte(m.Sealed.Age))
		if got := hex.EncodeToString(sum[:]); got != m.Sealed.SHA256 {
			return &MismatchError{fmt.Sprintf("the sealed part of the manifest of %s has sha256 %s but the manifest says %s: the manifest was changed", file, got, m.Sealed.SHA256)}
		}
		if m.Schema == nil || m.Schema.SQL == "" {
			return nil
		}
	}
	if m.Schema == nil {
		return nil
	}
	if m.Schema.SQL == "" {
		return &MismatchError{fmt.Sprintf("the schema part of %s is missing from its manifest: the manifest was changed", file)}
	}
	sum := sha256.Sum256([]byte(m.Schema.SQL))
	if got := hex.EncodeToString(sum[:]); got != m.Schema.SHA256 {
		return &MismatchError{fmt.Sprintf("the schema part of %s has sha256 %s but its manifest says %s: the manifest was changed", file, got, m.Schema.SHA256)}
	}
	return nil
}

// Set names the files of one backup run that covered several databases.
type Set struct {
	Format  int             `json:"format"`
	Created time.Time       `json:"created"`
	Kind    backupfile.Kind `json:"kind"`
	Files   []SetFile       `json:"files"`
	// Safety marks a set of safety backups, as in their manifests.
	Safety *Safety `json:"safety,omitempty"`
}

// SetFile is one file of a Set.
type SetFile struct {
	Database string `json:"database"`
	File     string `json:"file"`
	SHA256   string `json:"sha256"`
}

// SetName is the file name of a set manifest.
func SetName(kind backupfile.Kind, at time.Time) string {
	suffix := ""
	if kind != backupfile.Full {
		suffix = "-" + string(kind)
	}
	return "set" + suffix + "-" + at.UTC().Format(backupfile.TimeLayout) + Suffix
}

// ParseSet reads a set manifest's bytes; path names it in errors.
func ParseSet(b []byte, path string) (Set, error) {
	var s Set
	if err := json.Unmarshal(b, &s); err != nil {
		return Set{}, fmt.Errorf("set manifest %s is not valid JSON: %w; move it out of the backup folder", path, err)
	}
	return s, nil
}

// IsSetName says whether a file name is a set manifest's.
func IsSetName(name string) bool { return setNameRE.MatchString(name) }

var setNameRE = regexp.MustCompile(`^set(-schema|-data)?-\d{8}-\d{6}` + regexp.QuoteMeta(Suffix) + `$`)
