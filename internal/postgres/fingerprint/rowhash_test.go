package fingerprint

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The record text each COPY line must become, as PostgreSQL's record_out
// writes ROW(...)::text.
func TestRowHasherRecordText(t *testing.T) {
	cases := []struct {
		line string
		cols int
		want string
	}{
		{"1\tabc", 2, "(1,abc)"},
		{"\\N\t", 2, `(,"")`},
		{"a b\t\"q\"", 2, `("a b","""q""")`},
		{`x\\y`, 1, `("x\\y")`},
		{"{1,2}\t(p)", 2, `("{1,2}","(p)")`},
		{`line\nbreak\ttab\rcr`, 1, "(\"line\nbreak\ttab\rcr\")"},
		{`\101\x42\x4a\q`, 1, "(ABJq)"},
		{`{"{\\"a\\"}"}`, 1, `("{""{\\""a\\""}""}")`},
		{"caf\u00e9", 1, "(caf\u00e9)"},
		{"", 0, "()"},
		{"", 1, `("")`},
	}
	for _, c := range cases {
		var h RowHasher
		h.rowHash([]byte(c.line), c.cols)
		assert.Equal(t, c.want, string(h.rec), "COPY line %q", c.line)
	}
}

func TestRowSumIs128Bit(t *testing.T) {
	var s rowSum
	assert.Equal(t, "0", s.String())
	s.add(math.MaxInt64)
	s.add(math.MaxInt64)
	assert.Equal(t, "18446744073709551614", s.String())
	s = rowSum{}
	s.add(math.MinInt64)
	s.add(math.MinInt64)
	s.add(-1)
	assert.Equal(t, "-18446744073709551617", s.String())
	s.add(math.MaxInt64)
	s.add(math.MaxInt64)
	s.add(3)
	assert.Equal(t, "0", s.String())
}

const dump = `--
-- Name: odd; Type: TABLE; Schema: public; Owner: -
--

CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $$
COPY public.odd (a) FROM stdin;
$$;

--
-- Data for Name: odd; Type: TABLE DATA; Schema: public; Owner: -
--

COPY public.odd (a, "B ""x""") FROM stdin;
1	one
2	\N
\.


--
-- Data for Name: Empty; Type: TABLE DATA; Schema: s; Owner: -
--

COPY s."Empty"  FROM stdin;
\.


SELECT pg_catalog.setval('public.odd_a_seq', 2, true);
`

func hashOf(records ...string) string {
	var s rowSum
	for _, r := range records {
		sum := sha256.Sum256([]byte(r))
		s.add(int64(binary.BigEndian.Uint64(sum[:8])))
	}
	return s.String()
}

func TestRowHasherReadsCopyBlocksAcrossAnyChunking(t *testing.T) {
	for _, chunk := range []int{1, 2, 3, 7, 64, len(dump)} {
		var h RowHasher
		for p := dump; len(p) > 0; {
			n := min(chunk, len(p))
			_, _ = h.Write([]byte(p[:n]))
			p = p[n:]
		}
		tables := []Table{{Schema: "public", Name: "odd"}, {Schema: "s", Name: "Empty"}}
		require.NoError(t, h.Fill(tables), "chunk %d", chunk)
		assert.EqualValues(t, 2, *tables[0].Rows)
		assert.Equal(t, hashOf("(1,one)", "(2,)"), tables[0].Hash, "chunk %d", chunk)
		assert.EqualValues(t, 0, *tables[1].Rows)
		assert.Equal(t, "0", tables[1].Hash)
	}
}

func TestRowHasherRefusesWhatItCannotVouchFor(t *testing.T) {
	var h RowHasher
	_, _ = h.Write([]byte(dump))
	err := h.Fill([]Table{{Schema: "public", Name: "missing"}})
	assert.ErrorContains(t, err, "no data for table public.missing")

	cut := dump[:strings.Index(dump, "2\t")]
	h = RowHasher{}
	_, _ = h.Write([]byte(cut))
	assert.ErrorContains(t, h.Fill(nil), "ended inside the data of table public.odd")

	h = RowHasher{}
	_, _ = h.Write([]byte("-- Data for Name: x\nCOPY public.\"open (a) FROM stdin;\n"))
	assert.ErrorContains(t, h.Fill(nil), "unterminated quoted identifier")

	h = RowHasher{}
	_, _ = h.Write([]byte("-- Data for Name: x\nCOPY unqualified (a) FROM stdin;\n"))
	assert.ErrorContains(t, h.Fill(nil), "no schema-qualified table name")
}
