package main

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCmdImportsNoSDK keeps the CLI thin: the engine and the databases are
// reached through the library packages (engine, orchestrator, pgrun,
// oplock, seed, ...), never through the Docker client or pgx directly.
func TestCmdImportsNoSDK(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		require.NoError(t, err, f)
		for _, imp := range parsed.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			for _, sdk := range []string{"github.com/jackc/pgx", "github.com/moby/moby", "github.com/docker/docker", "github.com/docker/compose", "github.com/docker/cli"} {
				assert.False(t, strings.HasPrefix(path, sdk), "%s imports %s: call a library package instead", f, path)
			}
		}
	}
}
