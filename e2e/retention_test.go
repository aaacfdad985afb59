package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
)

// listedJSON is one backup as list --json and prune --json name it: one
// naming for both (snake_case), prune adding the reason for its decision.
type listedJSON struct {
	File       string `json:"file"`
	Database   string `json:"database"`
	Kind       string `json:"kind"`
	Created    string `json:"created"`
	Manifest   bool   `json:"manifest"`
	ChecksumOK bool   `json:"checksum_ok"`
	Latest     bool   `json:"latest"`
	Safety     *struct {
		Reason  string `json:"reason"`
		Command string `json:"command"`
	} `json:"safety"`
	Reason string `json:"reason"`
}

type pruneJSON struct {
	Keep    []listedJSON `json:"keep"`
	Remove  []listedJSON `json:"remove"`
	Removed bool         `json:"removed"`
}

// list runs aidb list --json and returns the backups by file.
func (p *project) list() map[string]listedJSON {
	p.t.Helper()
	r := p.aidb("list", "--json")
	require.Equal(p.t, 0, r.code, r.stderr)
	var doc struct {
		Backups []listedJSON `json:"backups"`
	}
	require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	out := map[string]listedJSON{}
	for _, b := range doc.Backups {
		out[b.File] = b
	}
	return out
}

// prune runs aidb prune --json with args and returns its plan.
func (p *project) prune(args ...string) pruneJSON {
	p.t.Helper()
	r := p.aidb(append([]string{"prune", "--json"}, args...)...)
	require.Equal(p.t, 0, r.code, r.stderr)
	var plan pruneJSON
	require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &plan), r.stdout)
	return plan
}

func fileNames(items []listedJSON) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.File)
	}
	return out
}

func reasonOf(items []listedJSON, file string) string {
	for _, it := range items {
		if it.File == file {
			return it.Reason
		}
	}
	return ""
}

// latestTarget is the file <db>-latest.sql points at ("" when none).
func latestTarget(t *testing.T, dir, db string) string {
	t.Helper()
	target, err := filepath.EvalSymlinks(filepath.Join(dir, db+"-latest.sql"))
	if os.IsNotExist(err) {
		return ""
	}
	require.NoError(t, err)
	return target
}

// rulesdbOnly brings rulesdb alone up, migrated and seeded: enough for
// retention, and quicker than both databases.
func (p *project) rulesdbOnly(rows string) {
	p.t.Helper()
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}, {"seed", "--rows", rows, "rulesdb"}} {
		r := p.aidb(args...)
		require.Equal(p.t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
}

// The case: the newest backup truncated, and a file without a
// manifest whose name says 2099. prune ranks by the manifests' created
// times, counts neither toward --keep-last, leaves both alone, and keeps
// the newest intact backup.
func TestPruneKeepsNewestIntactLeavesDamagedAndForeign(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rtdamaged")
	dir := p.backupDir()
	p.rulesdbOnly("20")
	var b []string
	for range 3 {
		b = append(b, p.backupJSON("rulesdb").Files[0].Path)
	}
	require.Equal(t, b[2], latestTarget(t, dir, "rulesdb"))

	// The newest is cut short; a plain file named for 2099 has no manifest.
	require.NoError(t, os.Truncate(b[2], fileSize(t, b[2])/2))
	foreign := filepath.Join(dir, "rulesdb-20991231-235959.sql")
	plain, err := os.ReadFile(b[0])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(foreign, plain, 0o600))

	// The plan names every file, with why, in list's field names.
	plan := p.prune("--keep-last", "1")
	assert.ElementsMatch(t, []string{b[1], b[2], foreign}, fileNames(plan.Keep), "the newest intact one stays; damaged and foreign are left alone")
	assert.ElementsMatch(t, []string{b[0]}, fileNames(plan.Remove))
	assert.False(t, plan.Removed)
	for _, it := range append(plan.Keep, plan.Remove...) {
		assert.NotEmpty(t, it.Reason, it.File)
		assert.Equal(t, "rulesdb", it.Database, it.File)
		assert.Equal(t, "full", it.Kind, it.File)
		assert.NotEmpty(t, it.Created, it.File)
	}
	assert.Contains(t, reasonOf(plan.Keep, b[2]), "damaged")
	assert.Contains(t, reasonOf(plan.Keep, foreign), "no manifest")
	assert.Contains(t, reasonOf(plan.Keep, b[1]), "newest")

	plan = p.prune("--keep-last", "1", "--yes")
	assert.True(t, plan.Removed)
	assert.NoFileExists(t, b[0])
	assert.NoFileExists(t, manifest.PathFor(b[0]))
	for _, f := range []string{b[1], manifest.PathFor(b[1]), b[2], manifest.PathFor(b[2]), foreign} {
		assert.FileExists(t, f)
	}
	m := readManifest(t, b[1])
	require.NoError(t, manifest.Check(b[1], m), "the kept backup is whole")

	// Damaged and foreign files go only when asked; the latest pointer,
	// which named the damaged file, then names the newest intact one.
	plan = p.prune("--keep-last", "1", "--remove-damaged", "--remove-foreign", "--yes")
	assert.ElementsMatch(t, []string{b[2], foreign}, fileNames(plan.Remove))
	assert.NoFileExists(t, b[2])
	assert.NoFileExists(t, foreign)
	assert.FileExists(t, b[1])
	assert.Equal(t, b[1], latestTarget(t, dir, "rulesdb"))

	// The last intact full backup stays, whatever the flags.
	plan = p.prune("--keep-last", "1", "--remove-damaged", "--remove-foreign", "--keep-safety-within", "0s", "--yes")
	assert.Empty(t, plan.Remove)
	assert.FileExists(t, b[1])
}

// The case: a restore's safety backup of the damaged state became
// rulesdb-latest.sql, and prune then removed the backup just restored.
func TestRestoreSafetyBackupIsMarkedAndNotTheUsersBackup(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rtsafety")
	dir := p.backupDir()
	p.rulesdbOnly("20")
	good := p.backupJSON("rulesdb").Files[0].Path

	// The data goes bad; the user restores the good backup.
	_, err := connect(t, p.status()["rulesdb"].URL).Exec(t.Context(), "DELETE FROM rules")
	require.NoError(t, err)
	r := p.aidb("restore", "--yes", "rulesdb", good)
	require.Equal(t, 0, r.code, r.stderr)

	assert.Equal(t, good, latestTarget(t, dir, "rulesdb"), "a safety backup never moves the latest pointer")
	var safety string
	for f, b := range p.list() {
		if f == good {
			assert.Nil(t, b.Safety, "the user's backup is no safety backup")
			assert.True(t, b.Latest)
			continue
		}
		require.NotNil(t, b.Safety, "list marks %s as a safety backup", f)
		assert.Equal(t, "aidb restore", b.Safety.Command)
		assert.Contains(t, b.Safety.Reason, filepath.Base(good), "says why: what replaced the data")
		assert.True(t, b.ChecksumOK)
		safety = f
	}
	require.NotEmpty(t, safety, "the restore took a safety backup")
	raw, err := os.ReadFile(manifest.PathFor(safety))
	require.NoError(t, err)
	var marked struct {
		Safety *struct {
			Command string `json:"command"`
		} `json:"safety"`
	}
	require.NoError(t, json.Unmarshal(raw, &marked))
	require.NotNil(t, marked.Safety, "the manifest marks it")
	assert.Equal(t, "aidb restore", marked.Safety.Command)

	r = p.aidb("list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "safety")

	// It does not count toward --keep-last, and has a rule of its own.
	plan := p.prune("--keep-last", "1", "--yes")
	assert.Empty(t, plan.Remove)
	assert.FileExists(t, good)
	assert.FileExists(t, safety)
	assert.Contains(t, reasonOf(plan.Keep, safety), "safety")
	plan = p.prune("--keep-last", "1", "--keep-safety-within", "0s", "--yes")
	assert.Equal(t, []string{safety}, fileNames(plan.Remove))
	assert.NoFileExists(t, safety)
	assert.FileExists(t, good)
	assert.Equal(t, good, latestTarget(t, dir, "rulesdb"))

	// A bad setting is refused before anything changes.
	r = p.aidb("prune", "--keep-last", "1", "--keep-safety-within", "-1h", "--yes")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.FileExists(t, good)
}

// A set manifest never names a file that is gone: prune removes it with
// its last file, or keeps the set whole.
func TestPruneNeverLeavesASetNamingAGoneFile(t *testing.T) {
	t.Parallel()
	p := newProject(t, "rtsets")
	dir := p.backupDir()
	p.seeded("10")
	first := p.backupJSON()
	second := p.backupJSON()
	require.NotEmpty(t, first.Set)
	require.NotEmpty(t, second.Set)
	third := p.backupJSON("rulesdb").Files[0].Path

	plan := p.prune("--keep-last", "1", "--yes")
	assert.True(t, plan.Removed)
	for _, f := range first.Files {
		assert.NoFileExists(t, f.Path)
	}
	assert.NoFileExists(t, first.Set, "the set's manifest goes with its last file")
	assert.FileExists(t, third)
	assert.FileExists(t, second.Set)
	for _, f := range second.Files {
		assert.FileExists(t, f.Path, "the newest memorydb backup keeps its set whole")
	}

	// Every set manifest left names files that are there.
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), "set") || !strings.HasSuffix(de.Name(), manifest.Suffix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		require.NoError(t, err)
		var set manifest.Set
		require.NoError(t, json.Unmarshal(b, &set))
		for _, f := range set.Files {
			assert.FileExists(t, filepath.Join(dir, f.File), "%s names it", de.Name())
		}
	}
}
