package e2e

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
)

// listAll runs aidb list --json and returns its backups by file (path or
// URL) with their locations.
func (p *project) listAll() map[string]listedLoc {
	p.t.Helper()
	r := p.aidb("list", "--json")
	require.Equal(p.t, 0, r.code, r.stderr)
	var doc struct {
		Repository string      `json:"repository"`
		Backups    []listedLoc `json:"backups"`
	}
	require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	out := map[string]listedLoc{}
	for _, b := range doc.Backups {
		out[b.File] = b
	}
	return out
}

type listedLoc struct {
	listedJSON
	Location string `json:"location"`
}

// Wrong credentials, a missing bucket and an endpoint that does not answer
// are refused with clear errors, within seconds, and nothing is written:
// exit 2 for the first two (bad input), 1 for the last.
func TestRepositoryRefusals(t *testing.T) {
	t.Parallel()
	s3 := newS3Server(t)
	s3.bucket("aidb-refusals")
	p := newProject(t, "s3refuse")
	dir := p.backupDir()
	name := syntheticBackup(t, dir, "rulesdb", time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), []byte("-- rulesdb\n"))
	p.useRepository(s3.endpoint(), "s3://aidb-refusals/team")

	wrong := append(slices.Clone(p.env), "AWS_SECRET_ACCESS_KEY=not-the-secret")
	missing := append(slices.Clone(p.env), "AIDB_REPOSITORY=s3://no-such-bucket/team")
	dead := append(slices.Clone(p.env), "AWS_ENDPOINT_URL_S3=http://127.0.0.1:"+strconv.Itoa(freePort(t)))
	for _, tc := range []struct {
		name string
		env  []string
		code int
		want string
	}{
		{"wrong credentials", wrong, 2, "refused the credentials"},
		{"missing bucket", missing, 2, `the bucket "no-such-bucket" does not exist`},
		{"endpoint that does not answer", dead, 1, "cannot reach http://127.0.0.1:"},
	} {
		p.env = tc.env
		for _, args := range [][]string{{"push"}, {"list"}, {"prune", "--keep-last", "1", "--yes"}, {"pull", "s3://aidb-refusals/team/" + name}} {
			if tc.name == "missing bucket" && args[0] == "pull" {
				args = []string{"pull", "s3://no-such-bucket/team/" + name}
			}
			start := time.Now()
			r := p.aidb(args...)
			assert.Equal(t, tc.code, r.code, "%s: %v: %s", tc.name, args, r.stderr)
			assert.Contains(t, r.stderr, tc.want, "%s: %v", tc.name, args)
			assert.Less(t, time.Since(start), 20*time.Second, "%s: %v: an error within seconds", tc.name, args)
		}
	}
	assert.Empty(t, s3.keys("aidb-refusals"), "nothing was written")
	assert.FileExists(t, filepath.Join(dir, name), "the folder is as it was")
	assert.FileExists(t, filepath.Join(dir, name+manifest.Suffix))
}

// The S3 server killed mid-push: nothing is listed as whole in the
// repository; once it is back, a second push completes the backup, which
// pulls back checked.
func TestRepositoryInterruptedPush(t *testing.T) {
	t.Parallel()
	s3 := newS3Server(t)
	s3.bucket("aidb-cut")
	p := newProject(t, "s3cut")
	dir := p.backupDir()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	small := syntheticBackup(t, dir, "memorydb", t0, []byte("-- memorydb\n"))
	body := make([]byte, 40<<20) // five parts
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	big := syntheticBackup(t, dir, "rulesdb", t0, body)
	proxy := newCutProxy(t, s3.addr(), 12<<20) // part 1 and some of part 2
	p.useRepository(proxy.endpoint(), "s3://aidb-cut/team")

	push := p.command(t.Context(), "push")
	var stderr safeBuffer
	push.Stderr = &stderr
	require.NoError(t, push.Start())
	require.NoError(t, proxy.waitReached(t.Context(), 2*time.Minute), stderr.String())
	s3.kill()
	err := push.Wait()
	require.Error(t, err, "the push failed: %s", stderr.String())
	assert.Equal(t, 1, push.ProcessState.ExitCode(), stderr.String())
	assert.Contains(t, stderr.String(), "cannot reach")

	s3.start()
	listed := p.listAll()
	bigURL := "s3://aidb-cut/team/" + big
	if b, ok := listed[bigURL]; ok {
		assert.False(t, b.ChecksumOK, "an upload cut short is never listed as whole")
	}
	assert.NotContains(t, s3.keys("aidb-cut"), "team/"+big+manifest.Suffix, "no manifest object for a data object that is not whole")

	r := p.aidb("push")
	require.Equal(t, 0, r.code, r.stderr)
	listed = p.listAll()
	require.Contains(t, listed, bigURL)
	assert.True(t, listed[bigURL].ChecksumOK)
	assert.Equal(t, "repository", listed[bigURL].Location)
	assert.True(t, listed["s3://aidb-cut/team/"+small].ChecksumOK)
	r = p.aidb("push")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "nothing to upload")

	require.NoError(t, os.RemoveAll(dir))
	r = p.aidb("pull", bigURL)
	require.Equal(t, 0, r.code, r.stderr)
	got, err := os.ReadFile(filepath.Join(dir, big))
	require.NoError(t, err)
	assert.Equal(t, body, got)
}

// restic's keep set on synthetic dated backups, in the folder and in the
// repository: from aidb.yaml's rules (no flags) and from the flags.
func TestRepositoryCalendarRetention(t *testing.T) {
	t.Parallel()
	s3 := newS3Server(t)
	s3.bucket("aidb-calendar")
	p := newProject(t, "s3cal")
	dir := p.backupDir()
	p.useRepository(s3.endpoint(), "s3://aidb-calendar/cal")
	at := func(s string) time.Time {
		v, err := time.Parse("2006-01-02 15:04", s)
		require.NoError(t, err)
		return v
	}
	times := []string{"2016-01-18 12:02", "2016-01-12 21:08", "2016-01-12 21:02", "2016-01-09 21:02", "2016-01-08 20:02",
		"2016-01-04 16:23", "2016-01-04 12:30", "2016-01-03 07:02", "2016-01-01 07:08", "2015-11-22 10:20",
		"2015-11-13 10:20", "2015-10-22 10:20", "2014-11-22 10:20", "2014-08-08 10:20"}
	// Daily 3, weekly 4, monthly 3, yearly 3, worked out as restic's
	// ApplyPolicy does (2016-01-03, a Sunday, is in 2015-W53).
	keep := map[string]bool{"2016-01-18 12:02": true, "2016-01-12 21:08": true, "2016-01-09 21:02": true,
		"2016-01-03 07:02": true, "2015-11-22 10:20": true, "2015-10-22 10:20": true, "2014-11-22 10:20": true}
	byTime := map[string]string{}
	for _, s := range times {
		byTime[s] = syntheticBackup(t, dir, "rulesdb", at(s), []byte("-- rulesdb "+s+"\n"))
	}
	r := p.aidb("push")
	require.Equal(t, 0, r.code, r.stderr)

	cfg := filepath.Join(p.dir, "aidb.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("retention:\n  keep_daily: 3\n  keep_weekly: 4\n  keep_monthly: 3\n  keep_yearly: 3\ndatabases:\n  rulesdb: {}\n  memorydb: {}\n"), 0o600))
	p.env = append(p.env, "AIDB_CONFIG="+cfg)

	type plan struct {
		pruneJSON
		Repository *pruneJSON `json:"repository"`
	}
	check := func(doc plan, removed bool) {
		t.Helper()
		require.NotNil(t, doc.Repository)
		for loc, pl := range map[string]pruneJSON{dir + "/": doc.pruneJSON, "s3://aidb-calendar/cal/": *doc.Repository} {
			var kept []string
			for _, k := range pl.Keep {
				kept = append(kept, k.File)
			}
			var want []string
			for s := range keep {
				want = append(want, loc+byTime[s])
			}
			assert.ElementsMatch(t, want, kept, loc)
			assert.Len(t, pl.Remove, len(times)-len(keep), loc)
			assert.Equal(t, removed, pl.Removed, loc)
			assert.Contains(t, reasonOf(pl.Keep, loc+byTime["2016-01-03 07:02"]), "keep-weekly 4: the newest of week 2015-W53", loc)
			assert.Contains(t, reasonOf(pl.Keep, loc+byTime["2014-11-22 10:20"]), "keep-yearly 3: the newest of year 2014", loc)
			assert.Contains(t, reasonOf(pl.Remove, loc+byTime["2016-01-12 21:02"]), "no rule keeps it (keep-daily 3, keep-weekly 4, keep-monthly 3, keep-yearly 3)", loc)
		}
	}
	// aidb.yaml's rules: no flag needed; the plan only.
	r = p.aidb("prune", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var doc plan
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	check(doc, false)
	assert.Len(t, p.listAll(), 2*len(times), "nothing removed without --yes")

	// The same by flags, removed.
	r = p.aidb("prune", "--json", "--keep-daily", "3", "--keep-weekly", "4", "--keep-monthly", "3", "--keep-yearly", "3", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	doc = plan{}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	check(doc, true)
	listed := p.listAll()
	assert.Len(t, listed, 2*len(keep))
	for s := range keep {
		for _, f := range []string{filepath.Join(dir, byTime[s]), "s3://aidb-calendar/cal/" + byTime[s]} {
			require.Contains(t, listed, f)
			assert.True(t, listed[f].ChecksumOK, f)
		}
	}
	keys := s3.keys("aidb-calendar")
	assert.Len(t, keys, 2*len(keep), "each kept backup and its manifest, nothing else: %v", keys)
}

// The round trip: backup-all, push, push again (nothing uploaded), the
// local folder deleted, list shows the repository's backups as whole, pull
// one, verify it and restore it from the folder; the URL verifies
// straight from the repository too.
func TestRepositoryPushListPullRestore(t *testing.T) {
	t.Parallel()
	s3 := newS3Server(t)
	s3.bucket("aidb-trip")
	p := newProject(t, "s3trip")
	dir := p.backupDir()
	p.seeded("30")
	res := p.backupJSON()
	require.Len(t, res.Files, 2)
	// Set after the backup (which would upload as it writes): push has the
	// folder's backups to upload.
	p.useRepository(s3.endpoint(), "s3://aidb-trip/laptop")

	r := p.aidb("push")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "uploaded 2 backup(s) to s3://aidb-trip/laptop")
	r = p.aidb("push")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "nothing to upload", "a second push uploads nothing")
	assert.NotContains(t, r.stderr, "upload s3://")
	keys := s3.keys("aidb-trip")
	assert.Len(t, keys, 5, "two backups, their manifests and the set manifest: %v", keys)

	require.NoError(t, os.RemoveAll(dir))
	listed := p.listAll()
	require.Len(t, listed, 2)
	var rules string
	for f, b := range listed {
		assert.Equal(t, "repository", b.Location, f)
		assert.True(t, b.ChecksumOK, f)
		assert.True(t, strings.HasPrefix(f, "s3://aidb-trip/laptop/"), f)
		if b.Database == "rulesdb" {
			rules = f
		}
	}
	require.NotEmpty(t, rules)

	r = p.aidb("verify", rules)
	require.Equal(t, 0, r.code, "verified straight from the repository: %s", r.stderr)

	r = p.aidb("pull", rules)
	require.Equal(t, 0, r.code, r.stderr)
	local := filepath.Join(dir, filepath.Base(rules))
	m := readManifest(t, local)
	require.NoError(t, manifest.Check(local, m))
	r = p.aidb("pull", rules)
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "nothing downloaded")

	conn := connect(t, p.status()["rulesdb"].URL)
	_, err := conn.Exec(t.Context(), "DELETE FROM rules")
	require.NoError(t, err)
	r = p.aidb("verify", local)
	require.Equal(t, 0, r.code, r.stderr)
	r = p.aidb("restore", "rulesdb", local, "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	conn = connect(t, p.status()["rulesdb"].URL)
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM rules").Scan(&n))
	found := false
	for _, tb := range m.Tables {
		if tb.Name == "rules" && tb.Rows != nil {
			found = true
			assert.EqualValues(t, *tb.Rows, n, "the rows the backup holds are back")
		}
	}
	assert.True(t, found, "the manifest counts the rules table")
	assert.Positive(t, n)
}
