package restore

import (
	"fmt"
	"strings"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/fault"
)

// The refusals of a restore's preflight. Each is bad input (fault.Invalid),
// returned before anything changed, and says what was wrong with its
// identifiers; what to run next (a flag, a make target, another command)
// is the caller's to add: cmd/aidb's advice names it from these fields.

// FileError refuses a file that cannot be restored as it was named: no
// name, no such file, a folder, a link that leads nowhere, not a plain SQL
// backup, damaged. Err says what the file is and, where the file itself
// can be made restorable (converted, decompressed, decrypted, made
// readable), how; Next says what else would let a restore go on.
type FileError struct {
	File string
	Next FileNext
	Err  error
}

// FileNext is the way on from a refused file that a FileError's message
// leaves to the caller.
type FileNext uint8

const (
	// FixFile means the message says how to make the file restorable, or the
	// file is to be fixed where it is (its manifest, its permissions).
	FixFile FileNext = iota
	// NameAnother means the name holds no backup (none given, no such file, a
	// folder, a link that leads nowhere, data that is not a backup):
	// another file is to be named, one of the backups there are.
	NameAnother
	// RestoreAnother means the file is a damaged backup (cut short, changed,
	// corrupt, unreadable to its end): another, whole backup is to be
	// restored.
	RestoreAnother
	// RunInContainer means the message says how to make a restorable file of
	// this one (pg_restore of an archive, pg_dump of one database) with a
	// command run in the database's container, CONTAINER in the command,
	// which the caller can say how to find.
	RunInContainer
)

func (e *FileError) Error() string { return e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Kind is Invalid: the file is refused before anything is changed.
func (e *FileError) Kind() fault.Kind { return fault.Invalid }

// refuseFile is a FileError for file whose message is format's.
func refuseFile(file string, next FileNext, format string, a ...any) error {
	return &FileError{File: file, Next: next, Err: fmt.Errorf(format, a...)}
}

// WrongDatabaseError refuses a backup whose manifest says it was taken of
// another database than the target, unless the request named that
// database (Request.AsDatabase).
type WrongDatabaseError struct {
	File string
	// Backup is the database the backup was taken of.
	Backup string
	// Target is the database the restore was asked to replace.
	Target string
}

func (e *WrongDatabaseError) Error() string {
	return fmt.Sprintf("%s is a backup of %s, not of %s", e.File, e.Backup, e.Target)
}

// Kind is Invalid: the restore is refused before anything is changed.
func (e *WrongDatabaseError) Kind() fault.Kind { return fault.Invalid }

// KindError refuses a backup of a kind the restore does not load: a full
// or schema backup for a data-only restore (DataOnly), a data-only backup
// for a full one.
type KindError struct {
	File string
	// Backup is the backup's kind, by its manifest.
	Backup backupfile.Kind
	// DataOnly says the restore asked was data-only.
	DataOnly bool
}

func (e *KindError) Error() string {
	if e.DataOnly {
		return fmt.Sprintf("%s is a %s backup, not a data-only one", e.File, e.Backup)
	}
	return fmt.Sprintf("%s is a data-only backup, not a full or schema one", e.File)
}

// Kind is Invalid: the restore is refused before anything is changed.
func (e *KindError) Kind() fault.Kind { return fault.Invalid }

// ForeignError refuses a full restore of a file without a manifest into a
// target that holds tables, none of which the file creates or loads: it is
// very likely a backup of another database, and would replace every table
// of Target. The request can accept it deliberately (Request.AsDatabase).
type ForeignError struct {
	File   string
	Target string
	// FileTables are the tables the file creates or loads (schema.name),
	// TargetTables those of the target, both without the migration
	// bookkeeping table.
	FileTables, TargetTables []string
}

func (e *ForeignError) Error() string {
	has := "creates and loads no table"
	if len(e.FileTables) > 0 {
		has = "creates or loads " + fewNames(e.FileTables)
	}
	return fmt.Sprintf("%s looks like a backup of another database: it has no manifest to say which, and it %s, none of %s's tables (%s holds %s). "+
		"Restoring it would replace all of them; nothing was changed",
		e.File, has, e.Target, e.Target, fewNames(e.TargetTables))
}

// Kind is Invalid: the restore is refused before anything is changed.
func (e *ForeignError) Kind() fault.Kind { return fault.Invalid }

// SchemaError refuses a data-only restore onto a target whose schema
// cannot take the data: it lacks tables or columns the file loads, has a
// column of another type than the backup's, has a column the backup lacks
// that a loaded row cannot leave empty, or its migration version is older
// than the backup's. The schema is to be restored first: by migrating,
// from SchemaBackup, or as the backup's own schema has it.
type SchemaError struct {
	Database string
	File     string
	// Missing lists what the target lacks, in the file's order: "table
	// schema.name", "column schema.name.column".
	Missing []string
	// Changed lists the columns whose type differs from the backup's:
	// "column schema.name.column is text here, integer in the backup".
	Changed []string
	// Extra lists the target's columns the backup lacks that are NOT NULL
	// without a default: "column schema.name.column".
	Extra []string
	// Older says the target's migration version (Version) is older than
	// the backup's (BackupVersion).
	Older                  bool
	Version, BackupVersion int64
	// SchemaBackup is the newest intact schema backup of Database at the
	// backup's migration version in the backup folder, "" when there is
	// none.
	SchemaBackup string
	// CarriesSchema says the backup's manifest holds the schema it was
	// taken from (manifest.Schema): how it creates each table.
	CarriesSchema bool
}

func (e *SchemaError) Error() string {
	var says []string
	if len(e.Missing) > 0 {
		says = append(says, "it lacks "+strings.Join(e.Missing, ", "))
	}
	for _, c := range e.Changed {
		says = append(says, "its "+c)
	}
	if len(e.Extra) > 0 {
		says = append(says, "it has "+strings.Join(e.Extra, ", ")+", which the backup lacks and its rows cannot leave empty (NOT NULL without a default)")
	}
	if e.Older {
		says = append(says, fmt.Sprintf("its migration version is %d; the backup was taken at %d", e.Version, e.BackupVersion))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s cannot take the data of %s:", e.Database, e.File)
	for i, s := range says {
		if i > 0 {
			s = "I" + s[1:] // each starts with "it" or "its"
		}
		b.WriteString(" " + s + ".")
	}
	b.WriteString(" Restore the schema first; nothing was changed")
	return b.String()
}

// Kind is Invalid: the restore is refused before anything is changed.
func (e *SchemaError) Kind() fault.Kind { return fault.Invalid }

// DifferenceError says the restored content differs from the manifest
// (fault.Differs). The target was left as it was.
type DifferenceError struct {
	Database    string
	Differences []string
}

func (e *DifferenceError) Error() string {
	return fmt.Sprintf("restore of %s did not reproduce the backup, so the database was left as it was:\n  %s", e.Database, strings.Join(e.Differences, "\n  "))
}

// Kind is Differs: what was restored does not match the manifest.
func (e *DifferenceError) Kind() fault.Kind { return fault.Differs }

// ExtensionError refuses a restore into a server that lacks extensions the
// backup needs (its manifest's extensions, checked against the server's
// pg_available_extensions), before anything changed: the load would fail
// at the first CREATE EXTENSION. The target is to run an image that has
// them.
type ExtensionError struct {
	Database string
	File     string
	// Image is the target's image (as the compose file names it).
	Image string
	// Missing are the extensions the server lacks, in the manifest's order.
	Missing []string
	// Images names, per missing extension, an image that has it, where
	// one is known (pgimage.ImageWith).
	Images map[string]string
	// BackupImage is the image the backup was taken on.
	BackupImage string
}

func (e *ExtensionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s needs the extension %s, which %s's server (image %s) does not have", e.File, strings.Join(e.Missing, ", "), e.Database, e.Image)
	for _, x := range e.Missing {
		if img := e.Images[x]; img != "" {
			fmt.Fprintf(&b, "; %s has %s", img, x)
		}
	}
	if e.BackupImage != "" {
		fmt.Fprintf(&b, " (the backup was taken on %s)", e.BackupImage)
	}
	b.WriteString("; nothing was changed")
	return b.String()
}

// Kind is Invalid: the restore is refused before anything is changed.
func (e *ExtensionError) Kind() fault.Kind { return fault.Invalid }

// NewerMajorError refuses a backup taken from a newer PostgreSQL major
// than the target's server runs, before anything changed: pg_dump's files
// load into the same or a newer major only (a 17 dump sets
// transaction_timeout, which 15 does not know, and may use what 15 lacks).
type NewerMajorError struct {
	Database, File     string
	Backup, Server     int
	Image, BackupImage string
}

func (e *NewerMajorError) Error() string {
	from := ""
	if e.BackupImage != "" {
		from = " (" + e.BackupImage + ")"
	}
	return fmt.Sprintf("%s was taken from PostgreSQL %d%s and %s's server runs PostgreSQL %d (image %s): a backup loads into the same or a newer major only; restore it where PostgreSQL %d or newer runs (aidb upgrade %s --image IMAGE moves %s to a newer major first); nothing was changed",
		e.File, e.Backup, from, e.Database, e.Server, e.Image, e.Backup, e.Database, e.Database)
}

// Kind is Invalid: the restore is refused before anything is changed.
func (e *NewerMajorError) Kind() fault.Kind { return fault.Invalid }
