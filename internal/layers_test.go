// Package internal_test keeps the layers of docs/architecture.md: the
// operations (internal/ops) are the top of the libraries, nothing imports
// the CLI, the kinds of failure and the project's configuration are the
// bottom, and libraries never print (only cmd talks to people).
package internal_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/aidb/aidb/"

// libraryFiles are the non-test Go files of the libraries: internal/,
// compose/ and orchestrator/, by their path from the module root.
func libraryFiles(t *testing.T) map[string]*ast.File {
	t.Helper()
	files := map[string]*ast.File{}
	fset := token.NewFileSet()
	for _, root := range []string{".", "../compose", "../orchestrator"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			rel := filepath.ToSlash(filepath.Join("internal", path))
			if strings.HasPrefix(root, "..") {
				rel = filepath.ToSlash(strings.TrimPrefix(path, "../"))
			}
			files[rel] = f
			return nil
		})
		require.NoError(t, err)
	}
	require.Greater(t, len(files), 100, "the walk found the libraries")
	return files
}

func imports(f *ast.File) []string {
	var out []string
	for _, imp := range f.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		if rest, ok := strings.CutPrefix(p, module); ok {
			out = append(out, rest)
		}
	}
	return out
}

// TestImportsPointDown: a library never imports cmd; only an operation
// imports another operation; the kinds of failure import nothing of
// aidb's, the configuration (compose) only them.
func TestImportsPointDown(t *testing.T) {
	t.Parallel()
	for path, f := range libraryFiles(t) {
		for _, imp := range imports(f) {
			assert.False(t, strings.HasPrefix(imp, "cmd/"), "%s imports the CLI (%s)", path, imp)
			if strings.HasPrefix(imp, "internal/ops/") {
				assert.True(t, strings.HasPrefix(path, "internal/ops/"), "%s imports an operation (%s): operations are the top of the libraries", path, imp)
			}
			if strings.HasPrefix(path, "internal/fault/") {
				assert.Fail(t, "the kinds of failure import nothing of aidb's", "%s imports %s", path, imp)
			}
			if strings.HasPrefix(path, "compose/") {
				assert.Equal(t, "internal/fault", imp, "%s: the configuration imports only the kinds of failure", path)
			}
		}
	}
}

// TestLibrariesNeverPrint: libraries report through return values,
// progress callbacks and loggers; only cmd writes to stdout and stderr.
func TestLibrariesNeverPrint(t *testing.T) {
	t.Parallel()
	for path, f := range libraryFiles(t) {
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			call := pkg.Name + "." + sel.Sel.Name
			switch call {
			case "fmt.Print", "fmt.Printf", "fmt.Println", "os.Stdout", "os.Stderr", "log.Print", "log.Printf", "log.Println", "log.Fatal", "log.Fatalf":
				assert.Fail(t, "a library prints", "%s uses %s: return it, or take a progress callback", path, call)
			}
			return true
		})
	}
}
