package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/pitr"
	"github.com/aidb/aidb/orchestrator"
)

// TestPITRFromTheRepositoryAlone: with a repository and age recipients,
// serve ships each segment as it completes, sealed, and the base backup;
// while the repository is down, segments wait in the folder and go once
// it is back. Then the folder's stream is lost (disabled, its files
// deleted): a restore to a time without the identity is refused (exit
// 2, nothing changed); with it, the base backup and WAL come back from
// the repository alone and the row committed before the target is back,
// the one after it not.
func TestPITRFromTheRepositoryAlone(t *testing.T) {
	t.Parallel()
	s3srv := newS3Server(t)
	s3srv.bucket("aidb-wal")
	p := newProject(t, "pitrs3")
	p.useRepository(s3srv.endpoint(), "s3://aidb-wal/team")
	recipients, identity, _ := ageKeyFiles(t)
	p.env = append(p.env, "AIDB_AGE_RECIPIENTS_FILE="+recipients, "AIDB_AGE_IDENTITY_FILE="+identity)
	conn, dir := p.pitrOn()
	ctx := t.Context()
	walDir := filepath.Join(dir, "wal", "rulesdb")

	_, serveErr, _ := p.background(ctx, "serve", "--schedule", "@every 1h", "--no-verify")
	shipped := func(key string) func() bool {
		return func() bool { return slices.Contains(s3srv.keys("aidb-wal"), key) }
	}
	var shippedBases []string
	waitFor(t, 60*time.Second, func() bool {
		for _, k := range s3srv.keys("aidb-wal") {
			if strings.HasPrefix(k, "team/base/rulesdb/") && strings.HasSuffix(k, "/"+pitr.RecordName) {
				shippedBases = append(shippedBases, k)
			}
		}
		return len(shippedBases) > 0
	})

	target := markBeforeTarget(t, conn)

	// The repository goes away; B's segment completes meanwhile.
	s3srv.kill()
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('B')")
	require.NoError(t, err)
	var segB string
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal())").Scan(&segB))
	waitFor(t, 60*time.Second, func() bool { _, err := os.Stat(filepath.Join(walDir, segB)); return err == nil })
	waitFor(t, 60*time.Second, func() bool { return strings.Contains(serveErr.String(), "wal-push failed") })
	// A prune meanwhile prunes the folder (a month's window: nothing to
	// remove) and fails: the repository was not pruned.
	r := p.aidb("pitr", "prune", "rulesdb", "--keep-window", "30d", "--yes")
	assert.Equal(t, 1, r.code, "a repository not pruned is no success: %s", r.stderr)
	assert.Contains(t, r.stderr, "the backup folder was pruned, the repository s3://aidb-wal/team was not")
	assert.Contains(t, r.stderr, "run aidb pitr prune again once it answers")
	s3srv.start()
	waitFor(t, 60*time.Second, shipped("team/wal/rulesdb/"+segB+".zst.age"))
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(serveErr.String(), "wal-push: the repository answers again") })
	_ = conn.Close(ctx)

	// What went is sealed.
	out, err := s3srv.client(s3srv.endpoint()).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("aidb-wal"), Key: aws.String("team/wal/rulesdb/" + segB + ".zst.age")})
	require.NoError(t, err)
	head, err := io.ReadAll(io.LimitReader(out.Body, 22))
	require.NoError(t, err)
	_ = out.Body.Close()
	assert.True(t, bytes.HasPrefix(head, []byte("age-encryption.org/v1")), "segments go encrypted: %q", head)
	push := p.aidb("pitr", "push", "--json")
	require.Equal(t, 0, push.code, push.stderr)
	assert.Contains(t, push.stderr, "rulesdb: 0 WAL segment(s) and 0 base backup(s) sent", "serve sent it all")

	// The folder's stream is lost.
	r = p.aidb("pitr", "disable", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	require.NoError(t, os.RemoveAll(walDir))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, "base", "rulesdb")))

	before := p.labelled(ctx)
	withKey := p.env
	p.env = append(slices.Clone(p.env), "AIDB_AGE_IDENTITY_FILE=")
	r = p.aidb("restore", "rulesdb", "--to-time", target.Format(time.RFC3339Nano), "--yes")
	p.env = withKey
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "AIDB_AGE_IDENTITY_FILE")
	assert.ElementsMatch(t, before, p.labelled(ctx), "a refused restore changes nothing")
	bases, err := pitr.Bases(os.DirFS(filepath.Join(dir, "base", "rulesdb")))
	require.NoError(t, err)
	assert.Empty(t, bases, "nothing half fetched counts")
	_, err = os.Stat(walDir)
	assert.True(t, os.IsNotExist(err), "no stream folder made for nothing")
	assert.Equal(t, []string{"A", "B"}, marks(t, p.status()["rulesdb"].URL))

	r = p.aidb("restore", "rulesdb", "--to-time", target.Format(time.RFC3339Nano), "--yes", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "fetched 1 base backups and")
	var res pitr.RestoreResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	assert.False(t, res.Replayed.After(target), "last replayed %s, target %s", res.Replayed, target)
	assert.Equal(t, []string{"A"}, marks(t, p.status()["rulesdb"].URL), "A is back from the repository alone, and B is not")
	r = p.aidb("restore", "rulesdb", "--finish", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
}

// TestPITRStreamKilledMidSegment: the WAL sidecar killed (SIGKILL) while
// a segment is half written. The half segment is never counted whole
// (the window ends before it), check says the stream is behind (exit 4),
// a row written while it is down waits in the slot, and once aidb up has
// started it again the stream resumes from the slot: a restore to the
// latest brings back the rows from before, during and after the kill.
func TestPITRStreamKilledMidSegment(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrkill")
	conn, dir := p.pitrOn()
	ctx := t.Context()
	walDir := filepath.Join(dir, "wal", "rulesdb")
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('A')")
	require.NoError(t, err)
	var current string
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_current_wal_lsn())").Scan(&current))
	waitFor(t, 30*time.Second, func() bool { _, err := os.Stat(filepath.Join(walDir, current+".partial")); return err == nil })

	_, err = docker.ContainerKill(ctx, p.status()["rulesdb"].Container+"-wal", client.ContainerKillOptions{Signal: "SIGKILL"})
	require.NoError(t, err)
	st := p.aidb("pitr", "status", "--json")
	require.Equal(t, 0, st.code, st.stderr)
	assert.NotContains(t, st.stdout, `"newest_segment": "`+current+`"`, "the half segment is not whole")
	r := p.aidb("check", "--max-wal-lag", "64MB")
	assert.Equal(t, 4, r.code, "a killed stream is behind: %s", r.stderr)
	_, err = conn.Exec(ctx, "INSERT INTO marks VALUES ('B')")
	require.NoError(t, err)

	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	_, err = conn.Exec(ctx, "INSERT INTO marks VALUES ('C')")
	require.NoError(t, err)
	switchedSegment(t, conn, walDir)
	_ = conn.Close(ctx)
	_, err = os.Stat(filepath.Join(walDir, current))
	require.NoError(t, err, "the half segment was completed once the stream resumed")

	r = p.aidb("restore", "rulesdb", "--to-latest", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"A", "B", "C"}, marks(t, p.status()["rulesdb"].URL), "nothing of before, during or after the kill is lost")
	r = p.aidb("restore", "rulesdb", "--finish")
	require.Equal(t, 0, r.code, r.stderr)
}

// TestPITRBaseBackupKilledMidway: aidb pitr base-backup killed (SIGKILL)
// while pg_basebackup writes. The folder it left has no record and never
// counts; the next base backup clears it and the killed run's container;
// the stream stays restorable.
func TestPITRBaseBackupKilledMidway(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrbasekill")
	p.seeded("20000", "rulesdb")
	conn, dir := p.pitrOn()
	_ = conn.Close(t.Context())
	baseDir := filepath.Join(dir, "base", "rulesdb")
	first, err := os.ReadDir(baseDir)
	require.NoError(t, err)
	require.Len(t, first, 1)
	ctx := t.Context()
	before := p.labelled(ctx)

	cmd, _, exited := p.background(ctx, "pitr", "base-backup", "rulesdb")
	var half string
	waitFor(t, 60*time.Second, func() bool {
		entries, _ := os.ReadDir(baseDir)
		for _, e := range entries {
			if e.Name() != first[0].Name() {
				if _, err := os.Stat(filepath.Join(baseDir, e.Name(), "base.tar.gz")); err == nil {
					half = e.Name()
				}
			}
		}
		return half != ""
	})
	require.NoError(t, cmd.Process.Kill())
	<-exited
	_, err = os.Stat(filepath.Join(baseDir, half, pitr.RecordName))
	require.True(t, os.IsNotExist(err), "the base backup was killed before its end (a faster machine would need more rows)")
	bases, err := pitr.Bases(os.DirFS(baseDir))
	require.NoError(t, err)
	require.Len(t, bases, 1, "the killed base backup is never listed")
	assert.Equal(t, first[0].Name(), bases[0].Name)

	r := p.aidb("pitr", "base-backup", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	_, err = os.Stat(filepath.Join(baseDir, half))
	assert.True(t, os.IsNotExist(err), "the next base backup cleared the killed one's folder")
	bases, err = pitr.Bases(os.DirFS(baseDir))
	require.NoError(t, err)
	assert.Len(t, bases, 2)
	assert.ElementsMatch(t, before, p.labelled(ctx), "the killed run's pg_basebackup container is cleared")
	r = p.aidb("pitr", "verify", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
}

// TestPITRRestoreKilledMidway: a restore to a time whose recovering
// server is killed (SIGKILL) while it replays fails (exit 1) and leaves
// the database as it was: the same container on its volume, every row,
// the stream running, and nothing the restore made. Ctrl-C in the replay
// (exit 130) does the same.
func TestPITRRestoreKilledMidway(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrrestkill")
	conn, dir := p.pitrOn()
	ctx := t.Context()
	// WAL that takes seconds to replay.
	_, err := conn.Exec(ctx, "INSERT INTO marks SELECT 'row ' || g FROM generate_series(1, 1500000) g")
	require.NoError(t, err)
	switchedSegment(t, conn, filepath.Join(dir, "wal", "rulesdb"))
	_ = conn.Close(ctx)
	id := containerID(t, p.status()["rulesdb"].Container)
	before := p.labelled(ctx)
	unchanged := func(t *testing.T) {
		t.Helper()
		st := p.status()["rulesdb"]
		assert.Equal(t, id, containerID(t, st.Container), "the same container")
		var n int
		require.NoError(t, connect(t, st.URL).QueryRow(ctx, "SELECT count(*) FROM marks").Scan(&n))
		assert.Equal(t, 1500000, n, "every row")
		assert.ElementsMatch(t, before, p.labelled(ctx), "no new volume, no recovering server")
		s := p.aidb("pitr", "status", "--json")
		assert.Contains(t, s.stdout, `"running": true`, "the stream runs on")
	}
	replaying := func() (*exec.Cmd, *safeBuffer, string) {
		cmd := p.command(ctx, "restore", "rulesdb", "--to-latest", "--yes")
		stderr := &safeBuffer{}
		cmd.Stderr = stderr
		require.NoError(t, cmd.Start())
		f := make(client.Filters).Add("label", orchestrator.LabelProject+"="+p.name).Add("label", orchestrator.LabelRole+"="+orchestrator.RolePITR)
		var server string
		waitFor(t, 2*time.Minute, func() bool {
			if !strings.Contains(stderr.String(), "replaying WAL") {
				return false
			}
			cs, err := docker.ContainerList(ctx, client.ContainerListOptions{Filters: f})
			require.NoError(t, err)
			if len(cs.Items) == 1 {
				server = cs.Items[0].ID
			}
			return server != ""
		})
		return cmd, stderr, server
	}

	cmd, stderr, server := replaying()
	_, err = docker.ContainerKill(ctx, server, client.ContainerKillOptions{Signal: "SIGKILL"})
	require.NoError(t, err)
	assert.Equal(t, 1, exitCode(t, cmd, stderr), stderr.String())
	assert.Contains(t, stderr.String(), "runs on as it was")
	unchanged(t)

	cmd, stderr, _ = replaying()
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	assert.Equal(t, 130, exitCode(t, cmd, stderr), stderr.String())
	unchanged(t)
}

// TestPITRSlotLimitHolds: the stream stopped while the database writes
// more WAL than max_slot_wal_keep_size. At the next checkpoint the
// server gives the slot's WAL up rather than keep it all (the slot is
// lost), and check says so (exit 4); pitr enable, which it names, makes
// the stream anew.
func TestPITRSlotLimitHolds(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrslot")
	conn, _ := p.pitrOn("--max-slot-wal-keep-size", "32MB")
	ctx := t.Context()
	_, err := docker.ContainerKill(ctx, p.status()["rulesdb"].Container+"-wal", client.ContainerKillOptions{Signal: "SIGKILL"})
	require.NoError(t, err)
	// About 100 MB of WAL with nobody streaming it.
	_, err = conn.Exec(ctx, "INSERT INTO marks SELECT 'row ' || g || repeat('x', 60) FROM generate_series(1, 800000) g")
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CHECKPOINT")
	require.NoError(t, err)
	var status string
	require.NoError(t, conn.QueryRow(ctx, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'aidb_wal_rulesdb'").Scan(&status))
	assert.Equal(t, "lost", status, "the slot gave its WAL up at the checkpoint")
	_ = conn.Close(ctx)
	r := p.aidb("check", "--max-wal-lag", "1GB")
	assert.Equal(t, 4, r.code, "a lost slot is stale whatever the lag: %s", r.stderr)
	assert.Contains(t, r.stderr, "max_slot_wal_keep_size")
	assert.Contains(t, r.stderr, "aidb pitr enable rulesdb")

	// What it says to run brings the stream back: a new slot, the
	// folder with the gap set aside, a new base backup.
	r = p.aidb("pitr", "enable", "rulesdb", "--max-slot-wal-keep-size", "32MB")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "set aside")
	r = p.aidb("check", "--max-wal-lag", "1GB")
	assert.Equal(t, 0, r.code, r.stderr)
}

// TestPITRIncrementalOn17: on PostgreSQL 17 (memorydb), pitr enable turns
// summarize_wal on, and the next base backup is incremental to the first
// (a fraction of its size, its record naming the parent). A restore to the
// latest combines the chain (pg_combinebackup) and replays the WAL: the
// rows from before and after the incremental base backup are back. A
// prune keeps the full one the incremental one needs.
func TestPITRIncrementalOn17(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrinc")
	p.seeded("2000", "memorydb")
	conn, dir := p.pitrOnDB("memorydb")
	ctx := t.Context()
	var summarize string
	require.NoError(t, conn.QueryRow(ctx, "SHOW summarize_wal").Scan(&summarize))
	assert.Equal(t, "on", summarize)
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('A')")
	require.NoError(t, err)

	r := p.aidb("pitr", "base-backup", "memorydb", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var inc pitr.Base
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &inc), r.stdout)
	baseDir := filepath.Join(dir, "base", "memorydb")
	bases, err := pitr.Bases(os.DirFS(baseDir))
	require.NoError(t, err)
	require.Len(t, bases, 2)
	full := bases[0]
	assert.Empty(t, full.Parent, "the first base backup is full")
	assert.Equal(t, full.Name, inc.Parent, "the second is incremental to the first")
	size := func(b string) int64 {
		info, err := os.Stat(filepath.Join(baseDir, b, "base.tar.gz"))
		require.NoError(t, err)
		return info.Size()
	}
	assert.Less(t, size(inc.Name)*5, size(full.Name), "an incremental base backup holds the changed blocks only")

	_, err = conn.Exec(ctx, "INSERT INTO marks VALUES ('B')")
	require.NoError(t, err)
	switchedSegment(t, conn, filepath.Join(dir, "wal", "memorydb"))
	var memories int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM memories").Scan(&memories))
	_ = conn.Close(ctx)

	// A window that starts after the incremental one's end: it is the
	// anchor, and the full one stays only as its parent.
	waitFor(t, 10*time.Second, func() bool { return time.Since(inc.End) > 2*time.Second })
	r = p.aidb("pitr", "prune", "memorydb", "--keep-window", "1s", "--yes", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"kept_parents": [`, "the full base backup stays for the incremental one")
	r = p.aidb("restore", "memorydb", "--to-latest", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	url := p.status()["memorydb"].URL
	assert.Equal(t, []string{"A", "B"}, marks(t, url), "the chain combined and the WAL replayed")
	var after int
	require.NoError(t, connect(t, url).QueryRow(ctx, "SELECT count(*) FROM memories").Scan(&after))
	assert.Equal(t, memories, after, "every memory")
	r = p.aidb("restore", "memorydb", "--finish")
	require.Equal(t, 0, r.code, r.stderr)
}

// TestPITRToLSNListAndVerify: list shows the base backups and window
// (--json: pitr), verify --pitr proves the stream and writes a JUnit
// report, and restore --to-lsn recovers to a WAL position: the row
// committed before it is back and the one after not. A position that is
// no WAL position, or past the newest whole segment, is refused (exit 2)
// before anything changes.
func TestPITRToLSNListAndVerify(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrlsn")
	conn, dir := p.pitrOn()
	ctx := t.Context()
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('A')")
	require.NoError(t, err)
	var lsn string
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn))
	_, err = conn.Exec(ctx, "INSERT INTO marks VALUES ('B')")
	require.NoError(t, err)
	walDir := filepath.Join(dir, "wal", "rulesdb")
	switchedSegment(t, conn, walDir)
	for range 2 { // more whole segments, for the gap below
		_, err = conn.Exec(ctx, "SELECT pg_logical_emit_message(false, 'aidb-test', 'more')")
		require.NoError(t, err)
		switchedSegment(t, conn, walDir)
	}
	var past string
	require.NoError(t, conn.QueryRow(ctx, "SELECT (pg_current_wal_lsn() + 64 * 1024 * 1024)::text").Scan(&past))
	_ = conn.Close(ctx)

	r := p.aidb("list", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var listed struct {
		PITR []pitr.Listed `json:"pitr"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &listed), r.stdout)
	require.Len(t, listed.PITR, 1)
	assert.Equal(t, "rulesdb", listed.PITR[0].Database)
	assert.Len(t, listed.PITR[0].Bases, 1)
	require.NotNil(t, listed.PITR[0].Window, listed.PITR[0].Problem)
	r = p.aidb("list")
	assert.Contains(t, r.stderr, "point-in-time recovery of rulesdb: 1 base backup(s)")

	report := filepath.Join(t.TempDir(), "pitr.xml")
	r = p.aidb("verify", "--pitr", "rulesdb", "--junit", report)
	require.Equal(t, 0, r.code, r.stderr)
	x, err := os.ReadFile(report)
	require.NoError(t, err)
	assert.Contains(t, string(x), `<testcase name="rulesdb" classname="aidb.pitr">`)
	assert.NotContains(t, string(x), "<failure")
	r = p.aidb("verify", "--pitr", "rulesdb", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"amcheck": {`, "pg_amcheck ran in the recovered database")
	assert.Contains(t, r.stdout, `"corruption": []`)

	before := p.labelled(ctx)
	for _, bad := range []string{"not-a-position", past} {
		r = p.aidb("restore", "rulesdb", "--to-lsn", bad, "--yes")
		assert.Equal(t, 2, r.code, "%s: %s", bad, r.stderr)
	}
	assert.Contains(t, r.stderr, "no base backup and unbroken run of whole WAL segments")
	assert.ElementsMatch(t, before, p.labelled(ctx), "a refused restore changes nothing")

	r = p.aidb("restore", "rulesdb", "--to-lsn", lsn, "--yes", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"A"}, marks(t, p.status()["rulesdb"].URL), "A is back, B is not")
	r = p.aidb("restore", "rulesdb", "--finish")
	require.Equal(t, 0, r.code, r.stderr)

	// A segment lost in the middle of the stream: verify --pitr names it
	// (exit 3, as a verification that finds a difference).
	segs, err := pitr.Segments(os.DirFS(walDir), pitr.DefaultSegmentSize)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(segs), 3, "whole segments to lose one of")
	lost := segs[len(segs)-2].Name
	require.NoError(t, os.Remove(filepath.Join(walDir, lost)))
	r = p.aidb("verify", "--pitr", "rulesdb", "--junit", report)
	assert.Equal(t, 3, r.code, r.stderr)
	assert.Contains(t, r.stderr, "segment "+lost+" is missing")
	x, err = os.ReadFile(report)
	require.NoError(t, err)
	assert.Contains(t, string(x), "<failure", "the JUnit report has the failure")
}

// ledgerCompose is a project of its own: one database, ledger, under
// another service name, user and database name than the defaults, on 17.
const ledgerCompose = `services:
  books:
    image: postgres:17
    environment: {POSTGRES_USER: keeper, POSTGRES_PASSWORD: s3cret-pw, POSTGRES_DB: ledger}
    ports: ["127.0.0.1:${RULESDB_PORT}:5432"]
    volumes: ["books:/var/lib/postgresql/data"]
volumes:
  books:
`

// TestPITRCustomComposeProject: point-in-time recovery of a database a
// custom compose file and aidb.yaml describe (service books, user keeper,
// database ledger): enable, a restore to a time between two rows, finish.
func TestPITRCustomComposeProject(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrledger")
	p.writeCompose(ledgerCompose)
	require.NoError(t, os.WriteFile(filepath.Join(p.dir, "aidb.yaml"), []byte("databases:\n  ledger: {service: books}\n"), 0o600))
	conn, dir := p.pitrOnDB("ledger")
	ctx := t.Context()
	target := markBeforeTarget(t, conn)
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('B')")
	require.NoError(t, err)
	switchedSegment(t, conn, filepath.Join(dir, "wal", "ledger"))
	_ = conn.Close(ctx)

	r := p.aidb("restore", "ledger", "--to-time", target.Format(time.RFC3339Nano), "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"A"}, marks(t, p.status()["ledger"].URL), "A is back and B is not")
	r = p.aidb("restore", "ledger", "--finish")
	require.Equal(t, 0, r.code, r.stderr)
}
