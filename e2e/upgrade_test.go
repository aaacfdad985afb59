package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withAllGrants adds to withRoles what PostgreSQL 17 describes otherwise
// than 15 for the same schema: ALL on a table and ALL by default
// privileges (17's ALL holds MAINTAIN), beside the owners' default ACLs.
const withAllGrants = `
GRANT ALL ON notes TO app_group;
ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO app_writer;
CREATE TABLE later (id bigserial PRIMARY KEY, v text);
INSERT INTO later (v) VALUES ('a'), ('b'), ('c');
`

// rulesOn15 brings the project's rulesdb up on postgres:15, migrated and
// seeded, with the application's roles, grants and policies, and returns
// its URL.
func (p *project) rulesOn15(rows string) string {
	p.t.Helper()
	for _, args := range [][]string{{"up", "rulesdb"}, {"migrate", "rulesdb"}, {"seed", "--rows", rows, "rulesdb"}} {
		r := p.aidb(args...)
		require.Equal(p.t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
	url := p.status()["rulesdb"].URL
	_, err := connect(p.t, url).Exec(p.t.Context(), withRoles+withAllGrants)
	require.NoError(p.t, err)
	var v string
	require.NoError(p.t, connect(p.t, url).QueryRow(p.t.Context(), "SHOW server_version_num").Scan(&v))
	require.True(p.t, strings.HasPrefix(v, "15"), v)
	return url
}

// An upgrade rehearsal: a backup of PostgreSQL 15 restores into a
// throwaway of postgres:17 and compares equal (schema with owners,
// privileges and policies, rows, sequences); a backup whose content was
// changed (checksum recomputed) exits 3 there too, naming the table.
func TestVerifyOnAnotherMajor(t *testing.T) {
	t.Parallel()
	p := newProject(t, "vfimage")
	p.backupDir()
	p.rulesOn15("30")
	f := p.backupJSON("rulesdb").Files[0].Path
	assert.True(t, strings.HasPrefix(readManifest(t, f).ServerVersion, "15."))

	code, results, stderr := p.verifyJSON("--image", "postgres:17", f)
	require.Equal(t, 0, code, stderr)
	require.Len(t, results, 1)
	assert.True(t, results[0].OK, "%v %s", results[0].Differences, results[0].Error)
	assert.Equal(t, "postgres:17", results[0].Image)
	assert.Positive(t, results[0].Rows)

	raw := readAllPlain(t, f)
	i := strings.Index(raw, "COPY public.rules ")
	require.Positive(t, i)
	j := i + strings.Index(raw[i:], "\trule-2\t")
	require.Greater(t, j, i)
	tampered := filepath.Join(filepath.Dir(f), strings.Replace(filepath.Base(f), "rulesdb", "rulesdb-tampered", 1))
	writeWithManifest(t, f, tampered, []byte(raw[:j]+"\trule-X\t"+raw[j+len("\trule-2\t"):]))
	code, results, stderr = p.verifyJSON("--image", "postgres:17", tampered)
	assert.Equal(t, 3, code, stderr)
	require.Len(t, results, 1)
	assert.Contains(t, strings.Join(results[0].Differences, "\n"), "public.rules", "the table is named")
	require.NoError(t, os.Remove(tampered))
	require.NoError(t, os.Remove(tampered+".manifest.json"))

	r := p.aidb("verify", "--image", "mysql", f)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--image")
	assert.Zero(t, throwaways(t, p))
}
