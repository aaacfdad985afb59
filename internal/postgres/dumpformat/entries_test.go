package dumpformat

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type recorder struct {
	got []string
}

func (r *recorder) Statements(e Entry) error {
	r.got = append(r.got, fmt.Sprintf("%s|%s|%s: %s", e.Type, e.Schema, e.Name, strings.TrimSpace(e.SQL)))
	return nil
}

func (r *recorder) Rows(e Entry, rows []byte) error {
	r.got = append(r.got, fmt.Sprintf("rows %s [%s]: %q", e.Copy.Key(), e.CopySQL, rows))
	return nil
}

const splitDump = `--
-- PostgreSQL database dump
--

\restrict abc

-- Dumped from database version 15.14

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: t; Type: TABLE; Schema: public; Owner: app
--

CREATE TABLE public.t (
    id integer,
    -- a comment inside
    body text
);


ALTER TABLE public.t OWNER TO app;

--
-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app
--

COPY public.t (id, body) FROM stdin;
1	--
2	x\ny
--
3	z
\.


--
-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: app
--

ALTER TABLE ONLY public.t
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);


--
-- PostgreSQL database dump complete
--

\unrestrict abc

`

func TestSplitHandsEntriesAndRowsInOrder(t *testing.T) {
	t.Parallel()
	var r recorder
	require.NoError(t, Split(strings.NewReader(splitDump), 1<<20, &r))
	assert.Equal(t, []string{
		"HEADER||: -- Dumped from database version 15.14\n\nSET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);",
		"TABLE|public|t: CREATE TABLE public.t (\n    id integer,\n    -- a comment inside\n    body text\n);\n\n\nALTER TABLE public.t OWNER TO app;",
		"rows public.t [COPY public.t (id, body) FROM stdin]: \"1\\t--\\n2\\tx\\\\ny\\n--\\n3\\tz\\n\"",
		"CONSTRAINT|public|t t_pkey: ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);",
	}, r.got, "rows that look like comments stay rows; \\restrict lines are left out")
}

func TestSplitCutsRowsIntoParts(t *testing.T) {
	t.Parallel()
	var r recorder
	require.NoError(t, Split(strings.NewReader(splitDump), 8, &r))
	var rows []string
	for _, g := range r.got {
		if strings.HasPrefix(g, "rows ") {
			rows = append(rows, g[strings.Index(g, ": ")+2:])
		}
	}
	assert.Equal(t, []string{`"1\t--\n"`, `"2\tx\\ny\n"`, `"--\n3\tz\n"`}, rows, "each part whole rows, at most about the part size")
}

func TestSplitRefusesConnect(t *testing.T) {
	t.Parallel()
	dump := strings.Replace(splitDump, "CREATE TABLE public.t (", "\\connect other\nCREATE TABLE public.t (", 1)
	err := Split(strings.NewReader(dump), 1<<20, &recorder{})
	assert.True(t, errors.Is(err, ErrMetaCommand), "%v", err)
}

func TestSplitRefusesACutCopyBlock(t *testing.T) {
	t.Parallel()
	dump := splitDump[:strings.Index(splitDump, `\.`)]
	err := Split(strings.NewReader(dump), 1<<20, &recorder{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "public.t")
}

func TestSessionSettingsPicksTheSetStatements(t *testing.T) {
	t.Parallel()
	assert.Equal(t, []string{"SET statement_timeout = 0;", "SELECT pg_catalog.set_config('search_path', '', false);"},
		SessionSettings("-- x\nSET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\nCREATE ROLE x;\n"))
}

func TestEntryTablesReadsIndexesAndConstraints(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		e      Entry
		on     Table
		refs   *Table
		wantOK bool
	}{
		{Entry{Type: "INDEX", SQL: "CREATE INDEX i ON public.t USING btree (a);\n"}, Table{"public", "t"}, nil, true},
		{Entry{Type: "INDEX", SQL: "CREATE UNIQUE INDEX \"I\" ON ONLY \"My S\".\"a.b\" USING hnsw (v);"}, Table{"My S", "a.b"}, nil, true},
		{Entry{Type: "CONSTRAINT", SQL: "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);"}, Table{"public", "t"}, nil, true},
		{Entry{Type: "FK CONSTRAINT", SQL: "ALTER TABLE ONLY public.c\n    ADD CONSTRAINT c_fk FOREIGN KEY (p) REFERENCES public.p(id);"}, Table{"public", "c"}, &Table{"public", "p"}, true},
		{Entry{Type: "FK CONSTRAINT", SQL: "ALTER TABLE public.c\n    ADD CONSTRAINT c_fk FOREIGN KEY (p) REFERENCES \"S\".\"p q\"(id) ON DELETE CASCADE;"}, Table{"public", "c"}, &Table{"S", "p q"}, true},
		{Entry{Type: "INDEX", SQL: "CREATE INDEX i ON t USING btree (a);"}, Table{}, nil, false},
		{Entry{Type: "TRIGGER", SQL: "CREATE TRIGGER x AFTER INSERT ON public.t FOR EACH ROW EXECUTE FUNCTION f();"}, Table{}, nil, false},
	} {
		on, refs, ok := EntryTables(c.e)
		assert.Equal(t, c.wantOK, ok, c.e.SQL)
		assert.Equal(t, c.on, on, c.e.SQL)
		assert.Equal(t, c.refs, refs, c.e.SQL)
	}
}
