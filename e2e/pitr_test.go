package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/ops/pitr"
)

// pitrOn brings rulesdb (postgres:15) up and turns PITR on (with flags);
// it returns its connection and the backup folder.
func (p *project) pitrOn(flags ...string) (*pgx.Conn, string) {
	p.t.Helper()
	return p.pitrOnDB("rulesdb", flags...)
}

// pitrOnDB is pitrOn for db (memorydb: PostgreSQL 17).
func (p *project) pitrOnDB(db string, flags ...string) (*pgx.Conn, string) {
	p.t.Helper()
	dir := p.backupDir()
	r := p.aidb("up", db)
	require.Equal(p.t, 0, r.code, r.stderr)
	r = p.aidb(append([]string{"pitr", "enable", db}, flags...)...)
	require.Equal(p.t, 0, r.code, r.stderr)
	conn := connect(p.t, p.status()[db].URL)
	_, err := conn.Exec(p.t.Context(), "CREATE TABLE marks (name text PRIMARY KEY)")
	require.NoError(p.t, err)
	return conn, dir
}

// switchedSegment forces a segment switch and waits until the segment it
// completed lies whole in the stream folder.
func switchedSegment(t *testing.T, conn *pgx.Conn, walDir string) {
	t.Helper()
	var name string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT pg_walfile_name(pg_switch_wal())").Scan(&name))
	waitFor(t, 60*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(walDir, name))
		return err == nil
	})
}

// markBeforeTarget commits row A into marks and returns the server's clock
// after that commit, once the clock is past it: a row committed next
// (B) commits after the target, and a restore to it brings back A, not B.
func markBeforeTarget(t *testing.T, conn *pgx.Conn) time.Time {
	t.Helper()
	ctx := t.Context()
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('A')")
	require.NoError(t, err)
	var target time.Time
	require.NoError(t, conn.QueryRow(ctx, "SELECT now()").Scan(&target))
	waitFor(t, 10*time.Second, func() bool {
		var after bool
		return conn.QueryRow(ctx, "SELECT clock_timestamp() > $1::timestamptz + interval '10 milliseconds'", target).Scan(&after) == nil && after
	})
	return target
}

func marks(t *testing.T, url string) []string {
	t.Helper()
	conn := connect(t, url)
	var out []string
	rows, err := conn.Query(t.Context(), "SELECT name FROM marks ORDER BY name")
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// A restore to a time brings back what was committed before it and not
// what was committed after: row A before T, row B after T, B's WAL whole
// in the folder; restore --to-time T has A and not B, on a new volume,
// with the stream's sidecar gone; --rollback brings back the state with B.
func TestPITRRestoreToTime(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitr")
	conn, dir := p.pitrOn()
	ctx := t.Context()

	st := p.aidb("pitr", "status", "--json")
	require.Equal(t, 0, st.code, st.stderr)
	assert.Contains(t, st.stdout, `"running": true`)
	assert.Contains(t, st.stdout, "aidb_wal_rulesdb")
	st = p.aidb("status", "--json")
	require.Equal(t, 0, st.code, st.stderr)
	var doc struct {
		PITR []pitr.Status `json:"pitr"`
	}
	require.NoError(t, json.Unmarshal([]byte(st.stdout), &doc), st.stdout)
	require.Len(t, doc.PITR, 1, "aidb status shows the database with PITR on")
	require.NotNil(t, doc.PITR[0].Slot, doc.PITR[0].Problem)
	assert.True(t, doc.PITR[0].Slot.Active)
	assert.Equal(t, "reserved", doc.PITR[0].Slot.WALStatus)
	require.NotNil(t, doc.PITR[0].Window)

	target := markBeforeTarget(t, conn)
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('B')")
	require.NoError(t, err)
	switchedSegment(t, conn, filepath.Join(dir, "wal", "rulesdb"))
	_ = conn.Close(ctx)

	// Proven restorable without touching the database: the whole stream
	// replays in a throwaway volume, removed again.
	before := p.labelled(ctx)
	r := p.aidb("pitr", "verify", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "the database answers")
	assert.ElementsMatch(t, before, p.labelled(ctx), "verify leaves nothing behind")

	r = p.aidb("restore", "rulesdb", "--to-time", target.Format(time.RFC3339Nano), "--yes", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var res pitr.RestoreResult
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	assert.NotEmpty(t, res.StreamRemoved)
	assert.False(t, res.Replayed.After(target), "last replayed %s, target %s", res.Replayed, target)
	url := p.status()["rulesdb"].URL
	assert.Equal(t, []string{"A"}, marks(t, url), "A is back and B is not")
	assert.Contains(t, strings.Join(p.labelled(ctx), "\n"), res.Volume)

	r = p.aidb("restore", "rulesdb", "--rollback", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"A", "B"}, marks(t, p.status()["rulesdb"].URL), "the rollback brings back the state with B")
	assert.NotContains(t, strings.Join(p.labelled(ctx), "\n"), res.Volume)

	// Disable: the slot the rolled-back server still has is dropped (the
	// restore removed the sidecar); the files stay; again is bad input.
	r = p.aidb("pitr", "disable", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "dropped replication slot aidb_wal_rulesdb")
	admin := connect(t, adminURL(p.status()["rulesdb"].URL))
	var slots int
	require.NoError(t, admin.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots))
	assert.Zero(t, slots, "no slot holds WAL back")
	assert.NotContains(t, strings.Join(p.labelled(ctx), "\n"), "-wal", "no sidecar")
	entries, err := os.ReadDir(filepath.Join(dir, "wal", "rulesdb"))
	require.NoError(t, err)
	assert.NotEmpty(t, entries, "the segments stay")
	r = p.aidb("pitr", "disable", "rulesdb")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "point-in-time recovery is off")
}

// A target before the end of the oldest base backup, or after the newest
// whole segment, is refused with exit 2, naming the window, and changes
// nothing: same container, no new volume, the stream still running. A
// target inside the window after which nothing committed (recovery finds
// no commit to stop before) restores everything committed up to it. On
// memorydb: PostgreSQL 17 (the other PITR tests run on 15).
func TestPITRRefusesTargetOutsideWindow(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrrefuse")
	conn, dir := p.pitrOnDB("memorydb")
	ctx := t.Context()
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('A')")
	require.NoError(t, err)
	before := p.labelled(ctx)

	for _, tc := range []struct{ target, says string }{
		{"2020-01-01 00:00:00+00", "before the end of the oldest base backup"},
		{time.Now().Add(time.Hour).Format(time.RFC3339), "after the newest whole WAL segment"},
	} {
		r := p.aidb("restore", "memorydb", "--to-time", tc.target, "--yes")
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, tc.says)
		assert.Contains(t, r.stderr, "can be recovered to any time from")
		assert.Contains(t, r.stderr, "nothing was changed")
	}
	assert.ElementsMatch(t, before, p.labelled(ctx), "nothing was made or removed")
	assert.Equal(t, []string{"A"}, marks(t, p.status()["memorydb"].URL))
	st := p.aidb("pitr", "status", "--json")
	require.Equal(t, 0, st.code, st.stderr)
	assert.Contains(t, st.stdout, `"running": true`)

	var target time.Time
	require.NoError(t, conn.QueryRow(ctx, "SELECT now()").Scan(&target))
	switchedSegment(t, conn, filepath.Join(dir, "wal", "memorydb"))
	_ = conn.Close(ctx)
	r := p.aidb("restore", "memorydb", "--to-time", target.Format(time.RFC3339Nano), "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"A"}, marks(t, p.status()["memorydb"].URL))
}

// The stream lives with its database: down stops the sidecar, up starts it
// again and it resumes from the slot (a row written after the restart
// reaches the folder and restore --to-latest brings it back); --finish
// removes the replaced container and volume; nuke removes the sidecar and
// says so, while the segments and base backups stay in the folder.
func TestPITRStreamAcrossDownUpAndNuke(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrlife")
	conn, dir := p.pitrOn("--synchronous")
	ctx := t.Context()
	walDir := filepath.Join(dir, "wal", "rulesdb")
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('A')")
	require.NoError(t, err)
	_ = conn.Close(ctx)

	// check --max-wal-lag: the running stream keeps up; a database
	// without PITR, named, does not; a size that is none is refused.
	r := p.aidb("check", "--max-wal-lag", "64MB", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: WAL stream ok")
	assert.NotContains(t, r.stderr, "memorydb", "only databases with PITR on are checked")
	assert.Contains(t, r.stdout, `"lag_bytes"`)
	r = p.aidb("check", "--max-wal-lag", "64MB", "memorydb")
	assert.Equal(t, 4, r.code, r.stderr)
	assert.Contains(t, r.stderr, "aidb pitr enable memorydb")
	r = p.aidb("check", "--max-wal-lag", "lots")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "give a size")

	r = p.aidb("down")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "stopping WAL stream")
	st := p.aidb("pitr", "status", "--json")
	require.Equal(t, 0, st.code, st.stderr)
	assert.Contains(t, st.stdout, `"running": false`)
	r = p.aidb("check", "--max-wal-lag", "64MB")
	assert.Equal(t, 4, r.code, "a stopped stream is behind: %s", r.stderr)
	assert.Contains(t, r.stderr, "is not running: aidb up starts it")

	r = p.aidb("up", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "starting WAL stream")
	conn = connect(t, p.status()["rulesdb"].URL)
	_, err = conn.Exec(ctx, "INSERT INTO marks VALUES ('C')")
	require.NoError(t, err)
	switchedSegment(t, conn, walDir)
	_ = conn.Close(ctx)

	r = p.aidb("restore", "rulesdb", "--to-latest", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"A", "C"}, marks(t, p.status()["rulesdb"].URL), "the stream resumed after up: C is in the WAL")
	r = p.aidb("restore", "rulesdb", "--finish")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb-data", "the replaced volume is named as removed")
	assert.NotContains(t, strings.Join(p.labelled(ctx), "\n"), "pre-upgrade")

	// A new stream on the recovered server (a new timeline), then nuke.
	r = p.aidb("pitr", "enable", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	r = p.aidb("nuke", "--yes", "--no-backup", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "removed WAL stream")
	var rm struct {
		WALStreams []string `json:"wal_streams"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rm), r.stdout)
	assert.Equal(t, []string{p.name + "-rulesdb-wal"}, rm.WALStreams)
	entries, err := os.ReadDir(walDir)
	require.NoError(t, err)
	assert.NotEmpty(t, entries, "the segments stay")
}

// Prune keeps a window: with the window reaching back past the second
// base backup only, the first one and the segments before the second's
// start go (after --yes; the plan alone removes nothing), the segment
// being written stays, and the stream still replays to its end.
func TestPITRPruneKeepsTheWindow(t *testing.T) {
	t.Parallel()
	p := newProject(t, "pitrprune")
	conn, dir := p.pitrOn()
	ctx := t.Context()
	walDir, baseDir := filepath.Join(dir, "wal", "rulesdb"), filepath.Join(dir, "base", "rulesdb")
	_, err := conn.Exec(ctx, "INSERT INTO marks VALUES ('A')")
	require.NoError(t, err)
	switchedSegment(t, conn, walDir)
	switchedSegment(t, conn, walDir)
	first, err := os.ReadDir(baseDir)
	require.NoError(t, err)
	require.Len(t, first, 1)

	r := p.aidb("pitr", "base-backup", "rulesdb", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var second pitr.Base
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &second), r.stdout)
	_, err = conn.Exec(ctx, "INSERT INTO marks VALUES ('B')")
	require.NoError(t, err)
	switchedSegment(t, conn, walDir)
	// A window of 1 s reaches back past the second base backup's end once
	// a second has gone by since.
	waitFor(t, 10*time.Second, func() bool { return time.Since(second.End) > time.Second })

	for _, bad := range []string{"0", "soon", "-3d"} {
		r = p.aidb("pitr", "prune", "--keep-window", bad, "--yes")
		assert.Equal(t, 2, r.code, "--keep-window %s: %s", bad, r.stderr)
		assert.Contains(t, r.stderr, "--keep-window")
	}
	segsBefore, err := os.ReadDir(walDir)
	require.NoError(t, err)

	r = p.aidb("pitr", "prune", "--keep-window", "1s", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	var doc struct {
		Pruned []pitr.PrunePlan `json:"pruned"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc), r.stdout)
	require.Len(t, doc.Pruned, 1)
	plan := doc.Pruned[0]
	assert.Equal(t, second.Name, plan.Anchor)
	assert.Equal(t, []string{first[0].Name()}, plan.RemovedBases)
	assert.NotEmpty(t, plan.RemovedSegments, "the segments before the second base backup")
	assert.False(t, plan.Removed)
	assert.Contains(t, r.stderr, "add --yes")
	assert.DirExists(t, filepath.Join(baseDir, first[0].Name()), "the plan alone removes nothing")
	segsPlanned, err := os.ReadDir(walDir)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, len(segsPlanned), len(segsBefore), "the plan alone removes no segment")

	r = p.aidb("pitr", "prune", "rulesdb", "--keep-window", "1s", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NoDirExists(t, filepath.Join(baseDir, first[0].Name()))
	assert.DirExists(t, filepath.Join(baseDir, second.Name))
	for _, name := range plan.RemovedSegments {
		assert.NoFileExists(t, filepath.Join(walDir, name))
	}
	// Everything else stays (a *.partial may have become its whole
	// segment meanwhile: pg_receivewal renames it when it is full).
	for _, e := range segsPlanned {
		if n := e.Name(); !strings.HasSuffix(n, ".partial") && !slices.Contains(plan.RemovedSegments, n) {
			assert.FileExists(t, filepath.Join(walDir, n))
		}
	}

	// What stays still replays to its end, and holds both rows.
	r = p.aidb("pitr", "verify", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)

	// serve takes a base backup of each database with a stream, then
	// keeps aidb.yaml's retention.pitr_keep_window.
	cfg := filepath.Join(p.dir, "aidb.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("retention:\n  pitr_keep_window: 1s\ndatabases:\n  rulesdb:\n    service: rulesdb\n"), 0o600))
	serve, serveErr, exited := p.background(ctx, "serve", "--config", cfg, "--schedule", "@every 1h", "--run-now", "--no-verify")
	waitFor(t, 3*time.Minute, func() bool { return strings.Contains(serveErr.String(), "pitr-prune") })
	require.NoError(t, serve.Process.Signal(os.Interrupt))
	<-exited
	assert.Contains(t, serveErr.String(), "rulesdb: base-backup ok: "+baseDir)
	assert.Contains(t, serveErr.String(), "rulesdb: pitr-prune ok: ")
	bases, err := os.ReadDir(baseDir)
	require.NoError(t, err)
	require.NotEmpty(t, bases)
	assert.NotEqual(t, second.Name, bases[len(bases)-1].Name(), "serve's base backup is the newest")
	r = p.aidb("pitr", "verify", "rulesdb")
	require.Equal(t, 0, r.code, r.stderr)
	_, err = conn.Exec(ctx, "INSERT INTO marks VALUES ('C')")
	require.NoError(t, err)
	var target time.Time
	require.NoError(t, conn.QueryRow(ctx, "SELECT now()").Scan(&target))
	switchedSegment(t, conn, walDir)
	_ = conn.Close(ctx)
	r = p.aidb("restore", "rulesdb", "--to-time", target.Format(time.RFC3339Nano), "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, []string{"A", "B", "C"}, marks(t, p.status()["rulesdb"].URL))
	r = p.aidb("restore", "rulesdb", "--finish", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
}
