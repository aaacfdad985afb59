package dumpformat

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const trailer = "--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc\n\n"

func TestHoldbackKeepsTheClosingComment(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("COPY public.t (a) FROM stdin;\n1\n\\.\n\n\n", 500)
	var out bytes.Buffer
	h := NewHoldback(&out)
	dump := body + trailer
	for len(dump) > 0 {
		n := min(len(dump), 1000)
		_, err := h.Write([]byte(dump[:n]))
		require.NoError(t, err)
		dump = dump[n:]
	}
	require.NoError(t, h.Finish())
	assert.Equal(t, body, out.String())
	assert.Equal(t, trailer, string(h.Trailer()))

	cut := NewHoldback(io.Discard)
	_, _ = cut.Write([]byte(body))
	require.ErrorContains(t, cut.Finish(), "cut short")
}

func TestTailTellsAWholeDumpFromACutOne(t *testing.T) {
	t.Parallel()
	whole := Header + strings.Repeat("COPY public.t (a) FROM stdin;\n1\n\\.\n\n\n", 1000) + trailer
	assert.True(t, StartsAsDump([]byte(whole)))
	assert.False(t, StartsAsDump([]byte("SELECT 1;\n")))
	for _, chunk := range []int{1, 100, TailSize - 1, TailSize, 3 * TailSize, len(whole)} {
		var tail, cut Tail
		for p := whole; len(p) > 0; {
			n := min(chunk, len(p))
			_, _ = tail.Write([]byte(p[:n]))
			p = p[n:]
		}
		assert.True(t, tail.Complete(), "chunks of %d", chunk)
		for p := whole[:len(whole)-len(trailer)]; len(p) > 0; {
			n := min(chunk, len(p))
			_, _ = cut.Write([]byte(p[:n]))
			p = p[n:]
		}
		assert.False(t, cut.Complete(), "chunks of %d", chunk)
	}
}
