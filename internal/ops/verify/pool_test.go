package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeThrowaway counts what the pool does with it; Clean fails when dirty.
type fakeThrowaway struct {
	id     int
	dirty  bool
	cleans int
	closed bool
}

func (f *fakeThrowaway) Clean(context.Context) error {
	f.cleans++
	if f.dirty {
		return errors.New("not as it started")
	}
	return nil
}

func (f *fakeThrowaway) Close(context.Context) error { f.closed = true; return nil }

type fakeStarts struct {
	mu      sync.Mutex
	started []*fakeThrowaway
	fail    bool
}

func (s *fakeStarts) pool(limit int) *pool[*fakeThrowaway] {
	return &pool[*fakeThrowaway]{limit: limit, start: func(context.Context, poolKey) (*fakeThrowaway, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.fail {
			return nil, errors.New("no engine")
		}
		t := &fakeThrowaway{id: len(s.started)}
		s.started = append(s.started, t)
		return t, nil
	}}
}

func TestPoolReusesACleanThrowawayOfTheSameKind(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var s fakeStarts
	p := s.pool(1)
	rules := poolKey{"postgres:17", "rulesdb", "postgres"}
	for i := range 3 {
		x, reused, err := p.take(ctx, rules)
		require.NoError(t, err)
		assert.Equal(t, i > 0, reused, "file %d", i)
		require.NoError(t, p.give(ctx, rules, x, nil))
	}
	require.Len(t, s.started, 1, "one container for three files")
	assert.Equal(t, 3, s.started[0].cleans, "cleaned after each file")
	require.NoError(t, p.close(ctx))
	assert.True(t, s.started[0].closed, "removed at the end")
	assert.Zero(t, p.live)
}

func TestPoolRemovesWhatFailedOrIsNotClean(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var s fakeStarts
	p := s.pool(2)
	k := poolKey{"postgres:17", "rulesdb", "postgres"}

	x, _, err := p.take(ctx, k)
	require.NoError(t, err)
	require.NoError(t, p.give(ctx, k, x, errDone))
	assert.True(t, x.closed, "a failed verification's throwaway is removed")
	assert.Zero(t, x.cleans, "and not cleaned for another")

	y, reused, err := p.take(ctx, k)
	require.NoError(t, err)
	assert.False(t, reused)
	y.dirty = true
	require.NoError(t, p.give(ctx, k, y, nil))
	assert.True(t, y.closed, "a throwaway Clean cannot prove clean is removed")

	z, reused, err := p.take(ctx, k)
	require.NoError(t, err)
	assert.False(t, reused, "nothing dirty is handed out")
	assert.NotSame(t, y, z)
	require.NoError(t, p.give(ctx, k, z, nil))
	require.NoError(t, p.close(ctx))
	assert.Len(t, s.started, 3)
	assert.Zero(t, p.live)
}

func TestPoolKeepsKindsApartWithinItsLimit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var s fakeStarts
	p := s.pool(1)
	rules := poolKey{"postgres:17", "rulesdb", "postgres"}
	mem := poolKey{"pgvector/pgvector:pg17", "memorydb", "postgres"}
	a, _, err := p.take(ctx, rules)
	require.NoError(t, err)
	require.NoError(t, p.give(ctx, rules, a, nil))
	b, reused, err := p.take(ctx, mem)
	require.NoError(t, err)
	assert.False(t, reused, "another image's file gets its own throwaway")
	assert.True(t, a.closed, "the idle one of another kind made room (limit 1)")
	require.NoError(t, p.give(ctx, mem, b, nil))
	require.NoError(t, p.close(ctx))
	assert.True(t, b.closed)
	assert.Zero(t, p.live)

	s.fail = true
	_, _, err = p.take(ctx, rules)
	require.Error(t, err)
	assert.Zero(t, p.live, "a failed start holds no place")
}

func TestPoolUnderParallelFiles(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var s fakeStarts
	p := s.pool(3)
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			k := poolKey{"postgres:17", fmt.Sprint("db", i%2), "postgres"}
			x, _, err := p.take(ctx, k)
			if assert.NoError(t, err) {
				assert.NoError(t, p.give(ctx, k, x, nil))
			}
		})
	}
	wg.Wait()
	require.NoError(t, p.close(ctx))
	assert.Zero(t, p.live)
	for _, x := range s.started {
		assert.True(t, x.closed, "throwaway %d removed", x.id)
	}
}
