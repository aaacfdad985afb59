package pgtools

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/aidb/aidb/internal/fault"
)

// fakeProbe answers err, counting its tries.
type fakeProbe struct {
	err   error
	tries atomic.Int32
}

func (f *fakeProbe) probe(context.Context) error {
	f.tries.Add(1)
	return f.err
}

// noticed collects what paths says.
type noticed struct {
	mu   sync.Mutex
	said []string
}

func (n *noticed) add(reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.said = append(n.said, reason)
}

var errNotShared = errors.New("the engine's containers see another folder at /b than aidb does")

// The path is chosen by trying it: a pipe that carries the token means the
// helper; a folder the engine does not share (or a token not seen in time)
// means the exec stream for auto, said once with the reason, and a
// refusal naming the reason for a forced helper. A forced stream, and auto
// without pipes, try nothing.
func TestPathChoice(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		t       Transport
		pipes   bool
		probe   error
		want    Transport
		tries   int32
		refused bool
		said    []string
	}{
		{"auto, the pipe carries the token", TransportAuto, true, nil, TransportHelper, 1, false, nil},
		{"auto, the folder is not shared", TransportAuto, true, errNotShared, TransportStream, 1, false, []string{errNotShared.Error()}},
		{"forced helper that works", TransportHelper, true, nil, TransportHelper, 1, false, nil},
		{"forced helper that does not work", TransportHelper, true, errNotShared, "", 1, true, nil},
		{"forced stream", TransportStream, true, nil, TransportStream, 0, false, nil},
		{"auto without pipes", TransportAuto, false, nil, TransportStream, 0, false, nil},
		{"forced helper without pipes", TransportHelper, false, nil, "", 0, true, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var n noticed
			pc := &paths{pipes: c.pipes, notice: n.add}
			p := &fakeProbe{err: c.probe}
			got, err := pc.choose(t.Context(), c.t, p)
			assert.Equal(t, c.tries, p.tries.Load(), "tries")
			assert.Equal(t, c.said, n.said, "said")
			if c.refused {
				var pe *PathError
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, fault.Invalid, pe.Kind(), "bad usage: exit 2")
				if c.probe != nil {
					assert.Contains(t, err.Error(), c.probe.Error(), "the reason is named")
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

// The answer is found once per run: later choices (of any database,
// backup, load or verification) try nothing; the stream is taken at once
// (settled) and said only the first time; a forced helper is refused with
// the reason found.
func TestPathChoiceIsTriedOncePerRun(t *testing.T) {
	t.Parallel()
	var n noticed
	pc := &paths{pipes: true, notice: n.add}
	p := &fakeProbe{err: errNotShared}
	assert.False(t, pc.settled(TransportAuto), "not known yet: try")
	for range 3 {
		got, err := pc.choose(t.Context(), TransportAuto, p)
		require.NoError(t, err)
		assert.Equal(t, TransportStream, got)
	}
	assert.True(t, pc.settled(TransportAuto), "known: the stream without a helper")
	assert.False(t, pc.settled(TransportHelper), "a forced helper is refused by choose, with the reason")
	_, err := pc.choose(t.Context(), TransportHelper, p)
	var pe *PathError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, errNotShared.Error(), pe.Reason)
	assert.Equal(t, int32(1), p.tries.Load(), "tried once")
	assert.Equal(t, []string{errNotShared.Error()}, n.said, "said once")

	works := &paths{pipes: true}
	ok := &fakeProbe{}
	for range 3 {
		got, err := works.choose(t.Context(), TransportAuto, ok)
		require.NoError(t, err)
		assert.Equal(t, TransportHelper, got)
	}
	assert.Equal(t, int32(1), ok.tries.Load(), "tried once")
	assert.False(t, works.settled(TransportAuto))
}

// Databases backed up at once may each try before the first answer: each
// uses its own answer, and the fallback is said once.
func TestPathChoiceSaidOnceWhenTriedAtOnce(t *testing.T) {
	t.Parallel()
	var n noticed
	pc := &paths{pipes: true, notice: n.add}
	var entered sync.WaitGroup
	entered.Add(2)
	both := probeFunc(func(context.Context) error {
		entered.Done()
		entered.Wait() // both try before either answers
		return errNotShared
	})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			got, err := pc.choose(t.Context(), TransportAuto, both)
			assert.NoError(t, err)
			assert.Equal(t, TransportStream, got)
		})
	}
	wg.Wait()
	assert.Len(t, n.said, 1)
}

// A try cut short by Ctrl-C is the interruption, not an answer: nothing is
// said or kept, and the next choice tries again.
func TestPathChoiceInterrupted(t *testing.T) {
	t.Parallel()
	var n noticed
	pc := &paths{pipes: true, notice: n.add}
	ctx, cancel := context.WithCancel(t.Context())
	cut := probeFunc(func(context.Context) error {
		cancel()
		return errors.New("wait for a helper container: context canceled")
	})
	_, err := pc.choose(ctx, TransportAuto, cut)
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, n.said)
	p := &fakeProbe{}
	got, err := pc.choose(t.Context(), TransportAuto, p)
	require.NoError(t, err)
	assert.Equal(t, TransportHelper, got)
	assert.Equal(t, int32(1), p.tries.Load())
}
