package restore

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/backupfile"
)

// A data-only restore's check runs in psql after the file: the check phase
// is reported when the file has been read, not before.
func TestScriptReportsCheckAfterTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "f.sql")
	require.NoError(t, os.WriteFile(path, []byte(sampleDump), 0o600))
	var phases []Phase
	var readAtCheck, lastRead int64
	p := Plan{
		Request: Request{
			Phase: func(ph Phase) { phases = append(phases, ph); readAtCheck = lastRead },
			Progress: func(read, total int64) {
				assert.Equal(t, int64(len(sampleDump)), total)
				lastRead = read
			},
		},
		Path: path, Size: int64(len(sampleDump)), Compression: backupfile.None,
	}
	r, closeScript, err := p.script(t.Context(), "TRUNCATE x;", "SELECT check();", PhaseCheck)
	require.NoError(t, err)
	defer closeScript()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(b), "SELECT check();\nCOMMIT;\n"))
	assert.Equal(t, []Phase{PhaseCheck}, phases, "load is reported by the caller, check once")
	assert.Equal(t, int64(len(sampleDump)), readAtCheck, "check comes after the whole file")

	// A full restore's script has nothing after the file: its check is the
	// fingerprint after psql, reported by stage.
	phases = nil
	r, closeScript2, err := p.script(t.Context(), "", "", "")
	require.NoError(t, err)
	defer closeScript2()
	_, err = io.ReadAll(r)
	require.NoError(t, err)
	assert.Empty(t, phases)
}

func TestReadyKeepsTheFileOrderWithinATable(t *testing.T) {
	t.Parallel()
	items := []postItem{
		{keys: []string{"public.a"}},
		{keys: []string{"public.a"}},
		{keys: []string{"public.b"}},
		{keys: []string{"public.b", "public.c"}},
		{keys: []string{"public.c"}},
	}
	assert.Equal(t, 0, ready(items, map[string]int{}), "the first item first")
	assert.Equal(t, 2, ready(items, map[string]int{"public.a": 1}), "a table being built waits; another goes ahead")
	assert.Equal(t, -1, ready(items[3:], map[string]int{"public.b": 1}),
		"an item waits for all its tables, and a later one on them waits for it")
	assert.Equal(t, 0, ready(items[3:], map[string]int{"public.a": 1}), "tables of other items do not hold it")
}
