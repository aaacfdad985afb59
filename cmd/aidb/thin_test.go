package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// maxFuncLines bounds every function in cmd/aidb (literals too, a RunE
// included): a command parses its flags, makes one call into a library and
// prints. Logic that grows past it belongs in a library package.
const maxFuncLines = 40

// maxLinesPerCommand bounds cmd's non-test code per command (157 when it
// was set: 3,778 lines for 24 commands, about a third of it help text and
// flag descriptions): a new command brings its flags and output, its logic
// goes into a library.
const maxLinesPerCommand = 170

// TestCmdIsThin keeps the CLI thin: no function over maxFuncLines lines.
// Long help texts are constants, so they do not count.
func TestCmdIsThin(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fs := token.NewFileSet()
	checked, total, commands := 0, 0, 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(fs, f, nil, 0)
		require.NoError(t, err, f)
		total += fs.Position(parsed.End()).Line
		ast.Inspect(parsed, func(n ast.Node) bool {
			name := "a function literal"
			if lit, ok := n.(*ast.CompositeLit); ok {
				if sel, ok := lit.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Command" {
					commands++
				}
			}
			switch x := n.(type) {
			case *ast.FuncDecl:
				name = x.Name.Name
			case *ast.FuncLit:
			default:
				return true
			}
			checked++
			lines := fs.Position(n.End()).Line - fs.Position(n.Pos()).Line + 1
			assert.LessOrEqual(t, lines, maxFuncLines, "%s:%d: %s is %d lines: move its logic into a library package",
				f, fs.Position(n.Pos()).Line, name, lines)
			return true
		})
	}
	assert.Greater(t, checked, 50, "the check saw cmd's functions")
	require.Positive(t, commands, "the check saw cmd's commands")
	assert.LessOrEqual(t, total/commands, maxLinesPerCommand, "cmd/aidb has %d lines of code for %d commands: move logic into the libraries", total, commands)
}
