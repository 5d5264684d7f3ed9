// Package logging builds gritsd's slog handlers: text for a person at a
// terminal, JSON lines for journald and log shippers; a level and a
// format that can change while loggers derived from it live on (SIGHUP
// reloads log_level); repeated warnings and errors rate-limited so that
// a failing peer cannot flood the log; and a last guard that keeps join
// tokens and private keys out of it.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Formats.
const (
	FormatAuto = "auto" // text on a terminal, JSON otherwise
	FormatText = "text"
	FormatJSON = "json"
)

// DefaultEvery is how often one repeated warning or error is logged.
const DefaultEvery = 30 * time.Second

// Options configure New.
type Options struct {
	// Terminal says whether the writer is a terminal (FormatAuto picks
	// text then).
	Terminal bool
	// Every is the rate limit window of repeated warnings and errors
	// (default DefaultEvery; negative disables the limit).
	Every time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Control changes the level and format of the loggers made from it.
type Control struct {
	w        io.Writer
	terminal bool
	level    slog.LevelVar
	base     atomic.Pointer[slog.Handler]
	limiter  *limiter
}

// New returns a Control writing to w at level warn, format auto.
func New(w io.Writer, o Options) *Control {
	c := &Control{w: w, terminal: o.Terminal}
	c.level.Set(slog.LevelWarn)
	if o.Every == 0 {
		o.Every = DefaultEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Every > 0 {
		c.limiter = &limiter{every: o.Every, now: o.Now, seen: map[limitKey]*limitEntry{}}
	}
	if err := c.SetFormat(FormatAuto); err != nil {
		panic(err) // FormatAuto is always valid
	}
	return c
}

// Logger returns a logger whose records follow the Control's level and
// format, even those of loggers derived from it before a change.
func (c *Control) Logger() *slog.Logger {
	var h slog.Handler = &switchHandler{c: c}
	if c.limiter != nil {
		h = &limitHandler{next: h, l: c.limiter}
	}
	return slog.New(h)
}

// SetLevel sets the lowest level logged.
func (c *Control) SetLevel(l slog.Level) { c.level.Set(l) }

// Level is the lowest level logged.
func (c *Control) Level() slog.Level { return c.level.Level() }

// SetFormat switches between text and JSON ("" is auto).
func (c *Control) SetFormat(f string) error {
	opts := &slog.HandlerOptions{Level: &c.level, ReplaceAttr: redact}
	var h slog.Handler
	switch f {
	case FormatAuto, "":
		if c.terminal {
			h = slog.NewTextHandler(c.w, opts)
		} else {
			h = slog.NewJSONHandler(c.w, opts)
		}
	case FormatText:
		h = slog.NewTextHandler(c.w, opts)
	case FormatJSON:
		h = slog.NewJSONHandler(c.w, opts)
	default:
		return fmt.Errorf("log format %q: want auto, text or json", f)
	}
	c.base.Store(&h)
	return nil
}

// switchHandler replays its WithAttrs/WithGroup calls onto whichever
// base handler is current, caching the result per base.
type switchHandler struct {
	c     *Control
	ops   []func(slog.Handler) slog.Handler
	cache atomic.Pointer[derived]
}

type derived struct {
	base *slog.Handler
	h    slog.Handler
}

func (s *switchHandler) handler() slog.Handler {
	base := s.c.base.Load()
	if d := s.cache.Load(); d != nil && d.base == base {
		return d.h
	}
	h := *base
	for _, op := range s.ops {
		h = op(h)
	}
	s.cache.Store(&derived{base: base, h: h})
	return h
}

func (s *switchHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= s.c.level.Level() }

func (s *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return s.handler().Handle(ctx, r)
}

func (s *switchHandler) with(op func(slog.Handler) slog.Handler) slog.Handler {
	ops := append(s.ops[:len(s.ops):len(s.ops)], op)
	return &switchHandler{c: s.c, ops: ops}
}

func (s *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return s.with(func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })
}

func (s *switchHandler) WithGroup(name string) slog.Handler {
	return s.with(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

// limiter remembers, per level and message, when a warning or error was
// last written and how many were dropped since.
type limiter struct {
	every time.Duration
	now   func() time.Time
	mu    sync.Mutex
	seen  map[limitKey]*limitEntry
}

type limitKey struct {
	level slog.Level
	msg   string
}

type limitEntry struct {
	last       time.Time
	suppressed int
}

// maxLimitKeys bounds the limiter's memory: messages are constants in
// the code, so a few hundred distinct ones is already unusual.
const maxLimitKeys = 1024

// admit says whether a record may be written now, and how many like it
// were suppressed before it.
func (l *limiter) admit(level slog.Level, msg string) (bool, int) {
	now := l.now()
	k := limitKey{level, msg}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.seen[k]
	if e != nil && now.Sub(e.last) < l.every {
		e.suppressed++
		return false, 0
	}
	if e == nil {
		if len(l.seen) >= maxLimitKeys {
			for key, old := range l.seen {
				if now.Sub(old.last) >= l.every {
					delete(l.seen, key)
				}
			}
			if len(l.seen) >= maxLimitKeys {
				clear(l.seen)
			}
		}
		e = &limitEntry{}
		l.seen[k] = e
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return true, n
}

// limitHandler writes a repeated warning or error at most once per
// window; the next one that passes carries the count of those dropped.
// Debug and info records pass untouched.
type limitHandler struct {
	next slog.Handler
	l    *limiter
}

func (h *limitHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	ok, n := h.l.admit(r.Level, r.Message)
	if !ok {
		return nil
	}
	if n > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", n), slog.Duration("window", h.l.every))
	}
	return h.next.Handle(ctx, r)
}

func (h *limitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitHandler{next: h.next.WithAttrs(as), l: h.l}
}

func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{next: h.next.WithGroup(name), l: h.l}
}

// Secrets that must never reach a log, however they got into a message.
var secretMarkers = []struct{ marker, replacement string }{
	{"grits-join-", "[redacted: join token]"},
	{"PRIVATE KEY", "[redacted: private key]"},
}

// redact replaces an attribute whose text carries a join token or a PEM
// private key. The code logs neither; this is the guard for the day an
// error message wraps one.
func redact(_ []string, a slog.Attr) slog.Attr {
	var s string
	switch a.Value.Kind() {
	case slog.KindString:
		s = a.Value.String()
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			s = v.Error()
		case fmt.Stringer:
			s = v.String()
		default:
			return a
		}
	default:
		return a
	}
	for _, m := range secretMarkers {
		if strings.Contains(s, m.marker) {
			return slog.String(a.Key, m.replacement)
		}
	}
	return a
}
