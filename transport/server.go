package transport

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// ALPN names the protocol version on the wire.
const ALPN = "grits/1"

// Application error codes for QUIC stream resets and connection closes.
const (
	codeNoError      quic.ApplicationErrorCode = 0
	codeRefused      quic.ApplicationErrorCode = 1 // connection limit or not authorized
	codeShutdown     quic.ApplicationErrorCode = 2
	streamCancelled  quic.StreamErrorCode      = 1
	streamTimeout    quic.StreamErrorCode      = 2
	streamBadRequest quic.StreamErrorCode      = 3
)

// Roots is where a server finds the newest signed root it serves.
// tree.Log satisfies it.
type Roots interface {
	Latest() (tree.Root, bool)
}

// RootHistory is a Roots that also keeps the roots before the latest,
// oldest first, each chained to the one before: *tree.Log satisfies it.
// A server whose Roots is one answers GetRoots with the chain a peer
// lacks; with any other Roots it can offer only the latest root.
type RootHistory interface {
	Roots() []tree.Root
}

// Peer describes the other end of a connection for authorization.
type Peer struct {
	Addr net.Addr
	// ID is the node key the peer proved; HasID is false for read-only
	// clients that presented no certificate.
	ID    NodeID
	HasID bool
	// Credential is the credential the peer's certificate carries
	// (PeerCredential), nil if none. Only ID is proven by the handshake;
	// the credential is whatever the peer chose to embed, for the
	// membership layer to verify. Every request of a connection shares
	// the slice: do not modify it.
	Credential []byte
}

type peerKey struct{}

// ContextWithPeer returns ctx carrying p. The server gives every request
// such a context (Store.Get, the Enroll and SwarmKeys hooks, Authorize);
// tests and callers acting on behalf of a peer make their own.
func ContextWithPeer(ctx context.Context, p Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFromContext returns the peer a request came from, if ctx carries
// one (ContextWithPeer).
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// ServerConfig configures a Server. Zero values take the defaults.
type ServerConfig struct {
	// Identity is this node's certificate (see Certificate). Required.
	Identity tls.Certificate
	// Store holds the blocks served. Required.
	Store tree.Getter
	// Roots gives the latest signed root; nil serves blocks and lookups
	// of explicit trees only.
	Roots Roots
	// Authorize decides, after the handshake, whether a connection may
	// make requests. nil allows everyone: blocks are public and verified.
	// It must not block for long.
	Authorize func(ctx context.Context, p Peer) error
	// Enroll answers an Enroll request from p with the grant to send
	// (1..proto.MaxGrantSize bytes). Its error goes to the client through
	// proto.ErrorFor, so wrap proto.ErrUnauthorized, ErrBadRequest, ...
	// to choose the code; the error's text goes out with those, so it
	// must not contain the token. nil answers every Enroll with
	// ErrBadRequest: this node does not enroll. Enroll requests are
	// never answered before the handshake completes.
	Enroll func(ctx context.Context, p Peer, token []byte) ([]byte, error)
	// SwarmKeys answers a GetSwarmKeys request from p (1..
	// proto.MaxSwarmKeysSize bytes), with errors as for Enroll. nil
	// answers ErrBadRequest: this node does not hand out swarm keys.
	SwarmKeys func(ctx context.Context, p Peer) ([]byte, error)
	// TLSCert answers a GetTLSCert request from p (its body, a
	// certificate request) with the certificate chain to send (1..
	// proto.MaxTLSCertSize bytes), with errors as for Enroll. nil answers
	// ErrBadRequest: this node issues no TLS certificates.
	TLSCert func(ctx context.Context, p Peer, request []byte) ([]byte, error)

	MaxStreamsPerConn int64         // concurrent requests per connection; default 100
	MaxConnsPerIP     int           // default 32
	MaxConns          int           // default 4096
	RequestTimeout    time.Duration // to receive a request; default 10s
	ResponseTimeout   time.Duration // to finish writing an answer; default 60s
	HandshakeTimeout  time.Duration // default 5s
	IdleTimeout       time.Duration // default 60s
	// InlineMax caps inline file data in lookups; default proto.InlineMax.
	InlineMax int
	Logger    *slog.Logger
	// OnAnswer, if set, is called after each request the server read,
	// once its answer is written or abandoned: metrics. It must not block.
	OnAnswer func(Answer)
	// RateLimit is the requests per second one client address may make
	// (an IPv6 client's /64), and RateBurst how many it may make at once
	// (default twice RateLimit); a GetBlocks counts one request per 16
	// hashes it names. Requests over it are answered Overloaded, saying
	// when to retry. 0 or less: no limit. Exempt, if set, names the
	// peers it does not apply to (a node exempts the swarm's members,
	// whose fetches its own settings bound); it must not block.
	RateLimit float64
	RateBurst int
	Exempt    func(Peer) bool
}

// Answer describes one request and how it ended, for OnAnswer.
type Answer struct {
	Type proto.Type
	// Err is nil for a request answered in full; else why it was not
	// (sent to the peer as an Error frame unless the stream was cut).
	Err error
	// Bytes is what the answer put on the stream.
	Bytes int64
	// Duration runs from the whole request read to the answer flushed.
	Duration time.Duration
}

func (c *ServerConfig) setDefaults() error {
	if len(c.Identity.Certificate) == 0 {
		return errors.New("transport: server needs an identity certificate")
	}
	if c.Store == nil {
		return errors.New("transport: server needs a store")
	}
	if c.MaxStreamsPerConn <= 0 {
		c.MaxStreamsPerConn = 100
	}
	if c.MaxConnsPerIP <= 0 {
		c.MaxConnsPerIP = 32
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 4096
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.ResponseTimeout <= 0 {
		c.ResponseTimeout = 60 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.InlineMax <= 0 || c.InlineMax > proto.InlineMax {
		c.InlineMax = proto.InlineMax
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// ServerStats counts what a server did, for tests and status output.
type ServerStats struct {
	Conns, Refused, Requests, BadRequests, Blocks, Lookups, BytesSent int64
	// Limited counts requests refused over a client's budget
	// (ServerConfig.RateLimit).
	Limited int64
}

// Server answers grits/1 requests.
type Server struct {
	cfg ServerConfig

	mu     sync.Mutex
	perIP  map[netip.Addr]int
	nconns int
	// byID holds the open connections of each node ID, for Disconnect.
	byID map[NodeID]map[*quic.Conn]struct{}

	conns, refused, requests, badRequests, blocks, lookups, bytesSent atomic.Int64

	budget  *requestBudget // nil: no rate limit
	limited atomic.Int64
}

// NewServer checks the configuration.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, perIP: map[netip.Addr]int{}, byID: map[NodeID]map[*quic.Conn]struct{}{}}
	if cfg.RateLimit > 0 {
		s.budget = newRequestBudget(cfg.RateLimit, cfg.RateBurst)
	}
	return s, nil
}

// track records conn as one of id's open connections until untrack.
func (s *Server) track(id NodeID, conn *quic.Conn) (untrack func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.byID[id]
	if set == nil {
		set = map[*quic.Conn]struct{}{}
		s.byID[id] = set
	}
	set[conn] = struct{}{}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.byID[id], conn)
		if len(s.byID[id]) == 0 {
			delete(s.byID, id)
		}
	}
}

// Disconnect closes every open connection whose peer proved node ID id
// (application error "refused", reason "banned") and returns how many it
// closed; requests in flight on them are cut off. It does not stop the
// node from connecting again: Authorize must refuse it from now on, so
// update what Authorize consults before calling Disconnect. A connection
// is counted from its handshake on, before Authorize has judged it, so
// one that was being admitted while the state changed is closed too.
func (s *Server) Disconnect(id NodeID) int {
	s.mu.Lock()
	conns := make([]*quic.Conn, 0, len(s.byID[id]))
	for conn := range s.byID[id] {
		conns = append(conns, conn)
	}
	s.mu.Unlock()
	n := 0
	for _, conn := range conns {
		if conn.Context().Err() == nil {
			n++
		}
		conn.CloseWithError(codeRefused, "banned")
	}
	if n > 0 {
		s.cfg.Logger.Info("disconnected node", "node", id, "conns", n)
	}
	return n
}

// Stats returns counters since the server started.
func (s *Server) Stats() ServerStats {
	return ServerStats{Conns: s.conns.Load(), Refused: s.refused.Load(), Requests: s.requests.Load(),
		BadRequests: s.badRequests.Load(), Blocks: s.blocks.Load(), Lookups: s.lookups.Load(), BytesSent: s.bytesSent.Load(),
		Limited: s.limited.Load()}
}

func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		Certificates:          []tls.Certificate{s.cfg.Identity},
		NextProtos:            []string{ALPN},
		MinVersion:            tls.VersionTLS13,
		ClientAuth:            tls.RequestClientCert,
		VerifyPeerCertificate: verifyAnyNodeCert,
	}
}

func (s *Server) quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:  s.cfg.HandshakeTimeout,
		MaxIdleTimeout:        s.cfg.IdleTimeout,
		MaxIncomingStreams:    s.cfg.MaxStreamsPerConn,
		MaxIncomingUniStreams: -1,
		KeepAlivePeriod:       s.cfg.IdleTimeout / 3,
		// No 0-RTT: streams wait for the handshake anyway (the peer
		// must be known to authorize it), so it would save no round
		// trip; see the client's dial.
		Allow0RTT: false,
	}
}

// admit counts a new connection from addr, or refuses it over a limit.
func (s *Server) admit(addr net.Addr) (release func(), err error) {
	ip := addrIP(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nconns >= s.cfg.MaxConns {
		return nil, fmt.Errorf("server has %d connections, the limit", s.nconns)
	}
	if s.perIP[ip] >= s.cfg.MaxConnsPerIP {
		return nil, fmt.Errorf("%v has %d connections, the per-address limit", ip, s.perIP[ip])
	}
	s.nconns++
	s.perIP[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.nconns--
			if s.perIP[ip]--; s.perIP[ip] <= 0 {
				delete(s.perIP, ip)
			}
			s.mu.Unlock()
		})
	}, nil
}

func (s *Server) crowded(addr net.Addr) bool {
	ip := addrIP(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perIP[ip] >= max(1, s.cfg.MaxConnsPerIP/2) || s.nconns >= max(1, s.cfg.MaxConns/2)
}

func addrIP(a net.Addr) netip.Addr {
	if ua, ok := a.(*net.UDPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ua.IP); ok {
			return ip.Unmap()
		}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Serve answers connections arriving on pc until ctx is cancelled, then
// stops accepting, lets requests in flight finish for up to a few
// seconds, and closes every connection.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	tr := &quic.Transport{
		Conn: pc,
		// An address that already holds half its connection slots must
		// prove it is real (a Retry round trip) before it gets another:
		// Initial packets cost nothing to send from a forged address,
		// and each one that is admitted holds a slot until the handshake
		// times out.
		VerifySourceAddress: s.crowded,
		ConnContext: func(cctx context.Context, info *quic.ClientInfo) (context.Context, error) {
			release, err := s.admit(info.RemoteAddr)
			if err != nil {
				s.refused.Add(1)
				s.cfg.Logger.Debug("connection refused", "remote", info.RemoteAddr, "err", err)
				return nil, err
			}
			context.AfterFunc(cctx, release)
			return cctx, nil
		},
	}
	ln, err := tr.ListenEarly(s.tlsConfig(), s.quicConfig())
	if err != nil {
		return fmt.Errorf("transport: listen: %w", err)
	}
	s.cfg.Logger.Info("serving grits/1", "addr", pc.LocalAddr())
	var wg sync.WaitGroup
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConns()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var acceptErr error
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			acceptErr = err
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, connCtx, conn)
		}()
	}
	// Graceful: in-flight requests get a moment, then everything closes.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
	stopConns()
	<-done
	closeErr := tr.Close()
	if ctx.Err() != nil {
		return nil // asked to stop
	}
	// Accept failed on its own (the socket went away): that is an error
	// the caller must see, not a clean stop.
	return errors.Join(fmt.Errorf("transport: accept: %w", acceptErr), closeErr)
}

// serveConn accepts requests until the connection or serve (the
// server's life) ends; requests run under ctx, which outlives serve by
// the shutdown grace period.
func (s *Server) serveConn(serve, ctx context.Context, conn *quic.Conn) {
	s.conns.Add(1)
	peer := Peer{Addr: conn.RemoteAddr()}
	// Streams may arrive as 0-RTT data before the handshake completes;
	// the peer's identity is only known after it.
	select {
	case <-conn.HandshakeComplete():
	case <-conn.Context().Done():
		return
	case <-serve.Done():
		conn.CloseWithError(codeShutdown, "shutting down")
		return
	}
	cs := conn.ConnectionState().TLS
	if id, err := PeerID(cs); err == nil {
		peer.ID, peer.HasID = id, true
		peer.Credential = PeerCredential(cs)
		// Tracked before Authorize runs: a Disconnect that follows a
		// change Authorize did not see yet still finds the connection.
		defer s.track(id, conn)()
	}
	ctx = ContextWithPeer(ctx, peer)
	if s.cfg.Authorize != nil {
		if err := s.cfg.Authorize(ctx, peer); err != nil {
			s.refused.Add(1)
			s.cfg.Logger.Info("connection not authorized", "remote", peer.Addr, "node", peer.ID, "err", err)
			conn.CloseWithError(codeRefused, "not authorized")
			return
		}
	}
	var wg sync.WaitGroup
	for {
		st, err := conn.AcceptStream(serve)
		if err != nil {
			wg.Wait()
			if serve.Err() != nil {
				conn.CloseWithError(codeShutdown, "shutting down")
			}
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveStream(ctx, st)
		}()
	}
}

// countingWriter counts bytes written to the stream, into the server's
// total and the request's own.
type countingWriter struct {
	w   io.Writer
	n   *atomic.Int64
	req *int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	*c.req += int64(n)
	return n, err
}

func (s *Server) serveStream(ctx context.Context, st *quic.Stream) {
	// A peer that opens streams and never sends a request must not hold
	// them: the deadline frees the stream and its flow-control credit.
	st.SetReadDeadline(time.Now().Add(s.cfg.RequestTimeout))
	req, err := proto.ReadRequest(bufio.NewReaderSize(st, 512))
	if err != nil {
		s.badRequests.Add(1)
		st.CancelRead(streamBadRequest)
		if !isTimeout(err) {
			code := proto.CodeBadRequest
			if errors.Is(err, proto.ErrFrameTooLarge) {
				code = proto.CodeTooLarge // SPEC.md section 2, "Refuse"
			}
			st.SetWriteDeadline(time.Now().Add(time.Second))
			_ = proto.WriteMessage(st, proto.NewError(code, err.Error()))
			st.Close()
		} else {
			st.CancelWrite(streamTimeout)
		}
		return
	}
	s.requests.Add(1)
	var sent int64
	var failed error
	if s.cfg.OnAnswer != nil {
		start := time.Now()
		defer func() {
			s.cfg.OnAnswer(Answer{Type: req.Type(), Err: failed, Bytes: sent, Duration: time.Since(start)})
		}()
	}
	// The request is whole; anything more the client sends is ignored.
	st.CancelRead(codeOK)
	// A slow reader gets until the deadline to take the answer.
	st.SetWriteDeadline(time.Now().Add(s.cfg.ResponseTimeout))
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(st.Context(), cancel) // the peer reset the stream
	defer stop()

	w := bufio.NewWriterSize(countingWriter{st, &s.bytesSent, &sent}, 64<<10)
	err = s.charge(rctx, req)
	if err == nil {
		err = s.answer(rctx, req, w)
	}
	if err != nil {
		failed = err
		if rctx.Err() != nil || isTimeout(err) {
			st.CancelWrite(streamCancelled)
			return
		}
		s.cfg.Logger.Debug("request failed", "type", req.Type(), "err", err)
		w.Reset(countingWriter{st, &s.bytesSent, &sent})
		_ = proto.WriteMessage(w, proto.ErrorFor(err))
	}
	if err := w.Flush(); err != nil {
		failed = cmp.Or(failed, err)
		st.CancelWrite(streamCancelled)
		return
	}
	st.Close()
}

const codeOK quic.StreamErrorCode = 0

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// answer writes the response frames for one request. An error before
// anything was written becomes an Error frame.
func (s *Server) answer(ctx context.Context, req proto.Message, w *bufio.Writer) error {
	switch req := req.(type) {
	case *proto.GetRoot:
		r, ok := s.latest()
		if !ok {
			return fmt.Errorf("%w: this node holds no signed root yet", proto.ErrNotFound)
		}
		return proto.WriteMessage(w, &proto.Root{Root: r})
	case *proto.GetBlock:
		b, err := s.block(ctx, req.Hash, req.Offset, req.Length, req.AcceptZstd)
		if err != nil {
			return err
		}
		return proto.WriteMessage(w, b)
	case *proto.GetBlocks:
		for _, h := range req.Hashes {
			b, err := s.block(ctx, h, 0, 0, req.AcceptZstd)
			var m proto.Message = b
			switch {
			case errors.Is(err, blockstore.ErrNotFound) || errors.Is(err, blockstore.ErrCorrupt):
				m = &proto.Missing{Hash: h}
			case err != nil:
				return err
			}
			if err := proto.WriteMessage(w, m); err != nil {
				return err
			}
			// Stream each block as soon as it is read.
			if err := w.Flush(); err != nil {
				return err
			}
		}
		return nil
	case *proto.Lookup:
		return s.lookup(ctx, req, w)
	case *proto.GetRoots:
		return s.roots(req, w)
	case *proto.Enroll:
		if s.cfg.Enroll == nil {
			return fmt.Errorf("%w: this node does not enroll", proto.ErrBadRequest)
		}
		p, _ := PeerFromContext(ctx)
		body, err := s.cfg.Enroll(ctx, p, req.Token)
		if err != nil {
			return err
		}
		if len(body) < 1 || len(body) > proto.MaxGrantSize {
			s.cfg.Logger.Error("Enroll hook returned a grant outside 1..proto.MaxGrantSize", "bytes", len(body))
			return fmt.Errorf("%w: grant of %d bytes", proto.ErrInternal, len(body))
		}
		return proto.WriteMessage(w, &proto.Grant{Body: body})
	case *proto.GetSwarmKeys:
		if s.cfg.SwarmKeys == nil {
			return fmt.Errorf("%w: this node does not hand out swarm keys", proto.ErrBadRequest)
		}
		p, _ := PeerFromContext(ctx)
		body, err := s.cfg.SwarmKeys(ctx, p)
		if err != nil {
			return err
		}
		if len(body) < 1 || len(body) > proto.MaxSwarmKeysSize {
			s.cfg.Logger.Error("SwarmKeys hook returned keys outside 1..proto.MaxSwarmKeysSize", "bytes", len(body))
			return fmt.Errorf("%w: swarm keys of %d bytes", proto.ErrInternal, len(body))
		}
		return proto.WriteMessage(w, &proto.SwarmKeys{Body: body})
	case *proto.GetTLSCert:
		if s.cfg.TLSCert == nil {
			return fmt.Errorf("%w: this node issues no TLS certificates", proto.ErrBadRequest)
		}
		p, _ := PeerFromContext(ctx)
		body, err := s.cfg.TLSCert(ctx, p, req.Body)
		if err != nil {
			return err
		}
		if len(body) < 1 || len(body) > proto.MaxTLSCertSize {
			s.cfg.Logger.Error("TLSCert hook returned a chain outside 1..proto.MaxTLSCertSize", "bytes", len(body))
			return fmt.Errorf("%w: certificate of %d bytes", proto.ErrInternal, len(body))
		}
		return proto.WriteMessage(w, &proto.TLSCert{Body: body})
	}
	return fmt.Errorf("%w: %v is not a request this server answers", proto.ErrBadRequest, req.Type())
}

// roots answers GetRoots: the roots after req.After, from the history
// when Roots keeps one, else the latest root alone. A chain that would
// not start at After+1 is not sent (the client would rightly call it
// broken): the answer is NotFound, and the client asks elsewhere.
func (s *Server) roots(req *proto.GetRoots, w *bufio.Writer) error {
	latest, ok := s.latest()
	if !ok || latest.Seq <= req.After {
		return nil // nothing newer; also spares copying the history
	}
	var chain []tree.Root
	if h, isHistory := s.cfg.Roots.(RootHistory); isHistory {
		all := h.Roots()
		i := len(all)
		for i > 0 && all[i-1].Seq > req.After {
			i--
		}
		chain = all[i:]
	} else {
		chain = []tree.Root{latest}
	}
	if len(chain) == 0 {
		return nil
	}
	if chain[0].Seq != req.After+1 {
		return fmt.Errorf("%w: this node holds roots from seq %d on, not seq %d", proto.ErrNotFound, chain[0].Seq, req.After+1)
	}
	for _, r := range chain[:min(uint64(len(chain)), req.Max)] {
		if err := proto.WriteMessage(w, &proto.Root{Root: r}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) latest() (tree.Root, bool) {
	if s.cfg.Roots == nil {
		return tree.Root{}, false
	}
	return s.cfg.Roots.Latest()
}

func (s *Server) block(ctx context.Context, h blockstore.Hash, off, n uint64, zstdOK bool) (*proto.Block, error) {
	data, err := s.cfg.Store.Get(ctx, h)
	if err != nil {
		return nil, err
	}
	size := uint64(len(data))
	if off > size {
		return nil, fmt.Errorf("%w: offset %d beyond the block's %d bytes", proto.ErrBadRequest, off, size)
	}
	end := size
	if n > 0 && n < size-off {
		end = off + n
	}
	s.blocks.Add(1)
	return proto.NewBlock(h, off, size, data[off:end], zstdOK && proto.Compressible(data)), nil
}

func (s *Server) lookup(ctx context.Context, req *proto.Lookup, w *bufio.Writer) error {
	p, err := tree.ParsePath(req.Path)
	if err != nil {
		return fmt.Errorf("%w: %w", proto.ErrBadRequest, err)
	}
	root := req.Tree
	var signed *tree.Root
	if req.Latest {
		r, ok := s.latest()
		if !ok {
			return fmt.Errorf("%w: this node holds no signed root yet", proto.ErrNotFound)
		}
		signed, root = &r, r.Tree
	}
	proof, res, err := tree.BuildProof(ctx, s.cfg.Store, root, p)
	if err != nil {
		if errors.Is(err, blockstore.ErrNotFound) {
			if _, rerr := s.cfg.Store.Get(ctx, root); errors.Is(rerr, blockstore.ErrNotFound) {
				return fmt.Errorf("%w: tree %s", proto.ErrUnknownRoot, root.Short())
			}
		}
		return err
	}
	s.lookups.Add(1)
	var inline []byte
	maxInline := min(req.MaxInline, uint64(s.cfg.InlineMax))
	if res.Status == tree.Found && res.Entry.Kind == tree.KindFile && res.Entry.Size <= maxInline {
		var buf bytesBuffer
		f := res.Node.(*tree.FileNode)
		if err := tree.ReadFile(ctx, s.cfg.Store, f, 0, f.Size, &buf); err == nil {
			inline = buf.b
			if inline == nil {
				inline = []byte{}
			}
		}
		// A node with the proof but not the bytes still answers; the
		// client fetches the blocks elsewhere.
	}
	m := proto.NewLookupResult(res.Status, proof, inline, req.AcceptZstd && proto.Compressible(inline))
	m.Root = signed
	return proto.WriteMessage(w, m)
}

type bytesBuffer struct{ b []byte }

func (b *bytesBuffer) Write(p []byte) (int, error) { b.b = append(b.b, p...); return len(p), nil }
