package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Defaults of what a slow client may hold.
const (
	// DefaultWriteTimeout bounds one write to a client: a client that
	// takes nothing for this long loses the connection.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultBodyTimeout and DefaultBodyMinRate bound the sending of a
	// request body: the grace before it must arrive at the rate, and the
	// rate (bytes per second) that buys more time beyond it.
	DefaultBodyTimeout = 30 * time.Second
	DefaultBodyMinRate = 1024
)

// errSlowBody is what a handler reads once a client has sent its request
// body slower than the server allows. It matches os.ErrDeadlineExceeded.
var errSlowBody = fmt.Errorf("request body sent too slowly: %w", os.ErrDeadlineExceeded)

// withTimeouts bounds what a slow client can hold of this node and of
// the app behind the proxy, on every protocol:
//   - a request body must arrive within BodyTimeout plus one second per
//     BodyMinRate bytes received: a client dripping an upload (a
//     slowloris POST) loses it, and the proxy stops feeding the app;
//   - over HTTP/3 each response write must complete within
//     WriteTimeout, so a client that stops reading cannot keep a
//     handler, or the app's response through the proxy, waiting. Over
//     TCP the connection bounds each of its writes itself
//     (ipLimitConn), which covers HTTP/1.1 and hijacked WebSockets;
//     internal/h2 resets a stream whose window stays shut that long, and
//     Go's HTTP/2 server gets it as WriteByteTimeout.
//
// Both go through http.ResponseController, which net/http, internal/h2
// and quic-go's http3 implement, so it must wrap the server's own
// ResponseWriter: it is the outermost handler.
func (s *Server) withTimeouts(next http.Handler) http.Handler {
	cfg := s.cfg
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			b := &slowBodyGuard{body: r.Body, rc: http.NewResponseController(w), start: time.Now(),
				grace: cfg.BodyTimeout, rate: cfg.BodyMinRate}
			b.extend()
			r = r.WithContext(context.WithValue(r.Context(), slowBodyKey{}, b))
			r.Body = b
		}
		if r.ProtoMajor == 3 {
			w = &writeDeadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: cfg.WriteTimeout}
		}
		next.ServeHTTP(w, r)
	})
}

// slowBodyGuard moves a request's read deadline along with the bytes
// received: start + grace + received/rate.
type slowBodyGuard struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	grace time.Duration
	rate  int64
	n     int64
	set   time.Time // the deadline last set
	done  bool
	// deadline (Unix ns) and finished mirror set and done for other
	// goroutines (the proxy's error handler).
	deadline atomic.Int64
	finished atomic.Bool
}

// overdue reports whether the body's deadline passed before it was
// whole: the proxy's error handler asks, since on HTTP/1.1 the request
// is cancelled by the same timeout, and that error can reach it first.
func (b *slowBodyGuard) overdue(now time.Time) bool {
	return !b.finished.Load() && now.UnixNano() >= b.deadline.Load()
}

// slowBodyKey finds a request's slowBodyGuard in its context, which
// survives what wraps the body (the proxy's outgoing request does).
type slowBodyKey struct{}

// bodyTooSlow reports whether r's body was cut for coming too slowly.
func bodyTooSlow(r *http.Request, err error) bool {
	if errors.Is(err, errSlowBody) {
		return true
	}
	g, ok := r.Context().Value(slowBodyKey{}).(*slowBodyGuard)
	return ok && g.overdue(time.Now())
}

func (b *slowBodyGuard) due() time.Time {
	return b.start.Add(b.grace + time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second)))
}

// extend sets the deadline the bytes so far have earned; it moves it
// only by whole seconds, so a fast upload does not reset a timer per
// read.
func (b *slowBodyGuard) extend() {
	if due := b.due(); b.set.IsZero() || due.Sub(b.set) >= time.Second {
		if b.rc.SetReadDeadline(due) == nil {
			b.set = due
			b.deadline.Store(due.UnixNano())
		}
	}
}

func (b *slowBodyGuard) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.n += int64(n)
	switch {
	case err == nil:
		b.extend()
	case errors.Is(err, io.EOF):
		if !b.done {
			// The whole body is in: the deadline must not outlive it
			// (net/http watches an idle HTTP/1.1 connection with reads
			// that the deadline would fail, cancelling the request).
			b.done = true
			b.finished.Store(true)
			b.rc.SetReadDeadline(time.Time{})
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: %d bytes in %v", errSlowBody, b.n, time.Since(b.start).Round(time.Millisecond))
	}
	return n, err
}

func (b *slowBodyGuard) Close() error { return b.body.Close() }

// writeDeadlineWriter gives every write and flush of a response its own
// deadline.
type writeDeadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *writeDeadlineWriter) Write(p []byte) (int, error) {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

func (w *writeDeadlineWriter) Flush() {
	w.rc.SetWriteDeadline(time.Now().Add(w.d))
	w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *writeDeadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
