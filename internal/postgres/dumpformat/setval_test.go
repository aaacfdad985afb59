package dumpformat

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSetvalScannerAcrossChunkBoundaries(t *testing.T) {
	t.Parallel()
	dump := "COPY public.t (x) FROM stdin;\nSELECT pg_catalog.setval('fake', 1, true);\n\\.\n" +
		"--\n-- Name: rules_id_seq; Type: SEQUENCE SET\n--\n\n" +
		"SELECT pg_catalog.setval('public.rules_id_seq', 1020, true);\n" +
		"SELECT pg_catalog.setval('\"My Schema\".\"it''s_seq\"', 1, false);\n" +
		"-- a comment mentioning SELECT pg_catalog.setval('x', 2, true);\n"
	want := []Sequence{
		{Name: "fake", Value: 1, Called: true}, // a line of COPY data that looks the same: see note in SetvalScanner
		{Name: "public.rules_id_seq", Value: 1020, Called: true},
		{Name: `"My Schema"."it's_seq"`, Value: 1, Called: false},
	}
	for _, chunk := range []int{1, 2, 3, 7, 16, 64, len(dump)} {
		var s SetvalScanner
		for i := 0; i < len(dump); i += chunk {
			s.Scan([]byte(dump[i:min(i+chunk, len(dump))]))
		}
		assert.Equal(t, want, s.Sequences(), "chunks of %d bytes", chunk)
	}
}

func TestSetvalScannerSkipsWhatIsNoSetval(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"SELECT pg_catalog.setval('s', x, true);",
		"SELECT pg_catalog.setval('s', 1);",
		"SELECT pg_catalog.setval('unterminated",
		" SELECT pg_catalog.setval('s', 1, true);",
	} {
		var s SetvalScanner
		s.Scan([]byte(line + "\n"))
		assert.Empty(t, s.Sequences(), "%q", line)
	}
}
