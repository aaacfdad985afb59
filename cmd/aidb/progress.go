package main

import (
	"sync"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/aidb/aidb/internal/ops/restore"
)

// stderrIsTerminal says whether messages go to a terminal, where progress
// can redraw a line.
func (a *app) stderrIsTerminal() bool {
	f, ok := a.stderr.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// loadProgress shows restores (and the restores verify runs) as they go:
// on a terminal, a bar per database or file with the bytes of the file
// loaded and the phase; otherwise one plain line per phase, so a log shows
// where a slow restore is without a flood of lines.
type loadProgress struct {
	a      *app
	tty    bool
	verify bool // restores into throwaways: their swap is no news
	mu     sync.Mutex
	bars   map[string]*progressbar.ProgressBar
	phases map[string]restore.Phase
}

func (a *app) newLoadProgress(verify bool) *loadProgress {
	return &loadProgress{a: a, tty: a.stderrIsTerminal(), verify: verify,
		bars: map[string]*progressbar.ProgressBar{}, phases: map[string]restore.Phase{}}
}

// phase reports that name (a database, or a file being verified) entered
// ph; file and size describe what it loads.
func (p *loadProgress) phase(name, file string, size int64, ph restore.Phase) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.phases[name] == ph {
		return
	}
	p.phases[name] = ph
	if p.tty {
		p.bar(name, size).Describe(name + " " + string(ph))
		return
	}
	switch ph {
	case restore.PhaseLoad:
		if p.verify {
			p.a.say("%s: loading into a throwaway container (%s)", name, humanBytes(size))
		} else {
			p.a.say("%s: loading %s (%s)", name, file, humanBytes(size))
		}
	case restore.PhasePostData:
		p.a.say("%s: building indexes and constraints", name)
	case restore.PhaseCheck:
		p.a.say("%s: checking what was loaded against the manifest", name)
	case restore.PhaseSwap:
		if !p.verify {
			p.a.say("%s: swapping the restored database in", name)
		}
	}
}

// bytes reports the bytes of name's file read so far (on a terminal only).
func (p *loadProgress) bytes(name string, read, total int64) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// A bar at its maximum finishes and clears itself; the restore goes on
	// (check, swap) until finish.
	_ = p.bar(name, total).Set64(min(read, total-1))
}

// bar returns name's bar, made on first use. The caller holds mu.
func (p *loadProgress) bar(name string, total int64) *progressbar.ProgressBar {
	bar, ok := p.bars[name]
	if !ok {
		bar = progressbar.NewOptions64(total, progressbar.OptionSetDescription(name),
			progressbar.OptionSetWriter(p.a.stderr), progressbar.OptionShowBytes(true), progressbar.OptionShowCount(),
			// Not throttled: a phase change is drawn at once, and bytes are
			// reported every few MiB, only when the percentage moves.
			progressbar.OptionSetWidth(20), progressbar.OptionClearOnFinish())
		p.bars[name] = bar
	}
	return bar
}

// finish clears the bars, before the results are printed.
func (p *loadProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, bar := range p.bars {
		_ = bar.Finish()
	}
}
