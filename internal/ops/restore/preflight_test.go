package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/pgtools"
)

// errNotReady is what notReady answers: a preflight that returns it got
// past the checks of the file and its manifest.
var errNotReady = errors.New("rulesdb is not up")

// notReady is an engine whose database is not up: Preflight's checks that
// need no server run, and nothing else.
type notReady struct{}

func (notReady) RequireReady(context.Context, compose.Database) error { return errNotReady }
func (notReady) ConnString(compose.Database) string                   { return "" }
func (notReady) Psql(context.Context, compose.Database, string, pgtools.Transport, string, io.Reader) error {
	return errors.New("psql must not run in a preflight")
}

// A backup whose manifest says it is of another database, of the wrong
// kind, or whose bytes are not the manifest's is refused with a typed
// error that names the file and the databases, and no command.
func TestPreflightRefusesByTheManifest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	withManifest := func(name, db string, kind backupfile.Kind, body string) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		sum := sha256.Sum256([]byte(body))
		require.NoError(t, manifest.Write(path, manifest.Manifest{Format: manifest.Format, Database: db, Kind: kind,
			File: name, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}))
		return path
	}
	rules := compose.Database{Name: "rulesdb"}
	mem := withManifest("memorydb-20250101-000000.sql", "memorydb", backupfile.Full, sampleDump)
	data := withManifest("rulesdb-data-20250101-000000.sql", "rulesdb", backupfile.Data, sampleDump)
	full := withManifest("rulesdb-20250101-000000.sql", "rulesdb", backupfile.Full, sampleDump)
	changed := withManifest("rulesdb-20250102-000000.sql", "rulesdb", backupfile.Full, sampleDump)
	require.NoError(t, os.WriteFile(changed, []byte(sampleDump+"-- changed\n"), 0o600))

	for _, tc := range []struct {
		name string
		req  Request
		want error // a typed error (compared whole), or errNotReady: accepted
	}{
		{"another database's backup", Request{DB: rules, File: mem},
			&WrongDatabaseError{File: mem, Backup: "memorydb", Target: "rulesdb"}},
		{"another database's backup, named as meant", Request{DB: rules, File: mem, AsDatabase: "memorydb"}, errNotReady},
		{"a data-only backup for a full restore", Request{DB: rules, File: data},
			&KindError{File: data, Backup: backupfile.Data}},
		{"a full backup for a data-only restore", Request{DB: rules, File: full, DataOnly: true},
			&KindError{File: full, Backup: backupfile.Full, DataOnly: true}},
		{"a full backup for a full restore", Request{DB: rules, File: full}, errNotReady},
	} {
		_, err := Preflight(t.Context(), notReady{}, tc.req)
		if errors.Is(tc.want, errNotReady) {
			assert.ErrorIs(t, err, errNotReady, tc.name)
			continue
		}
		assert.Equal(t, tc.want, err, tc.name)
		assert.Equal(t, fault.Invalid, fault.KindOf(err), tc.name)
		assertNoCLI(t, err, tc.name)
	}

	assert.Equal(t, mem+" is a backup of memorydb, not of rulesdb", (&WrongDatabaseError{File: mem, Backup: "memorydb", Target: "rulesdb"}).Error())
	assert.Equal(t, full+" is a full backup, not a data-only one", (&KindError{File: full, Backup: backupfile.Full, DataOnly: true}).Error())
	assert.Equal(t, data+" is a data-only backup, not a full or schema one", (&KindError{File: data, Backup: backupfile.Data}).Error())

	// Bytes that are not the manifest's: another, whole backup is the way on.
	_, err := Preflight(t.Context(), notReady{}, Request{DB: rules, File: changed})
	var fe *FileError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, RestoreAnother, fe.Next)
	assert.Equal(t, changed, fe.File)
	var mm *manifest.MismatchError
	assert.ErrorAs(t, err, &mm, "the manifest's own error is kept")
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assertNoCLI(t, err, "changed")
}

func TestForeignErrorNamesBothSetsOfTables(t *testing.T) {
	t.Parallel()
	err := &ForeignError{File: "mem.sql", Target: "rulesdb", FileTables: []string{"public.memories"}, TargetTables: []string{"public.projects", "public.rules"}}
	assert.Equal(t, "mem.sql looks like a backup of another database: it has no manifest to say which, and it creates or loads public.memories, "+
		"none of rulesdb's tables (rulesdb holds public.projects, public.rules). Restoring it would replace all of them; nothing was changed", err.Error())
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	err.FileTables = nil
	assert.Contains(t, err.Error(), "and it creates and loads no table, none of rulesdb's tables")
	assertNoCLI(t, err, "foreign")
}

func TestDifferenceErrorIsADifference(t *testing.T) {
	t.Parallel()
	err := differs("rulesdb", []string{"public.rules: 1 rows (the backup has 2)"})
	assert.Equal(t, fault.Differs, fault.KindOf(err))
	var de *DifferenceError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, "restore of rulesdb did not reproduce the backup, so the database was left as it was:\n  public.rules: 1 rows (the backup has 2)", err.Error())
}

// A backup whose extensions the server lacks is refused, naming an image
// that has them where aidb knows one.
func TestMissingExtensions(t *testing.T) {
	t.Parallel()
	m := manifest.Manifest{Image: "aidb.local/pgvector:pg17", Extensions: []fingerprint.Extension{{Name: "pg_trgm"}, {Name: "plpgsql"}, {Name: "vector"}, {Name: "postgis"}}}
	db := compose.Database{Name: "memorydb", Image: "postgres:15"}
	assert.NoError(t, missingExtensions(m, []string{"plpgsql", "pg_trgm", "vector", "postgis"}, db, "f.sql"))
	err := missingExtensions(m, []string{"plpgsql", "pg_trgm"}, db, "f.sql")
	var ee *ExtensionError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, []string{"vector", "postgis"}, ee.Missing)
	assert.Equal(t, map[string]string{"vector": "pgvector/pgvector:pg17"}, ee.Images)
	assert.Equal(t, fault.Invalid, fault.KindOf(err))
	assert.Equal(t, "f.sql needs the extension vector, postgis, which memorydb's server (image postgres:15) does not have; pgvector/pgvector:pg17 has vector (the backup was taken on aidb.local/pgvector:pg17); nothing was changed", err.Error())
}
