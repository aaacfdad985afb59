package e2e

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/upgrade"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/orchestrator"
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

// rulesView is what an upgrade must keep of rulesdb: what the
// application's roles see and may do, the schema's description with owners
// and privileges (without MAINTAIN, which 17 adds to every owner and ALL
// grant: fingerprint.SchemaForm.NoMaintain), every row by name, and every
// sequence.
type rulesView struct {
	Access    access
	Rows      map[string][]string
	Sequences []fingerprint.Sequence
}

func viewOf(t *testing.T, url string) rulesView {
	t.Helper()
	v := rulesView{Access: accessOf(t, url), Rows: contentByName(t, url)}
	conn := connect(t, url)
	require.NoError(t, fingerprint.Prepare(t.Context(), conn))
	var err error
	v.Access.Schema, err = fingerprint.SchemaLines(t.Context(), conn, fingerprint.SchemaForm{Privileges: fingerprint.WithOwners, NoMaintain: true})
	require.NoError(t, err)
	v.Sequences, err = fingerprint.Sequences(t.Context(), conn)
	require.NoError(t, err)
	return v
}

func serverMajor(t *testing.T, url string) string {
	t.Helper()
	var v string
	require.NoError(t, connect(t, url).QueryRow(t.Context(), "SHOW server_version_num").Scan(&v))
	return v[:2]
}

// upgradeJSON runs aidb upgrade --json with args and returns its result.
func (p *project) upgradeJSON(args ...string) upgrade.Result {
	p.t.Helper()
	r := p.aidb(append([]string{"upgrade", "--json"}, args...)...)
	require.Equal(p.t, 0, r.code, r.stderr)
	var res upgrade.Result
	require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	return res
}

// rulesdb moves from 15 to 17 with its rows, sequences, schema, owners,
// grants, default privileges and policies equal; up leaves it on 17 while
// the compose file still names postgres:15, and status says what to
// change; a rollback saves what was written on 17, and brings back 15 as
// it was; --finish removes the old container and volume and nothing else.
func TestUpgradeRollbackAndFinish(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upgrade")
	dir := p.backupDir()
	url := p.rulesOn15("40")
	before := viewOf(t, url)
	labelled := p.labelled(t.Context())
	volume := p.name + "_rulesdb-data"

	// An image that cannot be had is refused before the backup: no file
	// is written, no pointer moved, no volume made (issue 32).
	filesBefore := dirNames(t, dir)
	r := p.aidb("upgrade", "rulesdb", "--image", "postgres:99")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "nothing was backed up or changed")
	assert.Equal(t, filesBefore, dirNames(t, dir), "the backup folder as it was")
	assert.Equal(t, labelled, p.labelled(t.Context()), "no volume or container made")

	res := p.upgradeJSON("rulesdb", "--image", "postgres:17")
	assert.Equal(t, "15", res.From)
	assert.Equal(t, "17", res.To)
	assert.Equal(t, volume+"-pg17", res.Volume)
	assert.Equal(t, volume, res.PreviousVolume)
	assert.Equal(t, p.name+"-rulesdb-aidb-pre-upgrade", res.Previous)
	assert.Contains(t, res.ComposeChange, "image: postgres:17")
	assert.FileExists(t, res.Backup)
	assert.Equal(t, dir, filepath.Dir(res.Backup))

	st := p.status()["rulesdb"]
	assert.Equal(t, "17", serverMajor(t, st.URL))
	assert.Equal(t, before, viewOf(t, st.URL), "rows, sequences, schema and privileges equal on 17")
	require.NotNil(t, st.Upgrade)
	assert.Equal(t, orchestrator.UpgradeStatus{Image: "postgres:17", ComposeImage: "postgres:15", ComposeBehind: true, Volume: volume + "-pg17",
		Previous: p.name + "-rulesdb-aidb-pre-upgrade", PreviousVolume: volume}, *st.Upgrade)
	id := containerID(t, st.Container)
	r = p.aidb("status")
	assert.Contains(t, r.stderr, "rulesdb runs postgres:17 since aidb upgrade, but the compose file names postgres:15")
	assert.Contains(t, r.stderr, "aidb upgrade rulesdb --finish")

	// up neither refuses nor undoes the upgrade while the compose file
	// still names postgres:15.
	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, id, containerID(t, p.status()["rulesdb"].Container), "the upgraded container is kept")
	assert.Equal(t, "17", serverMajor(t, st.URL))

	// A second upgrade waits for --finish or --rollback.
	r = p.aidb("upgrade", "rulesdb", "--image", "postgres:17")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--finish")

	// Written on 17, then rolled back: saved first in a safety backup.
	_, err := connect(t, st.URL).Exec(t.Context(), "INSERT INTO notes VALUES (4, 'app_reader', 'on 17', 's4')")
	require.NoError(t, err)
	r = p.aidb("upgrade", "--json", "rulesdb", "--rollback")
	require.Equal(t, 0, r.code, r.stderr)
	var rb upgrade.RollbackResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rb), r.stdout)
	require.NotEmpty(t, rb.SafetyBackup)
	m := readManifest(t, rb.SafetyBackup)
	require.NotNil(t, m.Safety)
	assert.True(t, strings.HasPrefix(m.ServerVersion, "17."), m.ServerVersion)
	for _, tb := range m.Tables {
		if tb.Key() == "public.notes" {
			assert.EqualValues(t, 4, *tb.Rows, "what was written on 17 is in the safety backup")
		}
	}
	st = p.status()["rulesdb"]
	assert.Equal(t, "15", serverMajor(t, st.URL))
	assert.Nil(t, st.Upgrade)
	assert.Equal(t, before, viewOf(t, st.URL), "15 as it was")
	assert.Equal(t, labelled, p.labelled(t.Context()), "the upgraded container and volume are gone, nothing else")

	// The safety backup was taken on 17: restoring it into 15 is refused
	// before anything changes (no safety backup of its own), naming both
	// majors and the way to 17.
	files, err := os.ReadDir(filepath.Join(p.dir, "backups"))
	require.NoError(t, err)
	r = p.aidb("restore", "--yes", "rulesdb", rb.SafetyBackup)
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "taken from PostgreSQL 17")
	assert.Contains(t, r.stderr, "runs PostgreSQL 15")
	assert.Contains(t, r.stderr, "aidb upgrade rulesdb --image")
	after, err := os.ReadDir(filepath.Join(p.dir, "backups"))
	require.NoError(t, err)
	assert.Len(t, after, len(files), "no safety backup was taken")
	assert.Equal(t, before, viewOf(t, st.URL), "15 as it was")

	// Upgraded again and finished: the old container and volume go,
	// nothing else; the data stays.
	p.upgradeJSON("rulesdb", "--image", "postgres:17")
	upgraded := p.labelled(t.Context())
	r = p.aidb("upgrade", "rulesdb", "--finish")
	require.Equal(t, 0, r.code, r.stderr)
	var want []string
	for _, l := range upgraded {
		if l != "container /"+p.name+"-rulesdb-aidb-pre-upgrade" && l != "volume "+volume {
			want = append(want, l)
		}
	}
	assert.Len(t, want, len(upgraded)-2, "both were there: %v", upgraded)
	assert.ElementsMatch(t, want, p.labelled(t.Context()))
	st = p.status()["rulesdb"]
	assert.Equal(t, "17", serverMajor(t, st.URL))
	assert.Equal(t, before, viewOf(t, st.URL))
	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, before, viewOf(t, p.status()["rulesdb"].URL), "up after --finish runs on the upgraded volume")
	r = p.aidb("upgrade", "rulesdb", "--rollback")
	assert.Equal(t, 2, r.code, "nothing to roll back to: %s", r.stderr)

	// A compose file of one's own that still names postgres:15: status
	// names the line to change, up keeps 17; once it names postgres:17,
	// up runs that, on the upgraded volume, and status has nothing to say.
	b, err := os.ReadFile(filepath.Join("..", "compose", "docker-compose.yaml"))
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(b), "image: postgres:15"))
	p.writeCompose(string(b))
	r = p.aidb("status")
	assert.Contains(t, r.stderr, "compose.yaml, change service rulesdb's line image: postgres:15 to image: postgres:17")
	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "17", serverMajor(t, p.status()["rulesdb"].URL))
	p.writeCompose(strings.Replace(string(b), "image: postgres:15", "image: postgres:17", 1))
	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	st = p.status()["rulesdb"]
	assert.Equal(t, "17", serverMajor(t, st.URL))
	assert.Equal(t, before, viewOf(t, st.URL), "the compose file's postgres:17 runs on the upgraded volume")
	require.NotNil(t, st.Upgrade)
	assert.False(t, st.Upgrade.ComposeBehind)
	assert.Equal(t, volume+"-pg17", st.Volume)
	assert.NotContains(t, p.aidb("status").stderr, "since aidb upgrade")
}

// startUpgrade starts aidb upgrade rulesdb --image postgres:17 and returns
// once the backup is being restored into the new server, with that
// server's container.
func (p *project) startUpgrade() (*exec.Cmd, *safeBuffer, string) {
	p.t.Helper()
	cmd := p.command(p.t.Context(), "upgrade", "rulesdb", "--image", "postgres:17")
	stderr := &safeBuffer{}
	cmd.Stderr = stderr
	require.NoError(p.t, cmd.Start())
	f := make(client.Filters).Add("label", orchestrator.LabelProject+"="+p.name).Add("label", orchestrator.LabelRole+"="+orchestrator.RoleUpgrade)
	var staging string
	waitFor(p.t, 5*time.Minute, func() bool {
		if !strings.Contains(stderr.String(), "restoring") {
			return false
		}
		cs, err := docker.ContainerList(p.t.Context(), client.ContainerListOptions{Filters: f})
		require.NoError(p.t, err)
		if len(cs.Items) == 1 {
			staging = cs.Items[0].ID
		}
		return staging != ""
	})
	return cmd, stderr, staging
}

// exitCode waits for cmd and returns its exit code.
func exitCode(t *testing.T, cmd *exec.Cmd, stderr *safeBuffer) int {
	t.Helper()
	err := cmd.Wait()
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, stderr.String())
	return exit.ExitCode()
}

// A row written to the old database while the upgrade restores its
// backup: the upgrade does not switch (the row would be lost), and the
// database runs on with it.
func TestUpgradeRefusesToLoseWritesMadeDuringIt(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upgwrite")
	p.backupDir()
	url := p.rulesOn15("400")
	labelled := p.labelled(t.Context())
	id := containerID(t, p.status()["rulesdb"].Container)

	cmd, stderr, _ := p.startUpgrade()
	_, err := connect(t, url).Exec(t.Context(), "INSERT INTO notes VALUES (5, 'app_reader', 'written meanwhile', 's5')")
	require.NoError(t, err)
	assert.Equal(t, 1, exitCode(t, cmd, stderr), stderr.String())
	assert.Contains(t, stderr.String(), "rulesdb changed after its backup was taken (public.notes: 4 rows, the backup has 3)")
	assert.Contains(t, stderr.String(), "runs on PostgreSQL 15 as before")

	st := p.status()["rulesdb"]
	assert.Equal(t, id, containerID(t, st.Container))
	assert.Equal(t, "15", serverMajor(t, st.URL))
	var body string
	require.NoError(t, connect(t, st.URL).QueryRow(t.Context(), "SELECT body FROM notes WHERE id = 5").Scan(&body))
	assert.Equal(t, "written meanwhile", body)
	assert.Equal(t, labelled, p.labelled(t.Context()), "no new volume, no staging container")
}

// A failure mid-upgrade (the new server killed while the backup is
// restored into it) leaves the old database running on 15 with its data,
// and nothing the upgrade made.
func TestUpgradeKilledMidRestoreLeavesTheOldDatabase(t *testing.T) {
	t.Parallel()
	p := newProject(t, "upgkill")
	p.backupDir()
	url := p.rulesOn15("400")
	before := viewOf(t, url)
	labelled := p.labelled(t.Context())
	id := containerID(t, p.status()["rulesdb"].Container)

	cmd, stderr, staging := p.startUpgrade()
	_, err := docker.ContainerKill(t.Context(), staging, client.ContainerKillOptions{Signal: "SIGKILL"})
	require.NoError(t, err)
	assert.Equal(t, 1, exitCode(t, cmd, stderr), stderr.String())
	assert.Contains(t, stderr.String(), "runs on PostgreSQL 15 as before")

	st := p.status()["rulesdb"]
	assert.Equal(t, "running", st.State)
	assert.Equal(t, id, containerID(t, st.Container))
	assert.Equal(t, "15", serverMajor(t, st.URL))
	assert.Nil(t, st.Upgrade)
	assert.Equal(t, before, viewOf(t, st.URL))
	assert.Equal(t, labelled, p.labelled(t.Context()), "no new volume, no staging container")
}

// dirNames lists the names in dir, sorted (none when dir does not exist).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
