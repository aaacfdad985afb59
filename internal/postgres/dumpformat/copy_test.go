package dumpformat

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseCopy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		line   string
		ok     bool
		want   Copy
		errHas string
	}{
		{line: "COPY public.rules (id, body) FROM stdin;", ok: true, want: Copy{Table{"public", "rules"}, []string{"id", "body"}}},
		{line: `COPY public.odd (a, "B ""x""") FROM stdin;`, ok: true, want: Copy{Table{"public", "odd"}, []string{"a", `B "x"`}}},
		{line: `COPY "My Schema"."odd.table" (x) FROM stdin;`, ok: true, want: Copy{Table{"My Schema", "odd.table"}, []string{"x"}}},
		{line: `COPY public.t ("a, b", c) FROM stdin;`, ok: true, want: Copy{Table{"public", "t"}, []string{"a, b", "c"}}},
		// A table without columns: pg_dump leaves two spaces.
		{line: `COPY s."Empty"  FROM stdin;`, ok: true, want: Copy{Table: Table{"s", "Empty"}}},
		// Older pg_dump did not qualify names.
		{line: "COPY rules (id) FROM stdin;", ok: true, want: Copy{Table{"", "rules"}, []string{"id"}}},
		{line: "COPY (SELECT 1) TO STDOUT;"},
		{line: "COPY public.t (a) FROM '/tmp/x';"},
		{line: "SELECT 1;"},
		{line: "COPY FROM stdin;"},
		{line: `COPY public."open (a) FROM stdin;`, ok: true, errHas: "unterminated quoted identifier"},
		{line: `COPY public.t (a, ) FROM stdin;`, ok: true, errHas: "missing identifier"},
		{line: `COPY public.t (a) x FROM stdin;`, ok: true, errHas: "malformed column list"},
		{line: `COPY public.t x FROM stdin;`, ok: true, errHas: "after the table name"},
	}
	for _, c := range cases {
		got, ok, err := ParseCopy([]byte(c.line))
		assert.Equal(t, c.ok, ok, "%q", c.line)
		if c.errHas != "" {
			assert.ErrorContains(t, err, c.errHas, "%q", c.line)
			continue
		}
		require.NoError(t, err, "%q", c.line)
		assert.Equal(t, c.want, got, "%q", c.line)
	}
}

func TestParseName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Table{
		"public.goose_db_version": {"public", "goose_db_version"},
		`"My Schema"."a""b"`:      {"My Schema", `a"b`},
		`"odd.schema".t`:          {"odd.schema", "t"},
		"rules":                   {"", "rules"},
	} {
		got, err := ParseName(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", `"open`, "a.b c", "a."} {
		_, err := ParseName(in)
		assert.Error(t, err, "%q", in)
	}
}

func TestUnescapeCopy(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"plain":                "plain",
		`x\\y`:                 `x\y`,
		`line\nbreak\ttab\rcr`: "line\nbreak\ttab\rcr",
		`\b\f\v`:               "\b\f\v",
		`\101\x42\x4a\q`:       "ABJq",
		`\1\12x`:               "\x01\nx",
		`\xg`:                  "xg",
		`\x4`:                  "\x04",
		`trailing\`:            "trailing",
		`{"{\\"a\\"}"}`:        `{"{\"a\"}"}`,
		"caf\u00e9":            "caf\u00e9",
		`\N is NULL, IsNull's`: "N is NULL, IsNull's",
	} {
		assert.Equal(t, want, string(UnescapeCopy(nil, []byte(in))), "%q", in)
	}
	assert.True(t, IsNull([]byte(`\N`)))
	assert.False(t, IsNull([]byte(`\\N`)))
	assert.True(t, IsCopyEnd([]byte(`\.`)))
	assert.False(t, IsCopyEnd([]byte(`\.x`)))
}

// What aidb writes before a table's rows reads back as pg_dump's header.
func TestDataHeaderReadsBack(t *testing.T) {
	t.Parallel()
	h := DataHeader(`Sales "Data"`, "Cust\nomer", "", `"Sales ""Data"""."Cust`+"\n"+`omer"`, `"Id", name`)
	assert.Equal(t, "--\n-- Data for Name: Cust omer; Type: TABLE DATA; Schema: Sales \"Data\"; Owner: -\n--\n\nCOPY \"Sales \"\"Data\"\"\".\"Cust\nomer\" (\"Id\", name) FROM stdin;\n", string(h))
	// With owners (no --no-owner), the owner's name as pg_dump writes it.
	assert.Contains(t, string(DataHeader("public", "t", "app owner", "public.t", "id")), "; Schema: public; Owner: app owner\n")

	h = DataHeader("public", "rules", "rules", "public.rules", `id, "Body"`)
	lines := bytes.Split(bytes.TrimSuffix(h, []byte("\n")), []byte("\n"))
	assert.True(t, IsDataComment(lines[1]), "%q", lines[1])
	c, ok, err := ParseCopy(lines[len(lines)-1])
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, Copy{Table{"public", "rules"}, []string{"id", "Body"}}, c)
	assert.True(t, strings.HasPrefix(CopyTrailer, CopyEnd+"\n"))
}
