package dumpformat

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const dumpHead = `--
-- PostgreSQL database dump
--

\restrict abcDEF123

-- Dumped from database version 15.14 (Debian 15.14-0+deb12u1)
-- Dumped by pg_dump version 15.14 (Debian 15.14-0+deb12u1)

SET statement_timeout = 0;
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);
SET row_security = off;
`

const dumpBody = `
--
-- Name: t; Type: TABLE; Schema: public; Owner: rules
--

CREATE TABLE public.t (id integer);

--
-- PostgreSQL database dump complete
--

\unrestrict abcDEF123

`

func TestPreamblePutsTextAfterTheHeader(t *testing.T) {
	t.Parallel()
	in := dumpHead + dumpBody
	want := dumpHead + "\n" + "ROLES;\n\n" + strings.TrimPrefix(dumpBody, "\n")
	// Every way of cutting the stream in two gives the same file.
	for cut := 0; cut <= len(in); cut++ {
		var out bytes.Buffer
		p := NewPreamble(&out, "ROLES;\n\n")
		n, err := p.Write([]byte(in[:cut]))
		require.NoError(t, err)
		assert.Equal(t, cut, n)
		_, err = p.Write([]byte(in[cut:]))
		require.NoError(t, err)
		require.NoError(t, p.Close())
		require.Equal(t, want, out.String(), "cut at %d", cut)
	}
	assert.True(t, StartsAsDump([]byte(want)))
}

func TestPreambleOnceForSeveralDumps(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := NewPreamble(&out, "ROLES;\n\n")
	for range 2 {
		_, err := p.Write([]byte(dumpHead + dumpBody))
		require.NoError(t, err)
	}
	require.NoError(t, p.Close())
	assert.Equal(t, 1, strings.Count(out.String(), "ROLES;"))
	// A dump without entries gets it before its closing comment.
	out.Reset()
	p = NewPreamble(&out, "ROLES;\n\n")
	_, err := p.Write([]byte(dumpHead + "\n--\n-- PostgreSQL database dump complete\n--\n\n"))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	assert.Contains(t, out.String(), "SET row_security = off;\n\nROLES;\n\n--\n-- PostgreSQL database dump complete")
}

func TestPreambleRefusesWhatIsNoDump(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	p := NewPreamble(&out, "ROLES;\n")
	_, err := p.Write([]byte(dumpHead))
	require.NoError(t, err)
	require.ErrorContains(t, p.Close(), "cut short")
	assert.Empty(t, out.String(), "nothing passed on before the header's end")

	p = NewPreamble(&out, "ROLES;\n")
	_, err = p.Write(bytes.Repeat([]byte("x"), maxHeader+1))
	require.ErrorContains(t, err, "no plain pg_dump output")

	// No text: everything passes at once.
	out.Reset()
	p = NewPreamble(&out, "")
	_, err = p.Write([]byte("abc"))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	assert.Equal(t, "abc", out.String())
}

// A postscript goes in before the last closing comment of what was
// written (of several dumps, the last one's), however the writes fall.
func TestPostscriptPutsTextBeforeTheLastClosingComment(t *testing.T) {
	t.Parallel()
	in := dumpHead + dumpBody + dumpHead + dumpBody
	i := strings.LastIndex(in, "--\n-- PostgreSQL database dump complete")
	want := in[:i] + "POST;\n\n" + in[i:]
	for cut := 0; cut <= len(in); cut += 7 {
		var out bytes.Buffer
		p := NewPostscript(&out, "POST;\n\n")
		_, err := p.Write([]byte(in[:cut]))
		require.NoError(t, err)
		_, err = p.Write([]byte(in[cut:]))
		require.NoError(t, err)
		require.NoError(t, p.Close())
		require.Equal(t, want, out.String(), "cut at %d", cut)
	}
	assert.True(t, Complete([]byte(want[max(0, len(want)-TailSize):])), "the file still ends as a dump does")

	var out bytes.Buffer
	p := NewPostscript(&out, "POST;\n")
	_, err := p.Write([]byte(dumpHead + "--\n-- Name: t; Type: TABLE; Schema: public; Owner: rules\n"))
	require.NoError(t, err)
	assert.ErrorContains(t, p.Close(), "cut short", "a dump without its closing comment")
	assert.NotContains(t, out.String(), "POST;")

	out.Reset()
	p = NewPostscript(&out, "")
	_, err = p.Write([]byte(in))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	assert.Equal(t, in, out.String(), "no text, the dump as it came")
}
