package pgtools

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runScript runs streamsScript with sh, the outputs being plain files.
func runScript(t *testing.T, runs []ToolRun) (outs []string, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	var files []string
	for i := range runs {
		files = append(files, filepath.Join(dir, "out"+string(rune('a'+i))))
	}
	script := streamsScript(runs, []string{"--host=127.0.0.1"}, files, func(p string) string { return p })
	cmd := exec.Command("sh", "-c", script)
	var errb []byte
	cmd.Stderr = writerFunc(func(p []byte) { errb = append(errb, p...) })
	err = cmd.Run()
	for _, f := range files {
		b, _ := os.ReadFile(f)
		outs = append(outs, string(b))
	}
	return outs, string(errb), err
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func TestStreamsScriptQuotesAndRunsEveryRun(t *testing.T) {
	awkward := `it's "quoted" $HOME; echo no`
	outs, stderr, err := runScript(t, []ToolRun{
		{Name: "first", Tool: "printf", Args: []string{`%s|`, awkward}},
		{Name: "env", Tool: "sh", Args: []string{"-c", `printf %s "$AIDB_X"`}, Env: []string{"AIDB_X=a b'c"}, Lane: 1},
		{Name: "after first", Tool: "printf", Args: []string{`%s|`, "second in lane 0"}},
	})
	require.NoError(t, err, stderr)
	// The connection options come after the run's own arguments.
	assert.Equal(t, awkward+"|--host=127.0.0.1|", outs[0])
	assert.Equal(t, "a b'c", outs[1])
	assert.Equal(t, "second in lane 0|--host=127.0.0.1|", outs[2])
}

func TestStreamsScriptSaysWhichRunFailed(t *testing.T) {
	outs, stderr, err := runScript(t, []ToolRun{
		{Name: "psql (public.t, part 1 of 2)", Tool: "sh", Args: []string{"-c", "exit 3"}},
		{Name: "never", Tool: "printf", Args: []string{"x"}},
		{Name: "other lane", Tool: "printf", Args: []string{"ok"}, Lane: 2},
	})
	require.Error(t, err)
	assert.Contains(t, stderr, "aidb: psql (public.t, part 1 of 2) exited with code 3")
	// A lane stops at its first failure; the other lanes run on.
	assert.Empty(t, outs[1])
	assert.Equal(t, "ok", outs[2])
}

func TestRunFailureNamesTheFirstRunThatFailed(t *testing.T) {
	logs := "COPY data transfer failed: server closed the connection unexpectedly\naidb: psql (public.big, part 1 of 2) exited with code 2\npg_dump: error: broken pipe\naidb: pg_dump exited with code 1\n"
	err := runFailure(logs)
	require.NotNil(t, err)
	assert.Equal(t, "psql (public.big, part 1 of 2)", err.Tool)
	assert.Equal(t, 2, err.ExitCode)
	assert.Equal(t, "COPY data transfer failed: server closed the connection unexpectedly\n\npg_dump: error: broken pipe", err.Stderr)
	assert.Nil(t, runFailure("pg_dump: error: something\n"))
}
