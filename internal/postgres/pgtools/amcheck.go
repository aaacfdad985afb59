package pgtools

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Amcheck is what pg_amcheck found in a throwaway's database.
type Amcheck struct {
	// Corruption holds pg_amcheck's report of each relation whose index
	// does not match its table (or whose heap is damaged), as it printed
	// it; empty when every check passed.
	Corruption []string `json:"corruption"`
	// NotChecked names the indexes pg_amcheck cannot check (only btree
	// indexes are: HNSW, GIN, GiST, BRIN and hash ones are not), with
	// their access method, e.g. "public.memories_embedding_idx (hnsw)".
	NotChecked []string `json:"not_checked"`
}

// Amcheck runs the image's pg_amcheck on database dbname of the throwaway:
// every table's heap, and every btree index against its table
// (--heapallindexed: each row has its index entry), installing the amcheck
// extension it needs (the throwaway is discarded). A report of corruption
// is no error: it comes back in Amcheck.Corruption. The wait is bounded
// by ctx only: pg_amcheck reads every table and index once.
func (t *Throwaway) Amcheck(ctx context.Context, dbname string) (Amcheck, error) {
	out := Amcheck{Corruption: []string{}, NotChecked: []string{}}
	stdout, stderr, code, err := t.r.exec(ctx, t.id, []string{"pg_amcheck", "--heapallindexed", "--install-missing",
		"--username=" + t.DB.User, dbname})
	if err != nil {
		return out, fmt.Errorf("run pg_amcheck in throwaway container %s: %w", t.id[:12], err)
	}
	switch code {
	case 0:
	case 2: // pg_amcheck: corruption found
		out.Corruption = amcheckReports(stdout)
		if len(out.Corruption) == 0 {
			out.Corruption = []string{strings.TrimSpace(stdout + stderr)}
		}
	default:
		return out, &ToolError{Tool: "pg_amcheck", ExitCode: code, Stderr: stderr}
	}
	stdout, stderr, code, err = t.r.exec(ctx, t.id, []string{"psql", "--no-psqlrc", "--no-align", "--tuples-only",
		"--username=" + t.DB.User, "--dbname=" + dbname, "--command=" + notCheckedQuery})
	if err == nil && code != 0 {
		err = &ToolError{Tool: "psql", ExitCode: code, Stderr: stderr}
	}
	if err != nil {
		return out, fmt.Errorf("list the indexes pg_amcheck does not check: %w", err)
	}
	var names []string
	for _, l := range strings.Split(stdout, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			names = append(names, l)
		}
	}
	out.NotChecked = append(out.NotChecked, names...)
	return out, nil
}

// notCheckedQuery lists the user indexes that are not btree indexes, with
// their access method.
const notCheckedQuery = `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) || ' (' || a.amname || ')'
	FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
	JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_am a ON a.oid = c.relam
	WHERE a.amname <> 'btree' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
	ORDER BY 1`

// amcheckReports splits pg_amcheck's output into one report per relation:
// a line naming it (`btree index "db.public.i":` or `heap table
// "db.public.t", block 0, offset 1:`) and the indented lines below it.
func amcheckReports(out string) []string {
	var reports []string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
		case strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t"):
			if len(reports) > 0 {
				reports[len(reports)-1] += " " + strings.TrimSpace(line)
			}
		default:
			reports = append(reports, strings.TrimSpace(line))
		}
	}
	return reports
}

// exec runs cmd in container id and returns its stdout, its stderr (each
// kept up to 64 KiB) and its exit code.
func (r *Runner) exec(ctx context.Context, id string, cmd []string) (string, string, int, error) {
	ex, err := r.docker.ExecCreate(ctx, id, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return "", "", 0, fmt.Errorf("start %s: %w", cmd[0], err)
	}
	att, err := r.docker.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return "", "", 0, fmt.Errorf("attach to %s: %w", cmd[0], err)
	}
	stop := context.AfterFunc(ctx, func() { att.Close() })
	defer stop()
	defer att.Close()
	var stdout, stderr bytes.Buffer
	if _, err := stdcopy.StdCopy(&limitedWriter{w: &stdout, n: 64 << 10}, &limitedWriter{w: &stderr, n: 64 << 10}, att.Reader); err != nil {
		if ctx.Err() != nil {
			return "", "", 0, ctx.Err()
		}
		return "", "", 0, fmt.Errorf("read %s's output: %w", cmd[0], err)
	}
	res, err := r.docker.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return "", "", 0, fmt.Errorf("inspect %s: %w", cmd[0], err)
	}
	return stdout.String(), stderr.String(), res.ExitCode, nil
}
