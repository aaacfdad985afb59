package pgtools

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/aidb/aidb/compose"
	"github.com/aidb/aidb/internal/postgres/dumpformat"
)

// Transport is how a client tool's output (pg_dump's) reaches aidb.
type Transport string

const (
	// TransportAuto picks TransportHelper where a helper's pipe carried a
	// token to this process (tried once per run: see paths), else
	// TransportStream.
	TransportAuto Transport = "auto"
	// TransportHelper runs the tool in a helper container of the database's
	// own image that shares the database container's network namespace and
	// writes into a named pipe in the bind-mounted backup folder; aidb reads
	// the pipe. The engine's attach stream (about 36 MB/s here) is not in
	// the path. Needs an engine that mounts the folder this process sees
	// and a pipe in it that carries data both ways: tried, not assumed.
	TransportHelper Transport = "helper"
	// TransportStream runs the tool with docker exec in the database
	// container and reads its output from the exec stream: works with any
	// engine, remote ones and those in a VM included.
	TransportStream Transport = "stream"
)

// ParseTransport accepts auto, helper and stream; helper only where the
// system has named pipes.
func ParseTransport(s string) (Transport, error) { return parseTransport(s, namedPipes) }

func parseTransport(s string, pipes bool) (Transport, error) {
	switch t := Transport(s); t {
	case TransportHelper:
		if !pipes {
			return "", fmt.Errorf("transport %q needs named pipes, which %s has none of: use stream (auto chooses it here)", s, runtime.GOOS)
		}
		return t, nil
	case TransportAuto, TransportStream:
		return t, nil
	case "":
		return TransportAuto, nil
	}
	return "", fmt.Errorf("transport %q: use auto, helper or stream", s)
}

// ToolError is a client tool (pg_dump) that failed; Stderr holds what it said.
type ToolError struct {
	Tool     string
	ExitCode int
	Stderr   string
}

func (e *ToolError) Error() string {
	return fmt.Sprintf("%s exited with code %d: %s", e.Tool, e.ExitCode, strings.TrimSpace(e.Stderr))
}

// Dump runs pg_dump with args in the database container and copies its
// output, read from the exec stream, to w. The connection options are
// added here. It returns when pg_dump has finished and w has everything,
// or on the first error. (Where the helper path works, backups go through
// StartStreams instead: the exec stream is the slow path, for engines that
// do not see this process's folder or its pipes.)
func (r *Runner) Dump(ctx context.Context, db compose.Database, args []string, w io.Writer) error {
	c, err := r.dbs.Running(ctx, db)
	if err != nil {
		return err
	}
	return r.dumpViaExec(ctx, db, c, args, w)
}

// dumpViaExec runs pg_dump inside the database container over its local
// socket (trusted there, so no password at all) and reads the exec stream.
func (r *Runner) dumpViaExec(ctx context.Context, db compose.Database, c container.Summary, args []string, w io.Writer) error {
	// In 1 MiB writes where the image has stdbuf: fewer, fuller frames for
	// the engine to carry.
	cmd := append([]string{"sh", "-c", withStdbuf + ` exec $SB pg_dump "$@"`, "pg_dump"}, args...)
	cmd = append(cmd, "--username="+db.User, "--dbname="+db.DBName)
	ex, err := r.docker.ExecCreate(ctx, c.ID, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: cmd, Env: dumpformat.DumpEnv()})
	if err != nil {
		return fmt.Errorf("start pg_dump in %s: %w", containerName(c), err)
	}
	att, err := r.docker.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("attach to pg_dump in %s: %w", containerName(c), err)
	}
	// Closing the connection on cancellation ends the copy below; pg_dump
	// then dies on its broken pipe.
	stop := context.AfterFunc(ctx, func() { att.Close() })
	defer stop()
	defer att.Close()
	var stderr bytes.Buffer
	_, copyErr := stdcopy.StdCopy(w, &limitedWriter{w: &stderr, n: 64 << 10}, att.Reader)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if copyErr != nil {
		return fmt.Errorf("read pg_dump output from %s: %w", containerName(c), copyErr)
	}
	res, err := r.docker.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect pg_dump in %s: %w", containerName(c), err)
	}
	if res.ExitCode != 0 {
		return &ToolError{Tool: "pg_dump", ExitCode: res.ExitCode, Stderr: stderr.String()}
	}
	return nil
}

// pgpassLine is a .pgpass entry for the database, escaped as libpq reads it.
func pgpassLine(db compose.Database) string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	return fmt.Sprintf("*:*:*:%s:%s\n", esc.Replace(db.User), esc.Replace(db.Password))
}

func randomTag() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// limitedWriter keeps the first n bytes written and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
