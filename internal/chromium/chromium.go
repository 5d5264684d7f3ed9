// Package chromium drives Debian's headless Chromium over the DevTools
// protocol (chromedp) for the browser tests and the benchmark suite. A
// driver in real time matters for the service worker: --dump-dom runs
// virtual time, which stalls the worker's own timers (the per-volunteer
// deadline, hedging), so hanging-volunteer cases cannot be tested that way.
package chromium

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// Path is Debian's Chromium (apt-get install chromium; .ci/run does).
const Path = "/usr/bin/chromium"

// Options describe one browser process.
type Options struct {
	// Profile is the user data directory; a profile reused across
	// browsers keeps the service worker, its caches and its state.
	Profile string
	// SPKI, if set, makes Chromium accept certificates with this public
	// key hash (gateway.SPKIHash), as a trusted dev CA would.
	SPKI string
	// ForceQUIC lists host:port origins Chromium talks HTTP/3 to from the
	// first request (no Alt-Svc round needed).
	ForceQUIC []string
	// Flags are extra command-line switches, name → value ("" for none).
	Flags map[string]string
}

// Browser is a running Chromium with one tab.
type Browser struct {
	ctx    context.Context
	cancel context.CancelFunc
	closed sync.Once
}

// ErrNotInstalled means Chromium is not at Path.
var ErrNotInstalled = errors.New("chromium is not installed at " + Path + " (apt-get install chromium)")

// Start launches Chromium and opens a tab. Headless Chromium on a small
// shared machine now and then crashes at start; Start tries three times.
func Start(ctx context.Context, o Options) (*Browser, error) {
	if _, err := os.Stat(Path); err != nil {
		return nil, ErrNotInstalled
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path),
		chromedp.NoSandbox, // we run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// The machine has no route out: do not let Chromium try.
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-proxy-server", true),
	)
	if o.Profile != "" {
		opts = append(opts, chromedp.UserDataDir(o.Profile))
	}
	if o.SPKI != "" {
		opts = append(opts, chromedp.Flag("ignore-certificate-errors-spki-list", o.SPKI))
	}
	if len(o.ForceQUIC) > 0 {
		opts = append(opts, chromedp.Flag("origin-to-force-quic-on", strings.Join(o.ForceQUIC, ",")))
	}
	for k, v := range o.Flags {
		if v == "" {
			opts = append(opts, chromedp.Flag(k, true))
		} else {
			opts = append(opts, chromedp.Flag(k, v))
		}
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		actx, acancel := chromedp.NewExecAllocator(context.WithoutCancel(ctx), opts...)
		bctx, bcancel := chromedp.NewContext(actx)
		// The first Run starts the process; a deadline on it would end the
		// whole browser later, so the wait is bounded from outside.
		started := make(chan error, 1)
		go func() {
			// chromedp turns on the DevTools Network domain for the tab, and
			// Chromium then copies every response body and reports every
			// chunk to us: a 50 MiB download crawled at 13 MB/s on loopback.
			// The tests and benchmarks read what they need from the page.
			started <- chromedp.Do(bctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(ctx, t, network.Disable, cdp.Empty{})
				return err
			}))
		}()
		var err error
		select {
		case err = <-started:
		case <-time.After(60 * time.Second):
			err = errors.New("no answer in 60 s")
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err == nil {
			b := &Browser{ctx: bctx}
			b.cancel = func() { bcancel(); acancel() }
			return b, nil
		}
		bcancel()
		acancel()
		lastErr = err
	}
	return nil, fmt.Errorf("start chromium: %w", lastErr)
}

// Close ends the browser process (and waits for it), so that another
// browser may open the same profile.
// Close may be called more than once.
func (b *Browser) Close() {
	if b == nil {
		return
	}
	b.closed.Do(func() {
		// Cancelling the browser context closes the browser gracefully and
		// waits for the process; the allocator context then kills leftovers.
		_ = chromedp.Cancel(b.ctx)
		b.cancel()
	})
}

// Navigate loads url in the tab and waits for its load event.
func (b *Browser) Navigate(ctx context.Context, url string) error {
	_, err := run(ctx, b, chromedp.Navigate(url))
	return err
}

// Eval evaluates a JavaScript expression in the page, awaiting it if it
// is a promise, and decodes its JSON value into out (nil to discard).
func (b *Browser) Eval(ctx context.Context, expr string, out any) error {
	raw, err := run(ctx, b, chromedp.Evaluate[[]byte](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%.60s: result %.200s: %w", expr, raw, err)
	}
	return nil
}

// Wait polls a JavaScript expression until it is truthy or ctx ends.
func (b *Browser) Wait(ctx context.Context, expr string) error {
	timeout := time.Minute
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	_, err := run(ctx, b, chromedp.Poll[[]byte](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	return err
}

// run runs an action in the tab, bounded by ctx. chromedp takes the
// deadline from the context it is given, which must carry the tab: a
// child of the tab's context that also ends with ctx.
func run[T any](ctx context.Context, b *Browser, a chromedp.Action[T]) (T, error) {
	tctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	v, err := chromedp.Run(tctx, a)
	if err != nil && ctx.Err() != nil {
		return v, fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return v, err
}

// Screenshot returns a PNG of the whole page, beyond the viewport.
func (b *Browser) Screenshot(ctx context.Context) ([]byte, error) {
	return run(ctx, b, chromedp.FullScreenshot(100))
}
