// Package progress shows bars with rate and ETA for long work (import,
// fsck, gc) when stderr is a terminal, and nothing at all otherwise: a
// log file or journald gets the commands' summary lines, not a stream of
// redraws. It wraps github.com/vbauerster/mpb.
package progress

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Progress is a set of bars on one terminal, or a quiet stand-in. The
// zero of every method on a quiet Progress and its bars is a no-op, so
// callers need no branches.
type Progress struct {
	p    *mpb.Progress
	mu   sync.Mutex
	bars []*Bar
	wait sync.Once
}

// New shows bars on w if terminal is true; otherwise everything is a
// no-op. Wait must be called before writing to w again.
func New(ctx context.Context, w io.Writer, terminal bool) *Progress {
	if !terminal {
		return &Progress{}
	}
	return &Progress{p: mpb.NewWithContext(ctx, mpb.WithOutput(w), mpb.WithWidth(100), mpb.WithRefreshRate(200*time.Millisecond))}
}

// Bar is one line of progress.
type Bar struct {
	b     *mpb.Bar
	label atomic.Pointer[string]
}

// Bytes adds a bar counting bytes, with the rate and the time left.
func (p *Progress) Bytes(label string, total int64) *Bar {
	return p.add(label, total, decor.Counters(decor.SizeB1024(0), "% .1f / % .1f"), func(r float64) string {
		return fmt.Sprintf("% .1f/s", decor.SizeB1024(r))
	})
}

// Count adds a bar counting items (blocks, roots), with the rate and the
// time left.
func (p *Progress) Count(label, unit string, total int64) *Bar {
	return p.add(label, total, decor.CountersNoUnit("%d / %d "+unit), func(r float64) string {
		return fmt.Sprintf("%.0f %s/s", r, unit)
	})
}

func (p *Progress) add(label string, total int64, counters decor.Decorator, rate func(float64) string) *Bar {
	bar := &Bar{}
	bar.label.Store(&label)
	if p.p == nil {
		return bar
	}
	p.mu.Lock()
	p.bars = append(p.bars, bar)
	p.mu.Unlock()
	name := decor.Any(func(decor.Statistics) string { return *bar.label.Load() }, decor.WCSyncSpaceR)
	start := time.Now()
	// The average rate since the start, and the time left at that rate;
	// once done, the rate and the time it took.
	speed := decor.Any(func(s decor.Statistics) string {
		el := time.Since(start)
		r := float64(s.Current) / max(el.Seconds(), 1e-3)
		switch {
		case s.Completed:
			return rate(r) + " in " + el.Round(time.Millisecond).String()
		case s.Total <= 0 || s.Current == 0:
			return rate(r) + " ETA ?"
		}
		left := time.Duration(float64(s.Total-s.Current) / r * float64(time.Second))
		return rate(r) + " ETA " + left.Round(time.Second).String()
	})
	bar.b = p.p.AddBar(max(total, 0),
		mpb.PrependDecorators(name, decor.Percentage(decor.WCSyncSpace)),
		mpb.AppendDecorators(counters, decor.Name("  "), speed),
	)
	return bar
}

// SetLabel changes the text in front of the bar.
func (b *Bar) SetLabel(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.label.Store(&s)
}

// SetTotal sets how much there is to do, once it is known or grows.
func (b *Bar) SetTotal(n int64) {
	if b.b != nil {
		b.b.SetTotal(n, false)
	}
}

// Set sets how much is done.
func (b *Bar) Set(n int64) {
	if b.b != nil {
		b.b.SetCurrent(n)
	}
}

// Add adds to what is done.
func (b *Bar) Add(n int64) {
	if b.b != nil {
		b.b.IncrInt64(n)
	}
}

// Done completes the bar at what was done; Abort leaves it where it
// stopped (the work failed).
func (b *Bar) Done() {
	if b.b != nil {
		b.b.SetTotal(-1, true)
	}
}

// Abort stops the bar where it is.
func (b *Bar) Abort() {
	if b.b != nil && !b.b.Completed() {
		b.b.Abort(false)
	}
}

// Wait draws the bars' final state; bars not done (the work failed or
// was interrupted) stop where they are. Calls after the first return at
// once.
func (p *Progress) Wait() {
	if p.p == nil {
		return
	}
	p.wait.Do(func() {
		p.mu.Lock()
		for _, b := range p.bars {
			b.Abort()
		}
		p.mu.Unlock()
		p.p.Wait()
	})
}
