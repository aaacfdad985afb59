package dumpformat

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every rendering of the settings, read back, gives the one list: a
// setting added, removed or changed in ValueSettings reaches the
// fingerprint, the restore's check, pg_dump and the parts alike.
func TestEveryRenderingComesFromTheOneList(t *testing.T) {
	t.Parallel()
	want := ValueSettings()
	require.NotEmpty(t, want)

	var fromSet []Setting
	for _, stmt := range SetStatements(want) {
		fromSet = append(fromSet, parseSet(t, stmt, "SET "))
	}
	assert.Equal(t, want, fromSet, "SET statements")

	var fromLocal []Setting
	script := SetLocal(want)
	require.True(t, strings.HasSuffix(script, ";\n"), "one statement a line: %q", script)
	for _, l := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		fromLocal = append(fromLocal, parseSet(t, strings.TrimSuffix(l, ";"), "SET LOCAL "))
	}
	assert.Equal(t, want, fromLocal, "SET LOCAL script")

	dump := envOf(t, DumpEnv())
	assert.Equal(t, []string{"PGOPTIONS"}, keys(dump), "pg_dump's environment")
	assert.Equal(t, want, parsePGOptions(t, dump["PGOPTIONS"]), "pg_dump's PGOPTIONS")

	parts := envOf(t, CopyEnv("LATIN1"))
	assert.Equal(t, []string{"PGCLIENTENCODING", "PGOPTIONS"}, keys(parts), "the parts' environment")
	assert.Equal(t, "LATIN1", parts["PGCLIENTENCODING"])
	assert.Equal(t, append(want, dumpSession()...), parsePGOptions(t, parts["PGOPTIONS"]), "the parts' PGOPTIONS")
}

func TestRenderingsQuoteAndEscape(t *testing.T) {
	t.Parallel()
	odd := []Setting{{"application_name", `it's a\b`}}
	assert.Equal(t, []string{`SET application_name = 'it''s a\b'`}, SetStatements(odd))
	assert.Equal(t, "SET LOCAL application_name = 'it''s a\\b';\n", SetLocal(odd))
	assert.Equal(t, `-c application_name=it's\ a\\b`, PGOptions(odd))
	assert.Equal(t, odd, parsePGOptions(t, PGOptions(odd)))
	// The list as the fingerprint has always set it.
	assert.Contains(t, SetStatements(ValueSettings()), "SET DateStyle = 'ISO, YMD'")
	assert.Contains(t, PGOptions(ValueSettings()), `-c DateStyle=ISO,\ YMD -c IntervalStyle=postgres`)
}

// parseSet reads `<prefix>name = 'value'` back.
func parseSet(t *testing.T, stmt, prefix string) Setting {
	t.Helper()
	rest, ok := strings.CutPrefix(stmt, prefix)
	require.True(t, ok, "%q starts with %q", stmt, prefix)
	name, value, ok := strings.Cut(rest, " = ")
	require.True(t, ok, "%q has name = value", stmt)
	require.True(t, len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'', "%q: the value is a literal", stmt)
	return Setting{name, strings.ReplaceAll(value[1:len(value)-1], "''", "'")}
}

// parsePGOptions splits PGOPTIONS as the server does (pg_split_opts: a
// backslash escapes the next character, unescaped spaces separate) and
// reads its -c name=value pairs.
func parsePGOptions(t *testing.T, opts string) []Setting {
	t.Helper()
	var args []string
	var cur strings.Builder
	inArg := false
	for i := 0; i < len(opts); i++ {
		switch c := opts[i]; {
		case c == ' ':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\\' && i+1 < len(opts):
			i++
			cur.WriteByte(opts[i])
			inArg = true
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	var out []Setting
	for i := 0; i < len(args); i += 2 {
		require.Equal(t, "-c", args[i], "PGOPTIONS %q", opts)
		require.Less(t, i+1, len(args), "PGOPTIONS %q", opts)
		name, value, ok := strings.Cut(args[i+1], "=")
		require.True(t, ok, "PGOPTIONS %q: %q", opts, args[i+1])
		out = append(out, Setting{name, value})
	}
	return out
}

func envOf(t *testing.T, env []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		require.True(t, ok, "%q is KEY=value", kv)
		require.NotContains(t, m, k, "set twice")
		m[k] = v
	}
	return m
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
