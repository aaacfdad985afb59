package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/archive/manifest"
	"github.com/aidb/aidb/internal/ops/backup"
)

// backupDir points the project's backups at a folder of its own and
// returns it.
func (p *project) backupDir() string {
	dir := filepath.Join(p.dir, "backups")
	p.env = append(p.env, "AIDB_BACKUP_DIR="+dir)
	return dir
}

// seeded brings the project's databases up, migrated and seeded: those
// named in dbs, or both when none is (each up is an initdb, and
// memorydb's seed builds an HNSW index: a test that uses rulesdb alone
// names it).
func (p *project) seeded(rows string, dbs ...string) {
	p.t.Helper()
	for _, args := range [][]string{{"up"}, {"migrate"}, {"seed", "--rows", rows}} {
		args = append(append([]string{args[0]}, dbs...), args[1:]...) // aidb seed rulesdb --rows N
		r := p.aidb(args...)
		require.Equal(p.t, 0, r.code, "aidb %v: %s", args, r.stderr)
	}
}

// backupJSON runs aidb backup --json with args and returns its result.
func (p *project) backupJSON(args ...string) backup.Result {
	p.t.Helper()
	r := p.aidb(append([]string{"backup", "--json"}, args...)...)
	require.Equal(p.t, 0, r.code, r.stderr)
	var res backup.Result
	require.NoError(p.t, json.Unmarshal([]byte(r.stdout), &res), r.stdout)
	return res
}

// openPlain opens a backup file, decompressing by its extension.
func openPlain(t *testing.T, path string) io.Reader {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	switch {
	case strings.HasSuffix(path, ".gz"):
		zr, err := gzip.NewReader(f)
		require.NoError(t, err)
		return zr
	case strings.HasSuffix(path, ".zst"):
		zr, err := zstd.NewReader(f)
		require.NoError(t, err)
		t.Cleanup(zr.Close)
		return zr
	}
	return f
}

// copyCounts reads a plain SQL dump and counts the data lines of each COPY
// block, by table (schema.name as the dump writes it): an independent
// reading of how many rows the file holds.
func copyCounts(t *testing.T, r io.Reader) map[string]int64 {
	t.Helper()
	counts := map[string]int64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	table := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case table != "" && line == `\.`:
			table = ""
		case table != "":
			counts[table]++
		case strings.HasPrefix(line, "COPY ") && strings.HasSuffix(line, " FROM stdin;"):
			table = strings.Fields(line)[1]
			counts[table] += 0
		}
	}
	require.NoError(t, sc.Err())
	return counts
}

// readManifest loads a backup's manifest.
func readManifest(t *testing.T, file string) manifest.Manifest {
	t.Helper()
	m, err := manifest.Read(file)
	require.NoError(t, err)
	return m
}

// partials lists leftover partial files and pipes in dir.
func partials(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	des, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".partial") || strings.HasPrefix(de.Name(), ".aidb-") {
			out = append(out, de.Name())
		}
	}
	return out
}

func readAll(r io.Reader) ([]byte, error) { return io.ReadAll(r) }

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, b, 0o600))
}

// execIn runs a command in a container and returns its standard output.
func execIn(t *testing.T, ctr string, cmd ...string) ([]byte, error) {
	t.Helper()
	ctx := t.Context()
	ex, err := docker.ExecCreate(ctx, ctr, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return nil, err
	}
	att, err := docker.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return nil, err
	}
	defer att.Close()
	var out, errOut bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errOut, att.Reader); err != nil {
		return nil, err
	}
	res, err := docker.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("%v: exit %d: %s", cmd, res.ExitCode, errOut.String())
	}
	return out.Bytes(), nil
}
