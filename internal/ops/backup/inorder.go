package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"golang.org/x/sync/errgroup"
)

// A segment is one piece of a file written in order: a stream, or bytes
// made when its turn comes.
type segment struct {
	// open gives the stream; it is read from the start, whatever its turn.
	open func(context.Context) (io.ReadCloser, error)
	// to, if set, takes the stream's bytes instead of the file's writer;
	// end, if set, runs in the segment's turn once the stream has ended.
	to  io.Writer
	end func() error
	// text is the bytes of a segment without a stream.
	text func() ([]byte, error)
	// rows are streams of lines (COPY rows) whose order does not matter:
	// read once its turn has come, all at the same time, each line written
	// whole as soon as it arrives.
	rows []func(context.Context) (io.ReadCloser, error)
}

// writeInOrder writes the segments to w one after another. Every stream is
// read at once, and what arrives before its turn waits in a spill file in
// dir (removed from the folder as soon as it is made), so no producer ever
// waits for the one before it to finish. Only the bytes of the stream
// whose turn it is go straight to w.
func writeInOrder(ctx context.Context, w io.Writer, dir string, segs []segment) error {
	g, ctx := errgroup.WithContext(ctx)
	turns := make([]chan struct{}, len(segs)+1)
	for i := range turns {
		turns[i] = make(chan struct{})
	}
	close(turns[0])
	for i, s := range segs {
		g.Go(func() error {
			var err error
			switch {
			case s.open != nil:
				err = drainInTurn(ctx, s, w, dir, turns[i])
			case s.rows != nil:
				err = rowsInTurn(ctx, s.rows, w, turns[i])
			default:
				err = textInTurn(ctx, s, w, turns[i])
			}
			if err != nil {
				return err
			}
			close(turns[i+1])
			return nil
		})
	}
	return g.Wait()
}

func textInTurn(ctx context.Context, s segment, w io.Writer, turn <-chan struct{}) error {
	select {
	case <-turn:
	case <-ctx.Done():
		return ctx.Err()
	}
	b, err := s.text()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

const drainBuffer = 128 << 10

// rowsInTurn interleaves the lines of several streams, whole lines only.
// Nothing is read before the turn: the producers wait on their pipes,
// which costs less than writing their output twice.
func rowsInTurn(ctx context.Context, opens []func(context.Context) (io.ReadCloser, error), w io.Writer, turn <-chan struct{}) error {
	select {
	case <-turn:
	case <-ctx.Done():
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	lines := make(chan []byte)
	free := make(chan []byte, 2*len(opens)+1)
	for _, open := range opens {
		g.Go(func() error { return readLines(gctx, open, lines, free) })
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait(); close(lines) }()
	var werr error
	for b := range lines {
		if werr == nil {
			if _, werr = w.Write(b); werr != nil {
				cancel() // the readers stop; what they hand over is dropped
			}
		}
		select {
		case free <- b[:0]:
		default:
		}
	}
	if werr != nil {
		return werr
	}
	return <-done
}

// readLines hands over what it reads from a stream in buffers of whole
// lines.
func readLines(ctx context.Context, open func(context.Context) (io.ReadCloser, error), lines chan<- []byte, free chan []byte) error {
	r, err := open(ctx)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = r.Close() })
	defer stop()
	defer func() { _ = r.Close() }()
	var carry []byte
	for {
		var buf []byte
		select {
		case buf = <-free:
		default:
			buf = make([]byte, 0, drainBuffer)
		}
		buf = append(buf, carry...)
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf)) // a row longer than the buffer
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		end := bytes.LastIndexByte(buf, '\n') + 1
		carry = append(carry[:0], buf[end:]...)
		if end > 0 {
			select {
			case lines <- buf[:end]:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else {
			select {
			case free <- buf[:0]:
			default:
			}
		}
		if errors.Is(rerr, io.EOF) {
			if len(carry) > 0 {
				return errors.New("a part of a table's rows ended inside a row (its psql stopped early); nothing was written: run the backup again, and if it fails the same way, look at the database's log")
			}
			return nil
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return rerr
		}
	}
}

func drainInTurn(ctx context.Context, s segment, w io.Writer, dir string, turn <-chan struct{}) (retErr error) {
	r, err := s.open(ctx)
	if err != nil {
		return err
	}
	// Closing the stream ends a read that waits for a producer.
	stop := context.AfterFunc(ctx, func() { _ = r.Close() })
	defer stop()
	defer func() { _ = r.Close() }()
	t := &inTurn{w: w, dir: dir}
	if s.to != nil {
		t.w = s.to
	}
	defer t.close()
	buf := make([]byte, drainBuffer)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := t.write(buf[:n], turn); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return rerr
		}
	}
	if !t.mine {
		select {
		case <-turn:
		case <-ctx.Done():
			return ctx.Err()
		}
		if err := t.takeTurn(); err != nil {
			return err
		}
	}
	if s.end != nil {
		return s.end()
	}
	return nil
}

// inTurn is where drainInTurn writes a segment's bytes: to w once the
// segment's turn came, to a spill file in dir before it did.
type inTurn struct {
	w     io.Writer
	dir   string
	spill *os.File // what waited for the turn; nil until something did
	mine  bool     // the turn came
}

// write writes p: to w once the turn came (taking it when turn says it
// has, what waited going first), else to the spill file.
func (t *inTurn) write(p []byte, turn <-chan struct{}) error {
	if !t.mine {
		select {
		case <-turn:
			// What waited goes first, then this read's bytes.
			if err := t.takeTurn(); err != nil {
				return err
			}
		default:
		}
	}
	if t.mine {
		_, err := t.w.Write(p)
		return err
	}
	if t.spill == nil {
		var err error
		if t.spill, err = spillFile(t.dir); err != nil {
			return err
		}
	}
	if _, err := t.spill.Write(p); err != nil {
		return fmt.Errorf("write spill file in %s: %w", t.dir, err)
	}
	return nil
}

// takeTurn writes what waited in the spill file, once the turn came.
func (t *inTurn) takeTurn() error {
	t.mine = true
	if t.spill == nil {
		return nil
	}
	defer t.close()
	if _, err := t.spill.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("read back spill file: %w", err)
	}
	_, err := io.Copy(t.w, t.spill)
	return err
}

// close closes the spill file, if any, which removes it (it has no name).
func (t *inTurn) close() {
	if t.spill != nil {
		_ = t.spill.Close()
		t.spill = nil
	}
}

// spillFile is a file in dir with no name: gone when closed, even after a
// crash.
func spillFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".aidb-spill-*")
	if err != nil {
		return nil, fmt.Errorf("create spill file in %s: %w", dir, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("create spill file in %s: %w", dir, err)
	}
	return f, nil
}

// onlyWriter hides any ReadFrom of w, so io.CopyBuffer uses the buffer.
type onlyWriter struct{ io.Writer }
