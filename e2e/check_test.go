package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/verify"
	"github.com/aidb/aidb/internal/store/catalog"
	"github.com/aidb/aidb/internal/store/freshness"
)

// TestCheckSaysWhenBackupsAreStaleOrUnverified: aidb check exits 4 for a
// database without a recent full backup, and, with --verified, without a
// recent one that a verification (aidb verify, or a backup's own) found
// equal; the last verification of each file shows in check and list, and
// a difference found later outweighs an earlier equal verification.
func TestCheckSaysWhenBackupsAreStaleOrUnverified(t *testing.T) {
	t.Parallel()
	p := newProject(t, "check")
	dir := p.backupDir()

	type report struct {
		Fresh     bool               `json:"fresh"`
		Databases []freshness.Status `json:"databases"`
	}
	check := func(want int, args ...string) (report, result) {
		t.Helper()
		r := p.aidb(append([]string{"check", "--json"}, args...)...)
		require.Equal(t, want, r.code, "check %v: %s", args, r.stderr)
		var rep report
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
		return rep, r
	}

	// Bad input: no max age.
	r := p.aidb("check")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--max-age")

	// No backups at all: both databases named, exit 4.
	rep, r := check(4, "--max-age", "1h")
	assert.False(t, rep.Fresh)
	require.Len(t, rep.Databases, 2)
	assert.Contains(t, r.stderr, "rulesdb: no intact full backup")
	assert.Contains(t, r.stderr, "memorydb: no intact full backup")

	p.seeded("20")
	file := p.backupJSON("rulesdb").Files[0].Path

	rep, _ = check(0, "rulesdb", "--max-age", "1h")
	require.Len(t, rep.Databases, 1)
	assert.Equal(t, file, rep.Databases[0].Newest)
	assert.Nil(t, rep.Databases[0].LastVerified, "not verified yet")
	_, r = check(4, "rulesdb", "--max-age", "1h", "--verified")
	assert.Contains(t, r.stderr, "no backup was verified equal to its manifest")
	_, r = check(4, "--max-age", "1h")
	assert.Contains(t, r.stderr, "memorydb: no intact full backup")
	assert.NotContains(t, r.stderr, "rulesdb:", "rulesdb has a fresh backup")
	_, r = check(4, "rulesdb", "--max-age", "1ms")
	assert.Regexp(t, regexp.MustCompile(`the newest backup is \S+ old \(max 0s\)`), r.stderr)

	// aidb verify records the verification.
	v := p.aidb("verify", file)
	require.Equal(t, 0, v.code, v.stderr)
	rep, _ = check(0, "rulesdb", "--max-age", "1h", "--verified")
	require.NotNil(t, rep.Databases[0].LastVerified)
	assert.Equal(t, "equal", string(rep.Databases[0].LastVerified.Outcome))
	assert.NotEmpty(t, rep.Databases[0].LastVerified.Image)
	assert.Equal(t, file, rep.Databases[0].NewestVerified)

	// So does a backup's own verification.
	bv := p.aidb("backup", "memorydb", "--verify", "--json")
	require.Equal(t, 0, bv.code, bv.stderr)
	var verified struct {
		Results []verify.Result `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(bv.stdout), &verified), bv.stdout)
	require.Len(t, verified.Results, 1)
	mem := verified.Results[0].File
	rep, _ = check(0, "--max-age", "1h", "--verified")
	assert.True(t, rep.Fresh)
	assert.Equal(t, mem, rep.Databases[0].NewestVerified, "databases in name order: memorydb first")

	// A manifest edited since: the verification now differs (exit 3), and
	// that outweighs the earlier equal one for these same bytes.
	manifestPath := file + ".manifest.json"
	var m map[string]any
	b, err := os.ReadFile(manifestPath)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &m))
	tables := m["tables"].([]any)
	require.NotEmpty(t, tables)
	for _, tb := range tables {
		if tb.(map[string]any)["hash"] != nil {
			tb.(map[string]any)["hash"] = "12345"
			break
		}
	}
	b, err = json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(manifestPath, b, 0o600))
	v = p.aidb("verify", file)
	require.Equal(t, 3, v.code, v.stderr)
	_, r = check(4, "rulesdb", "--max-age", "1h", "--verified")
	assert.Contains(t, r.stderr, "no backup was verified equal to its manifest")

	l := p.aidb("list", "--json")
	require.Equal(t, 0, l.code, l.stderr)
	var listed struct {
		Backups []catalog.Listed `json:"backups"`
	}
	require.NoError(t, json.Unmarshal([]byte(l.stdout), &listed), l.stdout)
	found := false
	for _, it := range listed.Backups {
		if it.File == file {
			found = true
			require.NotNil(t, it.Verification, "list shows the last verification")
			assert.Equal(t, "differs", string(it.Verification.Outcome))
		}
	}
	assert.True(t, found, "%s listed", file)
	_, err = os.Stat(filepath.Join(dir, ".aidb.verified.jsonl"))
	assert.NoError(t, err, "the log is in the backup folder")
}
