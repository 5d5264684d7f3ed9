// Package h2 serves HTTP/2 (RFC 9113) over connections that negotiated
// "h2" with ALPN, for a net/http Handler.
//
// It exists because Go's own HTTP/2 server spends most of its time per
// small response moving work between goroutines and writing every frame
// on its own: the handler waits for its HEADERS frame to be written, each
// DATA write is another round trip through the connection's serve loop,
// and the socket is flushed whenever that loop's queue runs dry. For a
// CDN node answering many 16 KiB block requests per connection that made
// gritsd use twice the CPU of nginx per request. Here a handler appends
// its frames to one connection buffer under a mutex, small responses leave
// as one HEADERS and one DATA frame with END_STREAM, and one writer
// goroutine per connection sends whatever has accumulated in a single
// write while the handlers go on.
//
// Frame parsing, header decompression and its limits come from
// golang.org/x/net/http2 (Framer) and its hpack package; this package is
// the connection and stream state machine, flow control and the
// ResponseWriter. Conformance is checked with h2spec in the tests.
//
// Not supported: server push, extended CONNECT (RFC 8441; browsers use
// HTTP/1.1 for WebSockets here), stream priorities (ignored, as RFC 9113
// allows).
package h2

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults and fixed limits.
const (
	defaultMaxStreams     = 250
	defaultMaxHeaderBytes = 64 << 10
	defaultPrefaceTimeout = 10 * time.Second
	defaultIdleTimeout    = 120 * time.Second
	defaultWriteTimeout   = 30 * time.Second

	// protocolWindow is the flow-control window every stream and the
	// connection start with (RFC 9113 §6.9.2).
	protocolWindow = 65535
	// streamRecvWindow is what each stream may send us before we have
	// handed its body to the handler (SETTINGS_INITIAL_WINDOW_SIZE);
	// connRecvWindow is the same for all streams together. They bound
	// the request-body bytes a connection can make us hold.
	streamRecvWindow = 256 << 10
	connRecvWindow   = 1 << 20
	// maxFrameSize is the largest frame we accept: the protocol's
	// default, so we never advertise SETTINGS_MAX_FRAME_SIZE.
	maxFrameSize = 16384
	// outSoftLimit is how many bytes of frames may wait for the writer
	// before handlers writing more wait; outHardLimit bounds the control
	// frames (PING and SETTINGS acknowledgements, resets) the read loop
	// queues regardless: a peer that makes us queue more than that
	// while not reading is flooding.
	outSoftLimit = 256 << 10
	outHardLimit = 4 << 20
	// outKeep is the largest write buffer a connection keeps between
	// writes; a bigger one is left to the garbage collector.
	outKeep = 1 << 20
	// respBufSize is how much of a response body the ResponseWriter
	// holds before sending: a response that fits leaves as HEADERS plus
	// one DATA frame carrying END_STREAM.
	respBufSize = 16 << 10
	// closeGrace is how long a connection that sent GOAWAY for an error
	// waits for the writer to deliver it before closing.
	closeGrace = time.Second
)

// Server serves HTTP/2 connections. Set its fields before the first
// ServeConn; they are read, not changed, afterwards.
type Server struct {
	Handler http.Handler
	// MaxConcurrentStreams is advertised in SETTINGS (default 250, as net/http).
	// Streams a client resets do not free their slot for new handlers
	// until their handler returns; a client that keeps twice this many
	// handlers busy that way loses the connection (the "rapid reset"
	// attack).
	MaxConcurrentStreams uint32
	// MaxHeaderBytes caps a request's decoded header list (default
	// 64 KiB); a request over it gets 431.
	MaxHeaderBytes int
	// PrefaceTimeout bounds the wait for the client's preface and first
	// SETTINGS frame (default 10s).
	PrefaceTimeout time.Duration
	// IdleTimeout closes a connection without streams for this long
	// (default 120s), after a GOAWAY.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to the socket (default 30s): a
	// client that stops reading loses the connection.
	WriteTimeout time.Duration
	// BaseContext is the parent of every request's context (default
	// context.Background()).
	BaseContext context.Context
	Logger      *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopping bool

	// work hands requests to idle handler goroutines: a goroutine whose
	// stack has grown to what handlers need is reused rather than a new
	// one started and grown again for every request.
	work chan func()
}

// workerIdle is how long an idle handler goroutine waits for the next
// request before it exits.
const workerIdle = 10 * time.Second

// goHandler runs f on an idle handler goroutine, or a new one.
func (s *Server) goHandler(f func()) {
	select {
	case s.work <- f:
	default:
		go s.worker(f)
	}
}

func (s *Server) worker(f func()) {
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		f()
		t.Reset(workerIdle)
		select {
		case f = <-s.work:
		case <-t.C:
			return
		}
	}
}

// ServeConn serves one connection until it closes. nc is usually the
// *tls.Conn http.Server hands to TLSNextProto["h2"]; its handshake must
// be complete.
func (s *Server) ServeConn(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
		s.work = make(chan func())
	}
	s.conns[c] = struct{}{}
	stopping := s.stopping
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	if stopping {
		c.startGoAway()
	}
	c.serve()
}

// Shutdown sends GOAWAY on every connection: each finishes the streams
// it has and then closes. Connections served afterwards close after
// their preface. Register it with http.Server.RegisterOnShutdown.
func (s *Server) Shutdown() {
	s.mu.Lock()
	s.stopping = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.startGoAway()
	}
}

// TLSNextProto returns the function http.Server wants in
// TLSNextProto["h2"] to hand negotiated connections to s.
func (s *Server) TLSNextProto() func(*http.Server, *tls.Conn, http.Handler) {
	return func(_ *http.Server, c *tls.Conn, _ http.Handler) { s.ServeConn(c) }
}

func (s *Server) maxStreams() uint32 {
	if s.MaxConcurrentStreams == 0 {
		return defaultMaxStreams
	}
	return s.MaxConcurrentStreams
}

func (s *Server) maxHeaderBytes() uint32 {
	if s.MaxHeaderBytes <= 0 {
		return defaultMaxHeaderBytes
	}
	return uint32(s.MaxHeaderBytes)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
