package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/ops/backup"
	"github.com/aidb/aidb/internal/postgres/pgimage"
	"github.com/aidb/aidb/internal/runs/oplock"
	"github.com/aidb/aidb/orchestrator"
)

// readPosition says whether process pid has file open and, if so, how far
// it has read it (the open file's offset, from /proc/<pid>/fdinfo): an
// outside view of how far a restore or verification has streamed a backup.
func readPosition(t *testing.T, pid int, file string) (int64, bool) {
	t.Helper()
	want, err := filepath.EvalSymlinks(file)
	require.NoError(t, err)
	return positionIn(t, pid, want)
}

// positionIn is readPosition for a path already resolved (the file may be
// gone or replaced since: the process's descriptor still names it).
func positionIn(t *testing.T, pid int, want string) (int64, bool) {
	t.Helper()
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return 0, false // the process is gone
	}
	for _, fd := range fds {
		link, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if err != nil || strings.TrimSuffix(link, " (deleted)") != want {
			continue
		}
		info, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/fdinfo/" + fd.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "pos:"); ok {
				pos, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				require.NoError(t, err)
				return pos, true
			}
		}
	}
	return 0, false
}

// containersWithRole lists the IDs of the project's containers with role.
func containersWithRole(t *testing.T, p *project, role string) []string {
	t.Helper()
	cs, err := docker.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: make(client.Filters).
		Add("label", orchestrator.LabelProject+"="+p.name).Add("label", orchestrator.LabelRole+"="+role)})
	require.NoError(t, err)
	ids := make([]string, len(cs.Items))
	for i, c := range cs.Items {
		ids[i] = c.ID
	}
	return ids
}

// loading says whether a restore's parallel load is under way in
// container ctr (see loadingAt), asked over its published port as its
// superuser (from the container's environment): no process is started in
// the container, which the test freezes next.
func loading(t *testing.T, ctr string) bool {
	in, err := docker.ContainerInspect(t.Context(), ctr, client.ContainerInspectOptions{})
	if err != nil || in.Container.Config == nil || in.Container.NetworkSettings == nil {
		return false
	}
	env := map[string]string{}
	for _, kv := range in.Container.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var port string
	for _, bs := range in.Container.NetworkSettings.Ports {
		for _, b := range bs {
			port = b.HostPort
		}
	}
	if port == "" {
		return false
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]),
		Host: "127.0.0.1:" + port, Path: "/" + env["POSTGRES_DB"], RawQuery: "sslmode=disable"}
	return loadingAt(t, u.String())
}

// loadingAt says whether a restore's parallel load is under way on the
// server at dbURL: a session of it is connected to the temporary database,
// which it does once it opened the file, before it reads past its start.
func loadingAt(t *testing.T, dbURL string) bool {
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		return false
	}
	defer func() { _ = conn.Close(context.WithoutCancel(t.Context())) }()
	var n int
	err = conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname LIKE '%\_aidb\_restore\_%'`).Scan(&n)
	return err == nil && n > 0
}

// TestVerifyThrowawayKilledMidLoad kills the throwaway container a
// verification restores into while the file is loading.
func TestVerifyThrowawayKilledMidLoad(t *testing.T) {
	t.Parallel()
	p := newProject(t, "fvkill")
	dir := p.backupDir()
	p.seeded("3000", "memorydb")
	url := p.status()["memorydb"].URL
	file := p.backupJSON("memorydb").Files[0].Path
	st, err := os.Stat(file)
	require.NoError(t, err)
	source := content(t, url)

	cmd := p.command(t.Context(), "verify", file)
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	// The load is under way once aidb streams the file (opened after the
	// checksum pass) and its sessions load the throwaway's temporary
	// database. The throwaway is frozen first, so the kill lands
	// before the load can finish.
	waitFor(t, 2*time.Minute, func() bool {
		_, open := readPosition(t, cmd.Process.Pid, file)
		ids := containersWithRole(t, p, orchestrator.RoleVerify)
		return open && len(ids) == 1 && loading(t, ids[0])
	})
	ids := containersWithRole(t, p, orchestrator.RoleVerify)
	require.Len(t, ids, 1)
	// The freezer can refuse a container whose sessions are busy writing
	// ("unable to freeze"): it is asked again until it succeeds.
	waitFor(t, 30*time.Second, func() bool {
		_, err := docker.ContainerPause(t.Context(), ids[0], client.ContainerPauseOptions{})
		if err != nil {
			t.Logf("pause the throwaway: %v", err)
		}
		return err == nil
	})
	pos, open := readPosition(t, cmd.Process.Pid, file)
	require.True(t, open, "aidb still streams the file")
	require.Less(t, pos, st.Size(), "the file is still loading when its server dies")
	_, err = docker.ContainerKill(t.Context(), ids[0], client.ContainerKillOptions{Signal: "SIGKILL"})
	require.NoError(t, err)

	_ = cmd.Wait()
	assert.Equal(t, 1, cmd.ProcessState.ExitCode(), "could not verify: neither equal (0) nor a difference (3)\n%s", stderr.String())
	assert.Contains(t, stderr.String(), "NOT VERIFIED")
	assert.Contains(t, stderr.String(), filepath.Base(file)+": not verified: ", "the reason, below the table")
	assert.Contains(t, stderr.String(), "the throwaway container "+ids[0][:12]+" stopped while the file was loading (exited, exit code 137: killed")
	assert.Empty(t, containersWithRole(t, p, orchestrator.RoleVerify), "no throwaway container left")
	assert.Empty(t, containersWithRole(t, p, orchestrator.RoleLoad), "no psql helper left")
	assert.Empty(t, partials(t, dir))
	assert.Equal(t, source, content(t, url), "the source database is unchanged")
}

// lockFree checks that nothing holds the database's operation lock or the
// backup folder's lock: each is taken at once (within 1 s) and given back.
func lockFree(t *testing.T, url, dir string) {
	t.Helper()
	l, err := oplock.Database(t.Context(), url, "aidb lock check", time.Second, nil)
	require.NoError(t, err, "the database's operation lock is free")
	require.NoError(t, l.Release(t.Context()))
	f, err := oplock.Folder(t.Context(), dir, "aidb lock check", time.Second, nil)
	require.NoError(t, err, "the backup folder's lock is free")
	require.NoError(t, f.Release())
}

// copyBackup copies a backup file and its manifest to dst.
func copyBackup(t *testing.T, src, dst string) {
	t.Helper()
	copyFile(t, src, dst)
	copyFile(t, manifest.PathFor(src), manifest.PathFor(dst))
}

// TestBackupFileChangedDuringRestore deletes, replaces and overwrites the
// file a full and a data-only restore are streaming. The restore reads the
// file it opened and checked: a name deleted or renamed over does not
// change what it reads, so it restores that file whole (exit 0); bytes
// overwritten in place make the stream's sha256 differ from the manifest
// at its end, before COMMIT is sent, so nothing changes (exit 1).
func TestBackupFileChangedDuringRestore(t *testing.T) {
	t.Parallel()
	p := newProject(t, "frchange")
	dir := p.backupDir()
	p.seeded("3000", "memorydb")
	st := p.status()
	url := st["memorydb"].URL
	db := st["memorydb"].Container

	// S1: what the restored files hold.
	full := p.backupJSON("memorydb").Files[0].Path
	data := p.backupJSON("memorydb", "--data-only").Files[0].Path
	s1 := content(t, url)
	// S2: another valid backup of each kind, to rename over them.
	_, err := connect(t, url).Exec(t.Context(), "DELETE FROM memory_links WHERE from_id % 3 = 0")
	require.NoError(t, err)
	full2 := p.backupJSON("memorydb").Files[0].Path
	data2 := p.backupJSON("memorydb", "--data-only").Files[0].Path
	// S3: what the database holds before each restore.
	diverge := func() map[string][]string {
		// A connection of its own: a full restore ends those to its target.
		_, err := connect(t, url).Exec(t.Context(), "DELETE FROM memory_links WHERE from_id % 3 <> 2; UPDATE memories SET content = 'changed' WHERE id < 50")
		require.NoError(t, err)
		return content(t, url)
	}

	cases := []struct {
		name    string
		kind    string // "" full, "--data-only"
		change  func(t *testing.T, file string)
		code    int
		message string
	}{
		{"full, overwritten in place", "", overwriteEnd, 1, "the file changed while it was being restored: its sha256 is now"},
		{"full, another backup renamed over it", "", renameOver(full2), 0, "memorydb: restored and verified"},
		{"full, deleted", "", deleteBackup, 0, "memorydb: restored and verified"},
		{"data-only, overwritten in place", "--data-only", overwriteEnd, 1, "the file changed while it was being restored: its sha256 is now"},
		{"data-only, another backup renamed over it", "--data-only", renameOver(data2), 0, "memorydb: restored and verified"},
		{"data-only, deleted", "--data-only", deleteBackup, 0, "memorydb: restored and verified"},
	}
	for i, c := range cases {
		src := full
		if c.kind != "" {
			src = data
		}
		file := filepath.Join(p.dir, fmt.Sprintf("case%d-%s", i, filepath.Base(src)))
		copyBackup(t, src, file)
		size := fileSize(t, file)
		before := diverge()
		require.NotEqual(t, s1, before)

		args := []string{"restore", "--yes"}
		if c.kind != "" {
			args = append(args, c.kind)
		}
		cmd := p.command(t.Context(), append(args, "memorydb", file)...)
		var stderr safeBuffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		// The file is open and streaming once the psql helper exists (a
		// data-only restore) or a session of a full restore's parallel
		// load is connected to the temporary database; freezing the server
		// then holds the stream near its start while the file changes.
		waitFor(t, 2*time.Minute, func() bool {
			if c.kind == "" {
				return loadingAt(t, url)
			}
			return len(containersWithRole(t, p, orchestrator.RoleLoad)) > 0
		})
		waitFor(t, 30*time.Second, func() bool {
			_, err := docker.ContainerPause(t.Context(), db, client.ContainerPauseOptions{})
			if err != nil {
				t.Logf("pause the database: %v", err)
			}
			return err == nil
		})
		resolved, err := filepath.EvalSymlinks(file)
		require.NoError(t, err)
		c.change(t, file)
		// Read after the change, the server still frozen: everything aidb
		// had read when the file changed lies below this position, so the
		// change lands mid-stream when the file's last kilobyte (the end
		// overwriteEnd changes) lies above it.
		pos, open := positionIn(t, cmd.Process.Pid, resolved)
		if assert.True(t, open, "%s: aidb streams the file", c.name) {
			assert.Less(t, pos, size-1024, "%s: the change lands mid-stream", c.name)
		}
		_, err = docker.ContainerUnpause(t.Context(), db, client.ContainerUnpauseOptions{})
		require.NoError(t, err)
		_ = cmd.Wait()

		assert.Equal(t, c.code, cmd.ProcessState.ExitCode(), "%s: %s", c.name, stderr.String())
		assert.Contains(t, stderr.String(), c.message, c.name)
		want := before
		if c.code == 0 {
			want = s1 // the file as it was when the restore opened it
		}
		assert.Equal(t, want, content(t, url), "%s: the database's content", c.name)
		assert.Empty(t, restoreLeftovers(t, url), "%s: no temporary database", c.name)
		assert.Empty(t, partials(t, dir), "%s: no partial file", c.name)
		assert.Empty(t, containersWithRole(t, p, orchestrator.RoleLoad), "%s: no psql helper", c.name)
		lockFree(t, url, dir)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	return st.Size()
}

// overwriteEnd changes one byte of pg_dump's closing comment, in place: the
// same file, the same size, other bytes.
func overwriteEnd(t *testing.T, file string) {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	i := bytes.LastIndex(raw, []byte("-- PostgreSQL database dump complete"))
	require.Positive(t, i)
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("X"), int64(i)+3)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// renameOver returns a change that renames a copy of another valid backup
// (and its manifest) over the file.
func renameOver(other string) func(t *testing.T, file string) {
	return func(t *testing.T, file string) {
		t.Helper()
		tmp := file + ".replacement.sql"
		copyBackup(t, other, tmp)
		require.NoError(t, os.Rename(tmp, file))
		require.NoError(t, os.Rename(manifest.PathFor(tmp), manifest.PathFor(file)))
	}
}

// deleteBackup removes the file and its manifest.
func deleteBackup(t *testing.T, file string) {
	t.Helper()
	require.NoError(t, os.Remove(file))
	require.NoError(t, os.Remove(manifest.PathFor(file)))
}

// tablesOf is a manifest's tables as "name: rows hash" lines: what it says
// the file holds.
func tablesOf(t *testing.T, file string) []string {
	t.Helper()
	var out []string
	for _, tb := range readManifest(t, file).Tables {
		rows := int64(-1)
		if tb.Rows != nil {
			rows = *tb.Rows
		}
		out = append(out, fmt.Sprintf("%s: %d %s", tb.Key(), rows, tb.Hash))
	}
	return out
}

// TestRestoresBackupAndMigrateRacing starts two restores, a backup and a
// migrate of rulesdb at the same moment: they take turns on the database's
// lock, each completes, and the database ends as one restored file holds.
func TestRestoresBackupAndMigrateRacing(t *testing.T) {
	t.Parallel()
	p := newProject(t, "frrace")
	dir := p.backupDir()
	p.seeded("1000", "rulesdb")
	url := p.status()["rulesdb"].URL
	change := func(sql string) {
		_, err := connect(t, url).Exec(t.Context(), sql)
		require.NoError(t, err)
	}
	fileA := p.backupJSON("rulesdb").Files[0].Path
	stateA := content(t, url)
	change("DELETE FROM rule_tags WHERE rule_id % 2 = 0; UPDATE rules SET body = 'B' WHERE id < 100")
	fileB := p.backupJSON("rulesdb").Files[0].Path
	stateB := content(t, url)
	change("DELETE FROM rule_versions WHERE id % 3 = 0; UPDATE rules SET body = 'C' WHERE id < 200")
	fileC := p.backupJSON("rulesdb").Files[0].Path
	require.NotEqual(t, stateA, stateB)

	// All four wait for this lock, then race for it when it is released.
	held, err := oplock.Database(t.Context(), url, "aidb test-holder", time.Second, nil)
	require.NoError(t, err)
	runs := []struct {
		name string
		args []string
	}{
		{"restore A", []string{"restore", "--yes", "rulesdb", fileA}},
		{"restore B", []string{"restore", "--yes", "rulesdb", fileB}},
		{"backup", []string{"backup", "--json", "rulesdb"}},
		{"migrate", []string{"migrate", "rulesdb"}},
	}
	cmds := make([]*exec.Cmd, len(runs))
	stdouts := make([]*safeBuffer, len(runs))
	stderrs := make([]*safeBuffer, len(runs))
	for i, r := range runs {
		cmds[i] = p.command(t.Context(), append(r.args, "--lock-timeout", "5m")...)
		stdouts[i], stderrs[i] = &safeBuffer{}, &safeBuffer{}
		cmds[i].Stdout, cmds[i].Stderr = stdouts[i], stderrs[i]
		require.NoError(t, cmds[i].Start())
	}
	waitFor(t, time.Minute, func() bool {
		for _, e := range stderrs {
			if !strings.Contains(e.String(), "rulesdb: waiting for another aidb operation to finish") {
				return false
			}
		}
		return true
	})
	require.NoError(t, held.Release(t.Context()))
	for i, r := range runs {
		_ = cmds[i].Wait()
		assert.Equal(t, 0, cmds[i].ProcessState.ExitCode(), "%s: %s", r.name, stderrs[i].String())
	}

	final := content(t, url)
	assert.True(t, reflect.DeepEqual(final, stateA) || reflect.DeepEqual(final, stateB),
		"rulesdb holds exactly what one of the restored files holds")

	// The racing backup holds one of the states rulesdb went through.
	var res backup.Result
	require.NoError(t, json.Unmarshal([]byte(stdouts[2].String()), &res), stdouts[2].String())
	require.Len(t, res.Files, 1)
	got := tablesOf(t, res.Files[0].Path)
	assert.True(t, slices.ContainsFunc([]string{fileA, fileB, fileC}, func(f string) bool { return slices.Equal(got, tablesOf(t, f)) }),
		"the backup taken during the race holds state A, B or C")

	// Every file in the folder (the three taken before, the racing backup,
	// each restore's safety backup) matches its manifest and restores.
	code, results, stderr := p.verifyJSON("--all")
	assert.Equal(t, 0, code, stderr)
	assert.Len(t, results, 6)
	assert.Empty(t, restoreLeftovers(t, url), "no temporary database")
	assert.Empty(t, partials(t, dir), "no partial file")
	lockFree(t, url, dir)
	r := p.aidb("backup", "rulesdb", "--lock-timeout", "1s")
	assert.Equal(t, 0, r.code, "a fresh operation finds no lock held: %s", r.stderr)
}

// TestReadOnlyBackupFolder points the backups at a folder mounted
// read-only (root ignores file modes, so a mode alone would not do).
func TestReadOnlyBackupFolder(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root: a read-only bind mount needs it")
		}
		t.Skip("a read-only bind mount needs root")
	}
	p := newProject(t, "frro")
	src := p.backupDir()
	p.seeded("100")
	p.backupJSON("rulesdb") // the folder holds a backup and the lock file
	url := p.status()["rulesdb"].URL
	before := content(t, url)

	dir := filepath.Join(p.dir, "read-only")
	require.NoError(t, os.MkdirAll(dir, 0o700))
	out, err := exec.Command("mount", "--bind", src, dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	out, err = exec.Command("mount", "-o", "remount,bind,ro", dir).CombinedOutput()
	require.NoError(t, err, "%s", out)
	p.env = append(p.env, "AIDB_BACKUP_DIR="+dir)
	files := folderSums(t, dir)

	for _, args := range [][]string{
		{"backup", "rulesdb"},
		{"backup", "--data-only"},
		{"restore", "--yes", "rulesdb", filepath.Join(dir, "rulesdb-latest.sql")}, // its safety backup goes there
	} {
		r := p.aidb(args...)
		assert.Equal(t, 1, r.code, "%v: %s", args, r.stderr)
		assert.Contains(t, r.stderr, "the backup folder "+dir+" is not writable (read-only file system)", args)
		assert.Equal(t, files, folderSums(t, dir), "%v: the folder is as it was", args)
		assert.Equal(t, before, content(t, url), "%v: rulesdb is as it was", args)
		assert.Zero(t, dumpHelpers(t, p), args)
		assert.Empty(t, restoreLeftovers(t, url), args)
	}
}

// folderSums maps each file of dir to its sha256.
func folderSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string]string{}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		require.NoError(t, err)
		out[de.Name()] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	return out
}

// slowMigration sleeps inside its transaction, after a change that must
// not outlive an interruption; the sleep is 300 s unless the database sets
// aidbtest.sleep (for the run that should apply it).
const slowMigration = `-- +goose Up
CREATE TABLE slow_effect (id int);
INSERT INTO slow_effect VALUES (1);
SELECT pg_sleep(coalesce(current_setting('aidbtest.sleep', true), '300')::float);
-- +goose Down
DROP TABLE slow_effect;
`

func TestMigrateInterrupted(t *testing.T) {
	t.Parallel()
	p := newProject(t, "frmig")
	p.backupDir()
	userMigrations(t, p, map[string]string{
		"00001_first.sql": "-- +goose Up\nCREATE TABLE first (id int);\n-- +goose Down\nDROP TABLE first;\n",
		"00002_slow.sql":  slowMigration,
	})
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	url := p.status()["rulesdb"].URL
	conn := connect(t, url)

	for i, sig := range []struct {
		signal syscall.Signal
		code   int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		cmd := p.command(t.Context(), "migrate", "rulesdb")
		var stderr safeBuffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		// The slow migration runs once its sleep is under way.
		waitFor(t, time.Minute, func() bool {
			var n int
			err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()").Scan(&n)
			return err == nil && n > 0
		})
		start := time.Now()
		require.NoError(t, cmd.Process.Signal(sig.signal))
		_ = cmd.Wait()
		assert.Equal(t, sig.code, cmd.ProcessState.ExitCode(), "%s: %s", sig.signal, stderr.String())
		assert.Less(t, time.Since(start), 5*time.Second, "stops promptly (a bound on a hang, not a speed test)")
		if i == 0 {
			assert.Contains(t, stderr.String(), "rulesdb: applied 00001_first.sql", "what stays applied is said")
		}

		assert.Equal(t, []int64{1}, appliedVersions(t, conn), "%s: the slow migration is not recorded", sig.signal)
		assert.Equal(t, []string{"first"}, tables(t, conn), "%s: its table was rolled back", sig.signal)
		// The server ends a session a moment after its client closed it.
		// The interrupted sleep would hold its session (and the migration
		// lock) for 300 s.
		var sessions, advisory int
		waitFor(t, 10*time.Second, func() bool {
			err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'aidb %'").Scan(&sessions)
			return err == nil && sessions == 0
		})
		require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").Scan(&advisory))
		assert.Zero(t, advisory, "%s: neither the migration lock nor the operation lock is held", sig.signal)
	}

	// A rerun, without the sleep, applies it.
	_, err := conn.Exec(t.Context(), "ALTER DATABASE rulesdb SET aidbtest.sleep = '0'")
	require.NoError(t, err)
	r := p.aidb("migrate", "rulesdb", "--lock-timeout", "1s")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: applied 00002_slow.sql")
	assert.Equal(t, []int64{1, 2}, appliedVersions(t, conn))
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM slow_effect").Scan(&n))
	assert.Equal(t, 1, n)
}

// buildProcesses lists the live processes that name root in their
// arguments or work or are chrooted inside it: debootstrap and its
// children.
func buildProcesses(root string) []string {
	var out []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		stat, err := os.ReadFile(d + "/stat")
		if err != nil || strings.Contains(string(stat[bytes.LastIndexByte(stat, ')')+1:]), " Z ") {
			continue // gone, or a zombie
		}
		cmdline, _ := os.ReadFile(d + "/cmdline")
		args := strings.ReplaceAll(string(cmdline), "\x00", " ")
		cwd, _ := os.Readlink(d + "/cwd")
		chroot, _ := os.Readlink(d + "/root")
		if strings.Contains(args, root) || strings.HasPrefix(cwd, root) || strings.HasPrefix(chroot, root) {
			out = append(out, d+": "+args)
		}
	}
	return out
}

// TestImageBuildInterrupted presses Ctrl-C while aidb image build runs
// debootstrap, under a tag of the test's own (the shared
// aidb.local/postgres:15 other tests run must stay as it is).
func TestImageBuildInterrupted(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root: debootstrap needs it")
		}
		t.Skip("debootstrap needs root")
	}
	// Under CI, aidb installs debootstrap itself when it is missing (the
	// first run on a fresh machine); elsewhere the test leaves the host's
	// packages alone.
	if _, err := exec.LookPath("debootstrap"); err != nil && os.Getenv("CI") != "true" {
		t.Skip("debootstrap is not installed")
	}
	p := newProject(t, "fimage")
	tag := "aidb.local/" + p.name + "-build:15"
	shared, err := docker.ImageInspect(t.Context(), pgimage.Tag("15"))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = docker.ImageRemove(context.WithoutCancel(t.Context()), tag, client.ImageRemoveOptions{})
	})

	cmd := p.command(t.Context(), "image", "build", "rulesdb", "--tag", tag)
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	into := regexp.MustCompile(`debootstrap \S+ with postgresql-15 from \S+ into (\S+)`)
	var root string
	waitFor(t, 3*time.Minute, func() bool {
		m := into.FindStringSubmatch(stderr.String())
		if m != nil {
			root = m[1]
		}
		return m != nil
	})
	t.Cleanup(func() {
		for _, line := range buildProcesses(root) {
			pid, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(line, ":", 2)[0], "/proc/"))
			if proc, err := os.FindProcess(pid); err == nil {
				_ = proc.Kill()
			}
		}
	})
	// Deep in: debootstrap's second stage, which mounts proc into the new
	// root and runs dpkg chrooted there; a killed debootstrap cannot
	// unmount it.
	waitFor(t, 5*time.Minute, func() bool {
		mounts, err := os.ReadFile("/proc/self/mountinfo")
		return err == nil && strings.Contains(string(mounts), root+"/") &&
			slices.ContainsFunc(buildProcesses(root), func(p string) bool { return !strings.Contains(p, "/usr/sbin/debootstrap ") })
	})
	// Deep in the build, people have seen a few stage lines, not
	// debootstrap's hundreds; those are in the build's log file.
	said := stderr.String()
	assert.Less(t, strings.Count(said, "\n"), 20, "one line per stage, not debootstrap's output:\n%s", said)
	assert.Contains(t, said, "building "+tag+": ", "a stage line names the build")
	logged, err := os.ReadFile(pgimage.LogPath(tag))
	require.NoError(t, err, "the build keeps its whole log")
	assert.Contains(t, string(logged), "I: Retrieving", "debootstrap's own lines are in the log")
	t.Cleanup(func() { _ = os.Remove(pgimage.LogPath(tag)) })
	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	_ = cmd.Wait()
	assert.Equal(t, 130, cmd.ProcessState.ExitCode(), stderr.String())
	assert.Less(t, time.Since(start), 5*time.Second, "stops promptly (a bound on a hang, not a speed test)")

	assert.Empty(t, buildProcesses(root), "debootstrap and every process it started are gone")
	_, err = os.Stat(root)
	assert.True(t, os.IsNotExist(err), "the build folder %s is removed: %v", root, err)
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	require.NoError(t, err)
	assert.NotContains(t, string(mounts), root, "nothing stays mounted in it")
	_, err = docker.ImageInspect(t.Context(), tag)
	assert.True(t, cerrdefs.IsNotFound(err), "no image tagged %s: %v", tag, err)
	now, err := docker.ImageInspect(t.Context(), pgimage.Tag("15"))
	require.NoError(t, err)
	assert.Equal(t, shared.ID, now.ID, "the shared image is as it was")
}

// image build --missing with the images there (TestMain made them): it
// builds nothing and changes no image, says each database's image is
// there, and refuses --tag beside it, changing nothing.
func TestImageBuildMissingLeavesPresentImagesAlone(t *testing.T) {
	t.Parallel()
	p := newProject(t, "imissing")
	before := map[string]string{}
	for _, ref := range []string{pgimage.Tag("15"), pgimage.Tag("17")} {
		in, err := docker.ImageInspect(t.Context(), ref)
		require.NoError(t, err)
		before[ref] = in.ID
	}
	r := p.aidb("image", "build", "--missing", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NotContains(t, r.stderr, "debootstrap", "nothing is built")
	assert.Contains(t, r.stderr, "rulesdb: ")
	assert.Contains(t, r.stderr, "memorydb: ")
	var out struct {
		Images []string `json:"images"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Len(t, out.Images, 2, "one image per database: %v", out.Images)

	bad := p.aidb("image", "build", "--missing", "--tag", "aidb.local/"+p.name+":15", "rulesdb")
	assert.Equal(t, 2, bad.code, bad.stderr)
	assert.Contains(t, bad.stderr, "--tag")
	for ref, id := range before {
		in, err := docker.ImageInspect(t.Context(), ref)
		require.NoError(t, err)
		assert.Equal(t, id, in.ID, "%s is as it was", ref)
	}
	assert.Empty(t, p.labelled(context.WithoutCancel(t.Context())), "no container, volume or network made")
}
