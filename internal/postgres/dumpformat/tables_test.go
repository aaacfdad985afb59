package dumpformat

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScanTablesReadsCopyHeadersNotRows(t *testing.T) {
	t.Parallel()
	dump := `--
-- PostgreSQL database dump
--
COPY public.rules (id, "Name", body) FROM stdin;
1	a	b
2	COPY public.fake (x) FROM stdin;	c
\.

COPY "My Schema"."odd.table" (x) FROM stdin;
\.

--
-- PostgreSQL database dump complete
--
`
	d, err := ScanTables(strings.NewReader(dump))
	require.NoError(t, err)
	assert.Equal(t, []Copy{
		{Table{"public", "rules"}, []string{"id", "Name", "body"}},
		{Table{"My Schema", "odd.table"}, []string{"x"}},
	}, d.Copies, "data lines are not taken for COPY statements")
}

func TestScanTablesListsCreatedAndLoadedTables(t *testing.T) {
	t.Parallel()
	dump := strings.Join([]string{
		"CREATE TABLE public.rules (",
		"    id bigint",
		");",
		`CREATE UNLOGGED TABLE "My Schema"."a ""b"" (c" (`,
		"CREATE TABLE public.part_1 PARTITION OF public.part",
		"CREATE TABLE unqualified (",
		"CREATE VIEW public.v AS",
		"COPY public.rules (id) FROM stdin;",
		"CREATE TABLE public.not_a_table (",
		`\.`,
		"COPY public.other (x) FROM stdin;",
		`\.`,
		"COPY old (x) FROM stdin;",
		`\.`,
	}, "\n")
	d, err := ScanTables(strings.NewReader(dump))
	require.NoError(t, err)
	assert.Equal(t, []Table{{"public", "rules"}, {"My Schema", `a "b" (c`}, {"public", "part_1"}, {"public", "unqualified"}}, d.Creates, "a row of a COPY is not a statement")
	var keys []string
	for _, t := range d.All() {
		keys = append(keys, t.Key())
	}
	assert.Equal(t, []string{"public.rules", `My Schema.a "b" (c`, "public.part_1", "public.unqualified", "public.other", "public.old"}, keys)
}

func TestScanTablesRefusesACopyHeaderPgDumpWouldNotWrite(t *testing.T) {
	t.Parallel()
	_, err := ScanTables(strings.NewReader("SELECT 1;\nCOPY public.\"open (a) FROM stdin;\n"))
	assert.ErrorContains(t, err, "line 2")
	assert.ErrorContains(t, err, "unterminated quoted identifier")
}

// A dump made with pg_dump --create (-C) makes and switches to a database
// of its own: the first such line is noted, a COPY row that looks like one
// is not.
func TestScanTablesNotesADumpThatCreatesItsDatabase(t *testing.T) {
	t.Parallel()
	plain := "COPY public.t (x) FROM stdin;\n\\connect other\n\\.\n"
	d, err := ScanTables(strings.NewReader(plain))
	require.NoError(t, err)
	assert.Zero(t, d.CreatesDatabase, "a row is not a statement")

	created := "--\nDROP DATABASE IF EXISTS memorydb;\nCREATE DATABASE memorydb WITH TEMPLATE = template0;\n\\connect memorydb\n"
	d, err = ScanTables(strings.NewReader(created))
	require.NoError(t, err)
	assert.Equal(t, 3, d.CreatesDatabase)
}
