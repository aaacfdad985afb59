package verify

import (
	"context"
	"errors"
	"sync"

	"github.com/aidb/aidb/internal/postgres/pgtools"
)

// pool keeps throwaways warm across the files of one Files call: a
// throwaway whose verification ran to its end (equal or different) is
// cleaned (pgtools.Throwaway.Clean: its databases dropped, the roles the
// restore made dropped, the server's shared state checked against its
// start) and serves the next file of the same image, database and
// superuser. One that failed, or that Clean cannot prove clean, is
// removed. At most limit throwaways live at once: an idle one of another
// kind is removed to make room.
type pool[T reusable] struct {
	start func(ctx context.Context, key poolKey) (T, error)
	limit int

	mu   sync.Mutex
	idle []pooled[T]
	live int
}

// reusable is what the pool needs of a throwaway.
type reusable interface {
	Clean(ctx context.Context) error
	Close(ctx context.Context) error
}

type pooled[T reusable] struct {
	key poolKey
	t   T
}

// throwaways is the pool of Files: throwaway containers from e.
func throwaways(e Throwaways, limit int) *pool[*pgtools.Throwaway] {
	return &pool[*pgtools.Throwaway]{limit: max(1, limit), start: func(ctx context.Context, k poolKey) (*pgtools.Throwaway, error) {
		return e.StartThrowaway(ctx, k.image, k.service, k.user)
	}}
}

// poolKey is what a throwaway is started for.
type poolKey struct{ image, service, user string }

// errDone is the result of a file that did not run to its end.
var errDone = errors.New("the verification did not run to its end")

// take gives a throwaway for key: an idle one (reused true) or a new one.
func (p *pool[T]) take(ctx context.Context, key poolKey) (_ T, reused bool, _ error) {
	p.mu.Lock()
	for i, x := range p.idle {
		if x.key == key {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.mu.Unlock()
			return x.t, true, nil
		}
	}
	var evict []pooled[T]
	if p.live >= p.limit && len(p.idle) > 0 {
		evict, p.idle = p.idle[:1], p.idle[1:]
		p.live--
	}
	p.live++
	p.mu.Unlock()
	for _, x := range evict {
		_ = x.t.Close(ctx)
	}
	t, err := p.start(ctx, key)
	if err != nil {
		p.mu.Lock()
		p.live--
		p.mu.Unlock()
		var zero T
		return zero, false, err
	}
	return t, false, nil
}

// give takes t back after its file: cleaned and kept when outcome is nil
// and Clean proves it clean, else removed. It returns the error of its
// removal, if any.
func (p *pool[T]) give(ctx context.Context, key poolKey, t T, outcome error) error {
	if outcome == nil && ctx.Err() == nil && t.Clean(ctx) == nil {
		p.mu.Lock()
		p.idle = append(p.idle, pooled[T]{key, t})
		p.mu.Unlock()
		return nil
	}
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
	return t.Close(ctx)
}

// close removes every idle throwaway, also after Ctrl-C.
func (p *pool[T]) close(ctx context.Context) error {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.live = nil, p.live-len(idle)
	p.mu.Unlock()
	var errs []error
	for _, x := range idle {
		errs = append(errs, x.t.Close(ctx))
	}
	return errors.Join(errs...)
}
