package catalog

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/fault"
	"github.com/aidb/aidb/internal/store/retention"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// write puts a backup file of db named for at into dir, with a manifest
// created at created (nil: no manifest).
func write(t *testing.T, dir, db string, at time.Time, created *time.Time, safety *manifest.Safety) string {
	t.Helper()
	path := filepath.Join(dir, backupfile.Name(db, backupfile.Full, at, backupfile.None))
	body := []byte("-- dump of " + db + " at " + at.String() + "\n")
	require.NoError(t, os.WriteFile(path, body, 0o600))
	if created != nil {
		sum := sha256.Sum256(body)
		require.NoError(t, manifest.Write(path, manifest.Manifest{
			Format: manifest.Format, Database: db, Kind: backupfile.Full, File: filepath.Base(path),
			Created: *created, Compression: backupfile.None, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), Safety: safety,
		}))
	}
	return path
}

func ptr(t time.Time) *time.Time { return &t }

func writeSet(t *testing.T, dir string, at time.Time, files ...string) string {
	t.Helper()
	s := manifest.Set{Format: manifest.Format, Created: at, Kind: backupfile.Full}
	for _, f := range files {
		s.Files = append(s.Files, manifest.SetFile{File: filepath.Base(f)})
	}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	path := filepath.Join(dir, manifest.SetName(backupfile.Full, at))
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

func TestPlanPruneAndPrune(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	c := New(Folder{Dir: dir})
	// Named in one order, created in another: the manifest decides.
	old := write(t, dir, "rulesdb", t0.Add(3*time.Hour), ptr(t0), nil)
	mid := write(t, dir, "rulesdb", t0.Add(1*time.Hour), ptr(t0.Add(1*time.Hour)), nil)
	mem := write(t, dir, "memorydb", t0.Add(1*time.Hour), ptr(t0.Add(1*time.Hour)), nil)
	set := writeSet(t, dir, t0.Add(1*time.Hour), mid, mem)
	newest := write(t, dir, "rulesdb", t0.Add(2*time.Hour), ptr(t0.Add(2*time.Hour)), nil)
	cut := write(t, dir, "rulesdb", t0.Add(4*time.Hour), ptr(t0.Add(4*time.Hour)), nil)
	require.NoError(t, os.Truncate(cut, 3))
	foreign := write(t, dir, "rulesdb", time.Date(2099, 12, 31, 23, 59, 59, 0, time.UTC), nil, nil)
	safety := write(t, dir, "rulesdb", t0.Add(5*time.Hour), ptr(t0.Add(5*time.Hour)), &manifest.Safety{Command: "aidb restore", Reason: "the data before aidb restore replaced rulesdb with x.sql"})
	require.NoError(t, c.PointLatest(ctx, "rulesdb", backupfile.None, filepath.Base(cut)))

	items, err := c.List(ctx)
	require.NoError(t, err)
	byFile := map[string]Listed{}
	for _, l := range items {
		byFile[l.File] = l
	}
	assert.Equal(t, t0, byFile[old].Created, "created comes from the manifest")
	assert.Equal(t, retention.Foreign, byFile[foreign].State())
	assert.Equal(t, retention.Damaged, byFile[cut].State())
	assert.Equal(t, retention.Intact, byFile[newest].State())
	require.NotNil(t, byFile[safety].Safety)
	assert.Equal(t, "aidb restore", byFile[safety].Safety.Command)
	assert.True(t, byFile[cut].Latest)

	_, err = c.PlanPrune(ctx, retention.Policy{KeepLast: 0}, t0)
	assert.Equal(t, fault.Invalid, fault.KindOf(err))

	now := t0.Add(6 * time.Hour)
	plan, err := c.PlanPrune(ctx, retention.Policy{KeepLast: 1, SafetyKeepWithin: time.Hour, RemoveDamaged: true}, now)
	require.NoError(t, err)
	var remove []string
	for _, r := range plan.Remove {
		remove = append(remove, r.File)
		assert.NotEmpty(t, r.Reason)
	}
	// mid stays with its set (memorydb's newest is in it); the safety backup
	// is 1h old, at the end of its window.
	assert.ElementsMatch(t, []string{old, cut, safety}, remove)
	require.Len(t, plan.Sets, 1)
	assert.False(t, plan.Sets[0].Remove)

	require.NoError(t, c.Prune(ctx, plan))
	for _, f := range []string{old, cut, safety} {
		assert.NoFileExists(t, f)
		assert.NoFileExists(t, manifest.PathFor(f))
	}
	for _, f := range []string{mid, mem, newest, foreign, set} {
		assert.FileExists(t, f)
	}
	target, err := filepath.EvalSymlinks(filepath.Join(dir, "rulesdb-latest.sql"))
	require.NoError(t, err)
	assert.Equal(t, newest, target, "the latest pointer follows to the newest intact backup, not the safety backup")

	// Once memorydb has a newer backup, the set goes whole, manifest last.
	newer := write(t, dir, "memorydb", t0.Add(7*time.Hour), ptr(t0.Add(7*time.Hour)), nil)
	plan, err = c.PlanPrune(ctx, retention.Policy{KeepLast: 1}, now)
	require.NoError(t, err)
	require.NoError(t, c.Prune(ctx, plan))
	assert.NoFileExists(t, set)
	assert.NoFileExists(t, mid)
	assert.NoFileExists(t, mem)
	for _, f := range []string{newer, newest, foreign} {
		assert.FileExists(t, f)
	}
}

// A memorydb backup copied under a rulesdb name (manifest and all) is not
// one of rulesdb's backups: it is damaged, counts toward nothing, and the
// real rulesdb backups keep their ranks.
func TestAFileNamedForAnotherDatabaseIsDamaged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	c := New(Folder{Dir: dir})
	real := write(t, dir, "rulesdb", t0, ptr(t0), nil)
	mem := write(t, dir, "memorydb", t0.Add(time.Hour), ptr(t0.Add(time.Hour)), nil)
	copied := filepath.Join(dir, backupfile.Name("rulesdb", backupfile.Full, t0.Add(2*time.Hour), backupfile.None))
	for _, suffix := range []string{"", manifest.Suffix} {
		b, err := os.ReadFile(mem + suffix)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(copied+suffix, b, 0o600))
	}

	items, err := c.List(ctx)
	require.NoError(t, err)
	for _, l := range items {
		if l.File == copied {
			assert.False(t, l.ChecksumOK)
			assert.Contains(t, l.Problem, "its manifest says it is a full backup of memorydb, but its name says full of rulesdb")
		}
	}
	plan, err := c.PlanPrune(ctx, retention.Policy{KeepLast: 1, SafetyKeepWithin: time.Hour}, t0.Add(3*time.Hour))
	require.NoError(t, err)
	for _, r := range plan.Remove {
		assert.NotEqual(t, real, r.File, "the one real rulesdb backup stays")
	}
}

// A data-only backup's schema part is part of the backup: one changed in
// its manifest makes the backup damaged, so it counts toward nothing and
// an older intact one keeps its rank.
func TestADataOnlyBackupWithAChangedSchemaPartIsDamaged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	c := New(Folder{Dir: dir})
	data := func(at time.Time, schema *manifest.Schema) string {
		path := filepath.Join(dir, backupfile.Name("rulesdb", backupfile.Data, at, backupfile.None))
		body := []byte("COPY public.scratch (id) FROM stdin;\n1\n\\.\n")
		require.NoError(t, os.WriteFile(path, body, 0o600))
		sum := sha256.Sum256(body)
		require.NoError(t, manifest.Write(path, manifest.Manifest{
			Format: manifest.Format, Database: "rulesdb", Kind: backupfile.Data, File: filepath.Base(path),
			Created: at, Compression: backupfile.None, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]), Schema: schema,
		}))
		return path
	}
	part := manifest.NewSchema([]byte("CREATE TABLE public.scratch (id integer);\n"))
	older := data(t0, part)
	changed := *part
	changed.SQL = "CREATE TABLE public.scratch (id bigint);\n"
	newer := data(t0.Add(time.Hour), &changed)

	items, err := c.List(ctx)
	require.NoError(t, err)
	require.Len(t, items, 2)
	for _, l := range items {
		switch l.File {
		case older:
			assert.True(t, l.ChecksumOK, l.Problem)
		case newer:
			assert.False(t, l.ChecksumOK)
			assert.Contains(t, l.Problem, "the schema part of")
		}
	}
	plan, err := c.PlanPrune(ctx, retention.Policy{KeepLast: 1, SafetyKeepWithin: time.Hour}, t0.Add(2*time.Hour))
	require.NoError(t, err)
	assert.Empty(t, plan.Remove, "the damaged newer one does not push the intact one out")
}

// A backup copied to a name of the user's own ("my $HOME backup.sql",
// manifest beside it) is what its manifest says: listed as rulesdb's,
// intact, ranked by its manifest's time, and pruned with its manifest
// like any other. A file of such a name without a manifest is no backup
// aidb lists.
func TestAFileOfAnyNameWithAManifestIsListedAndPrunedByIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	c := New(Folder{Dir: dir})
	older := write(t, dir, "rulesdb", t0, ptr(t0), nil)
	newest := write(t, dir, "rulesdb", t0.Add(2*time.Hour), ptr(t0.Add(2*time.Hour)), nil)
	copied := filepath.Join(dir, "my $HOME backup.sql")
	src := write(t, t.TempDir(), "rulesdb", t0.Add(time.Hour), ptr(t0.Add(time.Hour)), nil)
	body, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(copied, body, 0o600))
	mb, err := os.ReadFile(manifest.PathFor(src))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(manifest.PathFor(copied), mb, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine\n"), 0o600))

	items, err := c.List(ctx)
	require.NoError(t, err)
	var files []string
	for _, l := range items {
		files = append(files, l.File)
		if l.File == copied {
			assert.Equal(t, "rulesdb", l.Database)
			assert.Equal(t, backupfile.Full, l.Kind)
			assert.Equal(t, t0.Add(time.Hour), l.Created)
			assert.Equal(t, retention.Intact, l.State(), l.Problem)
		}
	}
	assert.Equal(t, []string{newest, copied, older}, files, "newest first by the manifests; notes.txt is no backup")

	plan, err := c.PlanPrune(ctx, retention.Policy{KeepLast: 1}, t0.Add(3*time.Hour))
	require.NoError(t, err)
	require.NoError(t, c.Prune(ctx, plan))
	assert.NoFileExists(t, copied)
	assert.NoFileExists(t, manifest.PathFor(copied))
	assert.NoFileExists(t, older)
	assert.FileExists(t, newest)
	assert.FileExists(t, filepath.Join(dir, "notes.txt"))
}
