package datadir

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/grits-cdn/grits/tree"
)

// RootFollower tracks the newest root in a data directory's log while
// another process (gritsd import) appends to it. It satisfies
// transport.Roots.
type RootFollower struct {
	path   string
	latest atomic.Pointer[tree.Root]
	done   chan struct{}
}

// FollowRoots starts following the log; the goroutine stops with ctx,
// and Done is closed when it has.
func (d *Dir) FollowRoots(ctx context.Context, every time.Duration) *RootFollower {
	f := &RootFollower{path: d.path("roots.log"), done: make(chan struct{})}
	if r, ok := d.Log.Latest(); ok {
		f.latest.Store(&r)
	}
	go func() {
		defer close(f.done)
		t := time.NewTicker(every)
		defer t.Stop()
		var lastSize int64 = -1
		var lastMod time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			st, err := os.Stat(f.path)
			if err != nil || st.Size() == lastSize && st.ModTime().Equal(lastMod) {
				continue
			}
			if f.Reread(ctx) == nil {
				lastSize, lastMod = st.Size(), st.ModTime()
			}
		}
	}()
	return f
}

// Reread reads the log now and takes its latest root: an import in
// another process asks the daemon for this (over the admin socket) so
// that what it committed is served at once, not at the next poll.
func (f *RootFollower) Reread(ctx context.Context) error {
	l, err := tree.ReadLog(ctx, f.path)
	if err != nil {
		return fmt.Errorf("reread roots: %w", err)
	}
	defer l.Close()
	if r, ok := l.Latest(); ok {
		f.Offer(r)
	}
	return nil
}

// Offer makes r the latest root if it is newer than the current one (a
// caller that just committed need not wait for the next poll).
func (f *RootFollower) Offer(r tree.Root) {
	for {
		cur := f.latest.Load()
		if cur != nil && cur.Seq >= r.Seq {
			return
		}
		if f.latest.CompareAndSwap(cur, &r) {
			return
		}
	}
}

// Latest returns the newest root seen.
func (f *RootFollower) Latest() (tree.Root, bool) {
	r := f.latest.Load()
	if r == nil {
		return tree.Root{}, false
	}
	return *r, true
}

// Done is closed when the following goroutine has stopped.
func (f *RootFollower) Done() <-chan struct{} { return f.done }
