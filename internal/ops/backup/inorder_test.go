package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pipeStream is a stream the test writes while writeInOrder reads it.
func pipeStream() (func(context.Context) (io.ReadCloser, error), *io.PipeWriter) {
	r, w := io.Pipe()
	return func(context.Context) (io.ReadCloser, error) { return r, nil }, w
}

func textSegment(s string) segment {
	return segment{text: func() ([]byte, error) { return []byte(s), nil }}
}

func TestWriteInOrderSpillsWhatComesBeforeItsTurn(t *testing.T) {
	dir := t.TempDir()
	first, w1 := pipeStream()
	second, w2 := pipeStream()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- writeInOrder(t.Context(), &out, dir, []segment{{open: first}, textSegment("|middle|"), {open: second}})
	}()
	// The second stream is written whole, and ends, before the first has
	// said anything: it must wait in a spill file, not in its producer.
	big := strings.Repeat("second ", 100_000)
	_, err := io.WriteString(w2, big)
	require.NoError(t, err)
	require.NoError(t, w2.Close())
	_, err = io.WriteString(w1, "first")
	require.NoError(t, err)
	require.NoError(t, w1.Close())
	require.NoError(t, <-done)
	assert.Equal(t, "first|middle|"+big, out.String())

	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, left, "spill files have no name in the folder")
}

func TestWriteInOrderInterleavesWholeRows(t *testing.T) {
	var streams []func(context.Context) (io.ReadCloser, error)
	var want []string
	for s := range 3 {
		open, w := pipeStream()
		streams = append(streams, open)
		var b strings.Builder
		for i := range 2000 {
			row := fmt.Sprintf("%d\t%d\t%s", s, i, strings.Repeat("x", i%300))
			want = append(want, row)
			b.WriteString(row + "\n")
		}
		// A row far longer than the read buffer, too.
		long := fmt.Sprintf("%d\tlong\t%s", s, strings.Repeat("y", 3*drainBuffer))
		want = append(want, long)
		b.WriteString(long + "\n")
		go func() {
			// Pieces that cut rows anywhere.
			data := b.String()
			for len(data) > 0 {
				n := min(len(data), 777+s*1000)
				_, _ = io.WriteString(w, data[:n])
				data = data[n:]
			}
			_ = w.Close()
		}()
	}
	var out bytes.Buffer
	require.NoError(t, writeInOrder(t.Context(), &out, t.TempDir(), []segment{textSegment("head\n"), {rows: streams}, textSegment("\\.\n")}))
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	require.Equal(t, "head", got[0])
	require.Equal(t, `\.`, got[len(got)-1])
	rows := got[1 : len(got)-1]
	slices.Sort(rows)
	slices.Sort(want)
	assert.Equal(t, want, rows, "every row whole, once")
}

func TestWriteInOrderRefusesARowCutShort(t *testing.T) {
	open, w := pipeStream()
	go func() {
		_, _ = io.WriteString(w, "1\ta\n2\tb")
		_ = w.Close()
	}()
	err := writeInOrder(t.Context(), io.Discard, t.TempDir(), []segment{{rows: []func(context.Context) (io.ReadCloser, error){open}}})
	require.ErrorContains(t, err, "ended inside a row")
}

func TestWriteInOrderStopsOnAFailedWrite(t *testing.T) {
	open, w := pipeStream()
	go func() {
		for {
			if _, err := io.WriteString(w, "row\n"); err != nil {
				return
			}
		}
	}()
	err := writeInOrder(t.Context(), failingWriter{}, t.TempDir(), []segment{{rows: []func(context.Context) (io.ReadCloser, error){open}}})
	require.ErrorContains(t, err, "disk full")
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func TestSplitTablePartsCoverEveryPageOnce(t *testing.T) {
	tb := splitTable{Schema: `Sales "Data"`, Name: "Cust\nomer", Qualified: `"Sales ""Data"""."Cust` + "\n" + `omer"`, Columns: `"Id", name`, Pages: 10, Parts: 3}
	assert.Equal(t, []string{
		`COPY (SELECT "Id", name FROM ONLY ` + tb.Qualified + ` WHERE ctid >= '(0,0)'::tid AND ctid < '(3,0)'::tid) TO STDOUT`,
		`COPY (SELECT "Id", name FROM ONLY ` + tb.Qualified + ` WHERE ctid >= '(3,0)'::tid AND ctid < '(6,0)'::tid) TO STDOUT`,
		// The last part is open: rows the snapshot sees past the size read.
		`COPY (SELECT "Id", name FROM ONLY ` + tb.Qualified + ` WHERE ctid >= '(6,0)'::tid) TO STDOUT`,
	}, []string{tb.partQuery(0), tb.partQuery(1), tb.partQuery(2)})
	assert.Equal(t, `"Sales ""Data"""."Cust`+"\n"+`omer"`, tb.excludePattern())
	assert.Equal(t, "--\n-- Data for Name: Cust omer; Type: TABLE DATA; Schema: Sales \"Data\"; Owner: -\n--\n\nCOPY "+tb.Qualified+` ("Id", name) FROM stdin;`+"\n", string(tb.header()))
}
