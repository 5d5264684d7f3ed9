package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grits-cdn/grits/internal/h2"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Server defaults.
const (
	serverDefaultMaxHeaderBytes    = 64 << 10
	serverDefaultReadHeaderTimeout = 10 * time.Second
	serverDefaultIdleTimeout       = 120 * time.Second
	serverDefaultMaxConnsPerIP     = 256
	// serverShutdownGrace bounds how long Serve waits for in-flight
	// requests after its context ends before closing connections.
	serverShutdownGrace = 5 * time.Second
	// serverBindAttempts is how often Listen tries to find a port free
	// for both TCP and UDP when asked for port 0.
	serverBindAttempts = 10
	// altSvcMaxAge is how long (seconds) clients may remember that the
	// node speaks HTTP/3.
	altSvcMaxAge = 86400
)

// ServerConfig configures Listen.
type ServerConfig struct {
	// Addr is host:port for both the TCP (HTTPS) and the UDP (HTTP/3)
	// socket. Port 0 picks a port free for both. An empty host listens on
	// all addresses.
	Addr    string
	Handler http.Handler
	// TLS must provide certificates (Certificates or GetCertificate); see
	// TLSConfig. HTTP/3 uses a copy with NextProtos set to h3.
	TLS    *tls.Config
	Logger *slog.Logger
	// MaxHeaderBytes caps request headers (default 64 KiB); HTTP/1.1
	// requests over it get 431.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the TLS handshake and reading a request's
	// headers (default 10s); IdleTimeout bounds keep-alive idleness
	// (default 120s).
	ReadHeaderTimeout, IdleTimeout time.Duration
	// MaxConnsPerIP caps concurrent TCP connections per remote address
	// (per /64 for IPv6, which hands a host a whole prefix); default 256.
	// Connections over it are closed as soon as they are accepted.
	MaxConnsPerIP int
	// HTTP2 picks the HTTP/2 server: HTTP2Grits ("" too), the gateway's
	// own (internal/h2), or HTTP2Go, net/http's, for an operator who
	// needs to rule ours out. Both pass the same tests and h2spec.
	HTTP2 string
	// WriteTimeout bounds each write to a client (default 30s): one that
	// takes nothing for that long loses the connection (HTTP/1.1, HTTP/2)
	// or the response (HTTP/3), and what it held (a handler, the app's
	// response through the proxy) is released. It bounds stalls, not
	// slow downloads: every write that completes starts it again.
	WriteTimeout time.Duration
	// BodyTimeout and BodyMinRate bound the sending of a request body:
	// it must be complete within BodyTimeout (default 30s) plus one
	// second for every BodyMinRate bytes (default 1024) received so far.
	// A client that drips its body slower has its request fail (the
	// proxy answers 408), so it cannot hold the app's upload handler.
	BodyTimeout time.Duration
	BodyMinRate int64
}

// HTTP/2 servers ServerConfig.HTTP2 can name.
const (
	HTTP2Grits = "grits"
	HTTP2Go    = "go"
)

// Server serves one handler over HTTPS on TCP (HTTP/1.1 and HTTP/2) and
// over HTTP/3 on UDP, on the same port number. Every response announces
// HTTP/3 with an Alt-Svc header.
type Server struct {
	cfg     ServerConfig
	tcp     *ipLimitListener
	udp     *net.UDPConn
	addr    string
	altSvc  string
	serving atomic.Bool
	closer  sync.Once
}

// Listen binds the TCP and UDP sockets cfg.Addr names. Serve then serves
// on them; Close releases them if Serve is never called.
func Listen(cfg ServerConfig) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("gateway: listen: no handler")
	}
	if cfg.TLS == nil || (cfg.TLS.GetCertificate == nil && len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetConfigForClient == nil) {
		return nil, errors.New("gateway: listen: TLS configuration without certificates")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = serverDefaultMaxHeaderBytes
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = serverDefaultReadHeaderTimeout
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = serverDefaultIdleTimeout
	}
	if cfg.MaxConnsPerIP <= 0 {
		cfg.MaxConnsPerIP = serverDefaultMaxConnsPerIP
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.BodyMinRate <= 0 {
		cfg.BodyMinRate = DefaultBodyMinRate
	}
	switch cfg.HTTP2 {
	case "":
		cfg.HTTP2 = HTTP2Grits
	case HTTP2Grits, HTTP2Go:
	default:
		return nil, fmt.Errorf("gateway: listen: HTTP/2 server %q: want %q or %q", cfg.HTTP2, HTTP2Grits, HTTP2Go)
	}

	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen: address %q: %w", cfg.Addr, err)
	}
	port, err := net.LookupPort("tcp", portStr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen: address %q: %w", cfg.Addr, err)
	}

	attempts := 1
	if port == 0 {
		attempts = serverBindAttempts
	}
	var tl net.Listener
	var uc *net.UDPConn
	for i := 0; ; i++ {
		tl, uc, err = bindPair(host, port)
		if err == nil {
			break
		}
		if i+1 >= attempts {
			return nil, fmt.Errorf("gateway: listen on %s: %w", cfg.Addr, err)
		}
	}

	bound := tl.Addr().(*net.TCPAddr)
	s := &Server{
		cfg:    cfg,
		tcp:    newIPLimitListener(tl, cfg.MaxConnsPerIP, cfg.WriteTimeout, cfg.Logger),
		udp:    uc,
		addr:   net.JoinHostPort(bound.IP.String(), strconv.Itoa(bound.Port)),
		altSvc: fmt.Sprintf(`%s=":%d"; ma=%d`, http3.NextProtoH3, bound.Port, altSvcMaxAge),
	}
	return s, nil
}

// bindPair binds TCP on host:port, then UDP on the same address and the
// port TCP got.
func bindPair(host string, port int) (net.Listener, *net.UDPConn, error) {
	tl, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, nil, fmt.Errorf("tcp: %w", err)
	}
	ta := tl.Addr().(*net.TCPAddr)
	ua := &net.UDPAddr{Port: ta.Port}
	if host != "" {
		ua.IP, ua.Zone = ta.IP, ta.Zone
	}
	uc, err := net.ListenUDP("udp", ua)
	if err != nil {
		tl.Close()
		return nil, nil, fmt.Errorf("udp: %w", err)
	}
	return tl, uc, nil
}

// Addr returns the host:port both sockets are bound to.
func (s *Server) Addr() string { return s.addr }

// Close releases the sockets of a Server whose Serve was never called.
// To stop a serving Server, end the context given to Serve.
func (s *Server) Close() error {
	var err error
	s.closer.Do(func() {
		err = errors.Join(s.tcp.Close(), s.udp.Close())
	})
	return err
}

// Serve serves HTTPS and HTTP/3 until ctx ends, then shuts down
// gracefully: it stops accepting, lets in-flight requests finish for up
// to 5 seconds, then closes every connection. It returns nil after a
// shutdown ctx asked for, or the error that stopped either server.
//
// HTTP/3 does not accept 0-RTT data: the http3 server hands 0-RTT
// requests of any method to the handler, and replayed early data is only
// harmless for safe methods, so the one round trip it saves is not worth
// auditing every handler for replay safety.
func (s *Server) Serve(ctx context.Context) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("gateway: Serve called more than once")
	}
	defer s.Close()
	cfg := s.cfg
	log := cfg.Logger
	handler := s.withTimeouts(s.withAltSvc(cfg.Handler))
	// Request contexts keep ctx's values but not its cancellation, so
	// in-flight requests survive into the grace period.
	baseCtx := context.WithoutCancel(ctx)

	// HTTP/2 comes from internal/h2 rather than net/http's own server:
	// it answers small block requests with half the CPU (see that
	// package). HTTP/1.1 stays with net/http.
	h2s := &h2.Server{
		Handler: handler,
		// As HTTP/3 below: plenty for a browser, and it bounds what one
		// connection can keep busy.
		MaxConcurrentStreams: 100,
		MaxHeaderBytes:       cfg.MaxHeaderBytes,
		PrefaceTimeout:       cfg.ReadHeaderTimeout,
		IdleTimeout:          cfg.IdleTimeout,
		WriteTimeout:         cfg.WriteTimeout,
		BaseContext:          baseCtx,
		Logger:               log,
	}
	tlsConf := cfg.TLS.Clone()
	// Keep protocols the caller added (acme-tls/1 for ACME).
	for _, p := range []string{"h2", "http/1.1"} {
		if !slices.Contains(tlsConf.NextProtos, p) {
			tlsConf.NextProtos = append(tlsConf.NextProtos, p)
		}
	}
	hs := &http.Server{
		Handler:           handler,
		TLSConfig:         tlsConf,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){"h2": h2s.TLSNextProto()},
		ReadHeaderTimeout: cfg.ReadHeaderTimeout, // also bounds the TLS handshake
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// Handshake failures from scanners and aborted connections are
		// routine on a public port.
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context { return baseCtx },
	}
	h3 := &http3.Server{
		Handler:        handler,
		TLSConfig:      cfg.TLS,
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		IdleTimeout:    cfg.IdleTimeout,
		Logger:         log,
		QUICConfig: &quic.Config{
			HandshakeIdleTimeout: cfg.ReadHeaderTimeout,
			MaxIdleTimeout:       30 * time.Second, // transport liveness; HTTP idleness is IdleTimeout
			MaxIncomingStreams:   100,
			Allow0RTT:            false,
		},
		ConnContext: func(context.Context, *quic.Conn) context.Context { return baseCtx },
	}

	var tcp net.Listener = h2.CorkListener(s.tcp)
	if cfg.HTTP2 == HTTP2Go {
		// net/http's own HTTP/2, with the limits ours has.
		hs.TLSNextProto = nil
		hs.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 100, MaxReadFrameSize: 16 << 10, WriteByteTimeout: cfg.WriteTimeout}
		tcp = s.tcp
	} else {
		hs.RegisterOnShutdown(h2s.Shutdown)
	}

	errc := make(chan error, 2)
	go func() {
		err := hs.ServeTLS(tcp, "", "")
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			err = fmt.Errorf("gateway: https: %w", err)
		}
		errc <- err
	}()
	go func() {
		err := h3.Serve(s.udp)
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			err = fmt.Errorf("gateway: http3: %w", err)
		}
		errc <- err
	}()
	log.Info("gateway: serving", "addr", s.addr, "protocols", "h3,h2,http/1.1", "http2", cfg.HTTP2)

	var failure error
	pending := 2
	select {
	case <-ctx.Done():
	case failure = <-errc:
		pending--
		if failure == nil || errors.Is(failure, http.ErrServerClosed) {
			failure = errors.New("gateway: server stopped unexpectedly")
		}
		log.Error("gateway: server failed; shutting down", "err", failure)
	}

	graceCtx, cancel := context.WithTimeout(baseCtx, serverShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := hs.Shutdown(graceCtx); err != nil {
			log.Warn("gateway: https shutdown incomplete; closing connections", "err", err)
			hs.Close()
		}
	})
	wg.Go(func() {
		// Shutdown closes the remaining connections itself when graceCtx
		// ends.
		if err := h3.Shutdown(graceCtx); err != nil {
			log.Warn("gateway: http3 shutdown incomplete; closed connections", "err", err)
		}
	})
	wg.Wait()
	for ; pending > 0; pending-- {
		<-errc
	}
	if failure != nil {
		return failure
	}
	log.Info("gateway: stopped", "addr", s.addr)
	return nil
}

// withAltSvc announces HTTP/3 on the same port on every response; the
// handler may override it.
func (s *Server) withAltSvc(next http.Handler) http.Handler {
	v := []string{s.altSvc} // shared by every response: never modified
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Alt-Svc"] = v
		next.ServeHTTP(w, r)
	})
}

// ipLimitListener caps concurrent connections per remote address: a
// connection over the cap is closed at accept, before any TLS work. Its
// connections also bound each write by writeTimeout.
type ipLimitListener struct {
	net.Listener
	max          int
	writeTimeout time.Duration
	logger       *slog.Logger

	mu     sync.Mutex
	counts map[netip.Prefix]int
}

func newIPLimitListener(l net.Listener, max int, writeTimeout time.Duration, logger *slog.Logger) *ipLimitListener {
	return &ipLimitListener{Listener: l, max: max, writeTimeout: writeTimeout, logger: logger, counts: make(map[netip.Prefix]int)}
}

func (l *ipLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := ipLimitKey(c.RemoteAddr())
		l.mu.Lock()
		n := l.counts[key]
		if n >= l.max {
			l.mu.Unlock()
			c.Close()
			l.logger.Debug("gateway: connection refused: per-address limit", "remote", c.RemoteAddr().String(), "limit", l.max)
			continue
		}
		l.counts[key] = n + 1
		l.mu.Unlock()
		return &ipLimitConn{Conn: c, l: l, key: key}, nil
	}
}

func (l *ipLimitListener) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.counts[key] - 1; n > 0 {
		l.counts[key] = n
	} else {
		delete(l.counts, key)
	}
}

// count reports the open connections charged to key's address.
func (l *ipLimitListener) count(addr net.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[ipLimitKey(addr)]
}

// ipLimitKey is the address a connection counts against: the IPv4
// address, or the /64 of an IPv6 one.
func ipLimitKey(a net.Addr) netip.Prefix {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{} // unknown addresses share one slot
	}
	return p
}

type ipLimitConn struct {
	net.Conn
	l    *ipLimitListener
	key  netip.Prefix
	once sync.Once
}

// Write gives every write its own deadline. net/http sets none on
// HTTP/1.1 writes (its WriteTimeout would bound a whole response, and so
// every large download), and none at all once a WebSocket is hijacked:
// a client that stops reading would hold the handler, and through the
// proxy the app, for as long as it likes.
func (c *ipLimitConn) Write(p []byte) (int, error) {
	if d := c.l.writeTimeout; d > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(d))
	}
	return c.Conn.Write(p)
}

func (c *ipLimitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
