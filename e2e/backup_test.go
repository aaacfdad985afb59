package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/aidb/aidb/internal/archive/backupfile"
	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/postgres/fingerprint"
	"github.com/aidb/aidb/internal/postgres/migrations"
	"github.com/aidb/aidb/internal/store/folder"
	"github.com/aidb/aidb/orchestrator"
)

func TestBackupEveryKindWritesWholeCheckedFiles(t *testing.T) {
	t.Parallel()
	p := newProject(t, "bkkinds")
	dir := p.backupDir()
	p.seeded("150")

	type tc struct {
		kind backupfile.Kind
		comp backupfile.Compression
		via  string
	}
	var cases []tc
	for _, k := range []backupfile.Kind{backupfile.Full, backupfile.Schema, backupfile.Data} {
		for _, c := range []backupfile.Compression{backupfile.None, backupfile.Gzip, backupfile.Zstd} {
			via := "helper"
			if c == backupfile.Gzip {
				via = "stream" // the exec-stream fallback makes the same files
			}
			cases = append(cases, tc{k, c, via})
		}
	}
	for _, c := range cases {
		args := []string{"--compress", string(c.comp), "--via", c.via}
		switch c.kind {
		case backupfile.Schema:
			args = append(args, "--schema-only")
		case backupfile.Data:
			args = append(args, "--data-only")
		}
		res := p.backupJSON(args...)
		require.Len(t, res.Files, 2, "both databases: %v", args)
		if assert.NotEmpty(t, res.Set) {
			assert.FileExists(t, res.Set, "a set manifest names both files")
		}
		for _, f := range res.Files {
			name := fmt.Sprintf("%s %s %s via %s", f.Database, c.kind, c.comp, c.via)
			parsed, ok := backupfile.Parse(filepath.Base(f.Path))
			require.True(t, ok, name)
			assert.Equal(t, f.Database, parsed.Database, name)
			assert.Equal(t, c.kind, parsed.Kind, name)
			assert.Equal(t, c.comp, parsed.Compression, name)

			st, err := os.Stat(f.Path)
			require.NoError(t, err, name)
			assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "%s: private file", name)

			m := readManifest(t, f.Path)
			assert.Equal(t, f.Database, m.Database, name)
			assert.Equal(t, c.kind, m.Kind, name)
			assert.Equal(t, filepath.Base(f.Path), m.File, name)
			assert.Equal(t, st.Size(), m.Size, name)
			b, err := os.ReadFile(f.Path)
			require.NoError(t, err)
			sum := sha256.Sum256(b)
			assert.Equal(t, hex.EncodeToString(sum[:]), m.SHA256, "%s: sha256 of the file's bytes", name)
			assert.NotEmpty(t, m.SchemaHash, name)
			// rulesdb runs postgres:15, memorydb pgvector/pgvector:pg17.
			major, ok := map[string]string{"rulesdb": "15.", "memorydb": "17."}[f.Database]
			require.True(t, ok, name)
			assert.Contains(t, m.ServerVersion, major, name)
			assert.NotEmpty(t, m.Image, name)
			assert.Positive(t, m.MigrationVersion, name)

			counts := copyCounts(t, openPlain(t, f.Path))
			switch c.kind {
			case backupfile.Schema:
				// No data but the migration bookkeeping rows (version 0 and
				// one per applied migration), so a restore knows its version.
				goose := "public." + migrations.Table
				assert.Equal(t, map[string]int64{goose: m.MigrationVersion + 1}, counts, "%s: no data in a schema backup but the bookkeeping rows", name)
				for _, tb := range m.Tables {
					if tb.Key() == goose {
						require.NotNil(t, tb.Rows, name)
						assert.Equal(t, counts[goose], *tb.Rows, "%s: the manifest counts the bookkeeping rows", name)
						continue
					}
					assert.Nil(t, tb.Rows, "%s: %s", name, tb.Key())
				}
			default:
				require.NotEmpty(t, m.Tables, name)
				for _, tb := range m.Tables {
					require.NotNil(t, tb.Rows, name)
					assert.Equal(t, *tb.Rows, counts[tb.Key()], "%s: %s rows in the file equal the manifest", name, tb.Key())
				}
				assert.Len(t, counts, len(m.Tables), "%s: the manifest lists every table in the file", name)
			}
			goose := "public." + migrations.Table
			if c.kind == backupfile.Data {
				assert.NotContains(t, counts, goose, "%s: data-only leaves out the migration table", name)
				for _, tb := range m.Tables {
					assert.NotEqual(t, goose, tb.Key(), name)
				}
			}
			if c.kind == backupfile.Full {
				assert.Contains(t, counts, goose, name)
				latest := filepath.Join(dir, backupfile.LatestName(f.Database, c.comp))
				target, err := filepath.EvalSymlinks(latest)
				require.NoError(t, err, name)
				assert.Equal(t, f.Path, target, "%s: the latest pointer names the newest full backup", name)
			}
		}
	}
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), "private folder")
	assert.Empty(t, partials(t, dir))
	// Sequences come from the file: the memories sequence is past the seeded rows.
	m := readManifest(t, filepath.Join(dir, "memorydb-latest.sql.zst"))
	var found bool
	for _, s := range m.Sequences {
		if s.Name == "public.memories_id_seq" {
			found = true
			assert.Equal(t, int64(150), s.Value)
		}
	}
	assert.True(t, found, "sequences: %v", m.Sequences)
}

// restoreWithPlainPsql starts a fresh container of the image, loads the
// file with the image's own psql (no aidb), and returns a connection to it.
func restoreWithPlainPsql(t *testing.T, projectName, file string) *pgx.Conn {
	t.Helper()
	conn, _ := restoreWithPlainPsqlIn(t, projectName, file)
	return conn
}

// restoreWithPlainPsqlIn is restoreWithPlainPsql that also returns the
// container's ID.
func restoreWithPlainPsqlIn(t *testing.T, projectName, file string) (*pgx.Conn, string) {
	t.Helper()
	ctx := t.Context()
	// The image the backup was taken on (memorydb's has pgvector), else
	// the local postgres:15.
	image := "aidb.local/postgres:15"
	if _, err := os.Stat(file + ".manifest.json"); err == nil {
		image = readManifest(t, file).Image
	}
	ctr, err := testcontainers.Run(ctx, image,
		testcontainers.WithEnv(map[string]string{"POSTGRES_PASSWORD": "plain", "POSTGRES_DB": "restored"}),
		testcontainers.WithExposedPorts("5432/tcp"),
		testcontainers.WithLabels(orchestrator.Labels(projectName+"-plain", "plain", "test")),
		testcontainers.WithWaitStrategy(wait.ForLog("database system is ready to accept connections").WithOccurrence(2).WithStartupTimeout(time.Minute)),
	)
	testcontainers.CleanupContainer(t, ctr)
	require.NoError(t, err)
	plain, err := io.ReadAll(openPlain(t, file))
	require.NoError(t, err)
	require.NoError(t, ctr.CopyToContainer(ctx, plain, "/tmp/dump.sql", 0o644))
	code, out, err := ctr.Exec(ctx, []string{"psql", "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-q", "-U", "postgres", "-d", "restored", "-f", "/tmp/dump.sql"}, tcexec.Multiplexed())
	require.NoError(t, err)
	msg, _ := io.ReadAll(out)
	require.Equal(t, 0, code, "psql: %s", msg)
	host, err := ctr.Host(ctx)
	require.NoError(t, err)
	port, err := ctr.MappedPort(ctx, "5432/tcp")
	require.NoError(t, err)
	return connect(t, fmt.Sprintf("postgres://postgres:plain@%s:%d/restored?sslmode=disable", host, port.Num())), ctr.GetContainerID()
}

func TestFullBackupRestoresWithPlainPsqlAndMatchesManifest(t *testing.T) {
	t.Parallel()
	p := newProject(t, "bkplain")
	p.backupDir()
	p.seeded("120")
	res := p.backupJSON("--compress", "zstd")

	for _, f := range res.Files {
		m := readManifest(t, f.Path)
		conn := restoreWithPlainPsql(t, p.name, f.Path)
		require.NoError(t, fingerprint.Prepare(t.Context(), conn))
		// Described as the manifest's format describes it: with owners and
		// privileges (format 4), which plain psql brings back too, into a
		// server whose superuser is another (its roles block creates them).
		got, err := fingerprint.Take(t.Context(), conn, fingerprint.Options{Data: true, MigrationTable: m.MigrationTable, Privileges: m.PrivilegeForm()})
		require.NoError(t, err)
		assert.Equal(t, m.SchemaHash, got.SchemaHash, "%s: same schema after a plain psql restore", f.Database)
		assert.Equal(t, m.Tables, got.Tables, "%s: same tables, row counts and content hashes", f.Database)
		assert.Equal(t, m.MigrationVersion, got.MigrationVersion, f.Database)
		for _, s := range m.Sequences {
			var v int64
			require.NoError(t, conn.QueryRow(t.Context(), "SELECT last_value FROM "+s.Name).Scan(&v))
			assert.Equal(t, s.Value, v, "%s: sequence %s", f.Database, s.Name)
		}
	}
}

func TestBackupManifestMatchesFileWithConcurrentWriters(t *testing.T) {
	t.Parallel()
	p := newProject(t, "bkwriters")
	p.backupDir()
	p.seeded("2000", "rulesdb")
	url := p.status()["rulesdb"].URL

	// A writer inserts rules for the whole backup.
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		n := 0
		defer func() { done <- n }()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return
		}
		defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
		for ctx.Err() == nil {
			if _, err := conn.Exec(ctx, "INSERT INTO rules (project_id, name, body) VALUES (1, 'w-' || clock_timestamp(), repeat('x', 500))"); err == nil {
				n++
			}
		}
	}()
	// Wait until the writer is busy, so the backup runs among writes.
	conn := connect(t, url)
	waitFor(t, 30*time.Second, func() bool {
		var n int
		return conn.QueryRow(t.Context(), "SELECT count(*) FROM rules WHERE name LIKE 'w-%'").Scan(&n) == nil && n > 50
	})
	var files []string
	for range 3 {
		res := p.backupJSON("rulesdb")
		files = append(files, res.Files[0].Path)
	}
	stop()
	written := <-done
	require.Positive(t, written)

	for _, f := range files {
		m := readManifest(t, f)
		counts := copyCounts(t, openPlain(t, f))
		for _, tb := range m.Tables {
			assert.Equal(t, *tb.Rows, counts[tb.Key()], "%s: %s: the manifest counts exactly the rows in the file", filepath.Base(f), tb.Key())
		}
	}
}

func TestBackupRefusals(t *testing.T) {
	t.Parallel()
	p := newProject(t, "bkrefuse")
	dir := p.backupDir()

	r := p.aidb("backup")
	assert.Equal(t, 1, r.code)
	assert.Regexp(t, `run aidb up (memorydb rulesdb|rulesdb memorydb|rulesdb|memorydb) first`, r.stderr, "run by hand, advice names aidb commands")

	r = p.aidb("backup", "--schema-only", "--data-only")
	assert.Equal(t, 2, r.code)
	r = p.aidb("backup", "--compress", "lz4")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "none, gzip or zstd")
	r = p.aidb("backup", "nosuchdb")
	assert.Equal(t, 2, r.code)

	// A backup folder that cannot be created.
	require.Equal(t, 0, p.aidb("up", "rulesdb").code)
	blocker := filepath.Join(p.dir, "not-a-folder")
	require.NoError(t, os.WriteFile(blocker, []byte("x"), 0o600))
	r = p.run(t.Context(), "backup", "rulesdb")
	assert.Equal(t, 0, r.code, "a fine folder: %s", r.stderr)
	p.env = append(p.env, "AIDB_BACKUP_DIR="+filepath.Join(blocker, "backups"))
	r = p.aidb("backup", "rulesdb")
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "backup folder")
	assert.Empty(t, partials(t, dir))
}

// blockDump holds an ACCESS EXCLUSIVE lock on rules, so a backup's pg_dump
// (and its scan) wait: the backup is then reliably mid-way. It returns the
// release function.
func blockDump(t *testing.T, url string) func() {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	tx, err := conn.Begin(t.Context())
	require.NoError(t, err)
	_, err = tx.Exec(t.Context(), "LOCK TABLE rules IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	released := false
	release := func() {
		if !released {
			released = true
			_ = tx.Rollback(context.WithoutCancel(t.Context()))
			_ = conn.Close(context.WithoutCancel(t.Context()))
		}
	}
	t.Cleanup(release)
	return release
}

// dumpHelpers counts the project's pg_dump helper containers.
func dumpHelpers(t *testing.T, p *project) int {
	t.Helper()
	cs, err := docker.ContainerList(context.WithoutCancel(t.Context()), client.ContainerListOptions{All: true, Filters: make(client.Filters).
		Add("label", orchestrator.LabelProject+"="+p.name).Add("label", orchestrator.LabelRole+"="+orchestrator.RoleDump)})
	require.NoError(t, err)
	return len(cs.Items)
}

func TestBackupInterruptedOrKilledLeavesNoFile(t *testing.T) {
	t.Parallel()
	p := newProject(t, "bkfault")
	dir := p.backupDir()
	p.seeded("50", "rulesdb")
	st := p.status()
	rulesURL := st["rulesdb"].URL
	password := strings.Split(strings.Split(strings.TrimPrefix(rulesURL, "postgres://"), "@")[0], ":")[1]

	// Ctrl-C mid-dump.
	release := blockDump(t, rulesURL)
	cmd := p.command(t.Context(), "backup", "rulesdb")
	var stderr safeBuffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, 30*time.Second, func() bool { return len(partials(t, dir)) > 0 && dumpHelpers(t, p) == 1 })

	// While the dump runs, the password is in no process's arguments.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err == nil {
			assert.NotContains(t, string(b), password, "%s shows the password", f)
		}
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err := cmd.Wait()
	assert.Error(t, err)
	assert.Equal(t, 130, cmd.ProcessState.ExitCode(), stderr.String())
	release()
	assert.Empty(t, partials(t, dir), "the partial file and the pipe are removed")
	entries, err := folder.List(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "no file with a final name")
	assert.Zero(t, dumpHelpers(t, p), "the helper container is removed")

	// The database container dies mid-dump.
	release = blockDump(t, rulesURL)
	cmd = p.command(t.Context(), "backup", "rulesdb")
	stderr = safeBuffer{}
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitFor(t, 30*time.Second, func() bool { return len(partials(t, dir)) > 0 && dumpHelpers(t, p) == 1 })
	_, err = docker.ContainerKill(t.Context(), st["rulesdb"].Container, client.ContainerKillOptions{Signal: "SIGKILL"})
	require.NoError(t, err)
	err = cmd.Wait()
	assert.Error(t, err)
	assert.Equal(t, 1, cmd.ProcessState.ExitCode(), stderr.String())
	release()
	assert.Empty(t, partials(t, dir))
	entries, err = folder.List(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
	assert.Zero(t, dumpHelpers(t, p))
}

func TestNukeTakesSafetyBackupFirst(t *testing.T) {
	t.Parallel()
	p := newProject(t, "bknuke")
	dir := p.backupDir()
	p.seeded("40")
	require.Equal(t, 0, p.aidb("down", "memorydb").code, "a stopped database is backed up too")

	r := p.aidb("nuke", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "rulesdb: safety backup in "+dir)
	assert.Contains(t, r.stderr, "memorydb: safety backup in "+dir)
	assert.Empty(t, p.labelled(t.Context()))
	// The safety backups are marked as such, whole, and hold the rows; they
	// are not the user's backups, so no latest pointer names them.
	safety := map[string]string{}
	for f, b := range p.list() {
		require.NotNil(t, b.Safety, f)
		assert.Equal(t, "aidb nuke", b.Safety.Command, f)
		safety[b.Database] = f
	}
	for _, db := range []string{"rulesdb", "memorydb"} {
		require.Contains(t, safety, db)
		m := readManifest(t, safety[db])
		require.NoError(t, manifest.Check(safety[db], m))
		var rows int64
		for _, tb := range m.Tables {
			rows += *tb.Rows
		}
		assert.Positive(t, rows, db)
		assert.NoFileExists(t, filepath.Join(dir, db+"-latest.sql"))
	}

	// Nothing to back up: an empty database needs no safety backup.
	require.Equal(t, 0, p.aidb("up").code)
	r = p.aidb("nuke", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "holds no tables; no safety backup needed")
}

func TestListAndPrune(t *testing.T) {
	t.Parallel()
	p := newProject(t, "bklist")
	dir := p.backupDir()
	p.seeded("20")
	var files []string
	for range 3 {
		files = append(files, p.backupJSON("rulesdb").Files[0].Path)
	}
	p.backupJSON("memorydb", "--data-only")

	r := p.aidb("list", "--json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, 4, strings.Count(r.stdout, `"checksum_ok": true`), r.stdout)

	// A changed file is reported.
	require.NoError(t, os.WriteFile(files[0], []byte("tampered"), 0o600))
	r = p.aidb("list", "--json")
	assert.Equal(t, 1, strings.Count(r.stdout, `"checksum_ok": false`), r.stdout)
	// As text: the folder once, its files by name, what is wrong below
	// the table; and such a name is what verify and restore take.
	r = p.aidb("list")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "in "+dir+":")
	assert.NotContains(t, strings.SplitN(r.stderr, "\n", 2)[1], dir+string(filepath.Separator), "names, not paths, under the folder's line")
	assert.Contains(t, r.stderr, "BAD (1, below)")
	assert.Contains(t, r.stderr, "BAD (1) "+filepath.Base(files[0])+": ")
	r = p.aidb("verify", filepath.Base(files[2]))
	assert.Equal(t, 0, r.code, "a bare name is the backup folder's file: %s", r.stderr)

	r = p.aidb("prune", "--keep-last", "0")
	assert.Equal(t, 2, r.code, "refuses to remove every backup")
	r = p.aidb("prune", "--keep-last", "1")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stderr, "remove 1", "the changed file counts for nothing and is left alone")
	for _, f := range files {
		assert.FileExists(t, f, "nothing removed without --yes")
	}
	r = p.aidb("prune", "--keep-last", "1", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.FileExists(t, files[0], "left alone: damaged")
	assert.NoFileExists(t, files[1])
	assert.NoFileExists(t, manifest.PathFor(files[1]))
	assert.FileExists(t, files[2])
	r = p.aidb("prune", "--keep-last", "1", "--remove-damaged", "--yes")
	require.Equal(t, 0, r.code, r.stderr)
	assert.NoFileExists(t, files[0])
	assert.NoFileExists(t, manifest.PathFor(files[0]))
	assert.FileExists(t, files[2])
	target, err := filepath.EvalSymlinks(filepath.Join(dir, "rulesdb-latest.sql"))
	require.NoError(t, err)
	assert.Equal(t, files[2], target)
	entries, err := folder.List(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "the newest rulesdb and the memorydb data backup remain")
}
