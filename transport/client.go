package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// ErrBadPeer marks data from a peer that failed verification. Callers
// should stop using that peer; see PeerError.
var ErrBadPeer = errors.New("peer sent bad data")

// PeerError is an error attributed to one peer.
type PeerError struct {
	Peer string
	// Bad is true when the peer sent something that failed verification
	// (errors.Is(err, ErrBadPeer)), false for plain failures such as a
	// timeout, a refused connection or a "not found" answer.
	Bad bool
	// Cause is what failed verification, when Bad.
	Cause BadCause
	Err   error
}

func (e *PeerError) Error() string {
	if e.Bad {
		return fmt.Sprintf("peer %s sent bad data: %v", e.Peer, e.Err)
	}
	return fmt.Sprintf("peer %s: %v", e.Peer, e.Err)
}

func (e *PeerError) Unwrap() error { return e.Err }

func (e *PeerError) Is(target error) bool { return target == ErrBadPeer && e.Bad }

// BadCause says what part of a peer's answer failed verification.
type BadCause uint8

// Causes of a bad answer.
const (
	BadFrame    BadCause = iota // malformed, unexpected or missing frames
	BadBlock                    // a block that is not the one asked for or does not hash to its name
	BadProof                    // a lookup whose proof or inline data does not verify
	BadRoot                     // a root that is forged, expired, older, or breaks the chain
	BadIdentity                 // a server that is not a member, or is banned
	NumBadCauses
)

func (c BadCause) String() string {
	switch c {
	case BadFrame:
		return "frame"
	case BadBlock:
		return "block"
	case BadProof:
		return "proof"
	case BadRoot:
		return "root"
	case BadIdentity:
		return "identity"
	}
	return "BadCause(" + strconv.Itoa(int(c)) + ")"
}

// bad counts and returns a bad-peer error.
func (c *Client) bad(peer string, cause BadCause, format string, args ...any) error {
	c.bads[cause].Add(1)
	return &PeerError{Peer: peer, Bad: true, Cause: cause, Err: fmt.Errorf(format, args...)}
}

func peerErr(peer string, err error) error {
	var pe *PeerError
	if errors.As(err, &pe) {
		return err
	}
	return &PeerError{Peer: peer, Err: err}
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// SiteKey verifies roots. Required.
	SiteKey tree.PublicKey
	// Identity, if set, is presented to servers (nodes authenticate to
	// each other; read-only clients need none).
	Identity *tls.Certificate
	// DialTimeout bounds a handshake; default 5s.
	DialTimeout time.Duration
	// StallTimeout bounds the wait for each response frame; a peer that
	// hangs mid-stream is given up after it. Default 10s.
	StallTimeout time.Duration
	// IdleTimeout of pooled connections; default 60s.
	IdleTimeout time.Duration
	// OnRequest, if set, is called for every request sent (a round trip):
	// tests count them. It must not block.
	OnRequest func(peer string, t proto.Type)
	Logger    *slog.Logger
	// Now is the clock for root expiry; default time.Now.
	Now func() time.Time
	// VerifyServer, if set, judges every server after the handshake, by
	// the node ID it proved and the credential its certificate carries
	// (nil if none), before any request goes out on the connection. An
	// error closes the connection and fails the request with a
	// *PeerError matching ErrBadPeer: this is how a member node refuses
	// to fetch from non-members and banned nodes. It must not block for
	// long.
	VerifyServer func(id NodeID, credential []byte) error
}

// Client talks grits/1 to many peers over one UDP socket, one pooled
// QUIC connection per peer.
type Client struct {
	cfg  ClientConfig
	tr   *quic.Transport
	tlsc *tls.Config

	mu    sync.Mutex
	conns map[string]*quic.Conn
	dials map[string]*dialCall
	last  *tree.Root // newest root accepted, against rollback

	requests atomic.Int64
	bads     [NumBadCauses]atomic.Int64
}

// ClientStats counts a client's requests and the answers it refused.
type ClientStats struct {
	Requests int64
	// Bad counts answers that failed verification, by cause.
	Bad [NumBadCauses]int64
}

// Stats returns counters since the client was made.
func (c *Client) Stats() ClientStats {
	st := ClientStats{Requests: c.requests.Load()}
	for i := range st.Bad {
		st.Bad[i] = c.bads[i].Load()
	}
	return st
}

type dialCall struct {
	done chan struct{}
	conn *quic.Conn
	err  error
	// dropped is set under Client.mu by DropPeer: the connection being
	// dialled must not be pooled.
	dropped bool
}

// NewClient opens the client's UDP socket.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.SiteKey.IsZero() {
		return nil, errors.New("transport: client needs the site key")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		return nil, fmt.Errorf("transport: client socket: %w", err)
	}
	tlsc := &tls.Config{
		NextProtos: []string{ALPN},
		MinVersion: tls.VersionTLS13,
		// Server identity is a node key, not a name a CA vouches for;
		// every byte is verified against hashes and the site key anyway.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: verifyAnyNodeCert,
		ClientSessionCache:    tls.NewLRUClientSessionCache(256),
	}
	if cfg.Identity != nil {
		tlsc.Certificates = []tls.Certificate{*cfg.Identity}
	}
	return &Client{cfg: cfg, tr: &quic.Transport{Conn: pc}, tlsc: tlsc,
		conns: map[string]*quic.Conn{}, dials: map[string]*dialCall{}}, nil
}

// Close closes every connection and the socket.
func (c *Client) Close() error {
	c.mu.Lock()
	for _, conn := range c.conns {
		conn.CloseWithError(codeNoError, "")
	}
	c.conns = map[string]*quic.Conn{}
	c.mu.Unlock()
	err := c.tr.Close()
	_ = c.tr.Conn.Close()
	return err
}

// Requests returns how many requests (round trips) the client has sent.
func (c *Client) Requests() int64 { return c.requests.Load() }

// conn returns a live pooled connection to peer, dialling once if needed
// (concurrent callers share one dial).
func (c *Client) conn(ctx context.Context, peer string) (*quic.Conn, error) {
	c.mu.Lock()
	if conn, ok := c.conns[peer]; ok {
		if conn.Context().Err() == nil {
			c.mu.Unlock()
			return conn, nil
		}
		delete(c.conns, peer)
	}
	call, ok := c.dials[peer]
	if !ok {
		call = &dialCall{done: make(chan struct{})}
		c.dials[peer] = call
		go c.dial(peer, call)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.conn, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Client) dial(peer string, call *dialCall) {
	defer close(call.done)
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.DialTimeout)
	defer cancel()
	addr, err := net.ResolveUDPAddr("udp", peer)
	if err == nil {
		qc := &quic.Config{
			HandshakeIdleTimeout:  c.cfg.DialTimeout,
			MaxIdleTimeout:        c.cfg.IdleTimeout,
			KeepAlivePeriod:       c.cfg.IdleTimeout / 3,
			MaxIncomingStreams:    -1,
			MaxIncomingUniStreams: -1,
		}
		tlsc := c.tlsc.Clone()
		tlsc.ServerName = peer // keys the session cache
		// Dial, not DialEarly: no request goes out in 0-RTT data. It
		// would save nothing (the server reads no stream before the
		// handshake completes, to know its peer; a member client judges
		// the server first), and quic-go races when streams open during
		// a 0-RTT handshake (quic-go#4303). Sessions are still resumed,
		// which spares both sides the certificate signatures.
		call.conn, err = c.tr.Dial(ctx, addr, tlsc, qc)
	}
	if err == nil && c.cfg.VerifyServer != nil {
		if err = c.verifyServer(ctx, peer, call.conn); err != nil {
			call.conn.CloseWithError(codeRefused, "server not accepted")
		}
	}
	c.mu.Lock()
	delete(c.dials, peer)
	if err == nil && call.dropped {
		call.conn.CloseWithError(codeNoError, "")
		err = errors.New("connection dropped while it was being dialled")
	}
	if err == nil {
		c.conns[peer] = call.conn
	}
	c.mu.Unlock()
	if err != nil {
		call.conn = nil
		if _, ok := errors.AsType[*PeerError](err); ok {
			call.err = err
		} else {
			call.err = fmt.Errorf("dial: %w", err)
		}
	}
}

// verifyServer asks cfg.VerifyServer about the server a connection
// (handshake complete) proved to be.
func (c *Client) verifyServer(ctx context.Context, peer string, conn *quic.Conn) error {
	cs := conn.ConnectionState().TLS
	id, err := PeerID(cs)
	if err != nil {
		return c.bad(peer, BadIdentity, "server identity: %w", err)
	}
	if err := c.cfg.VerifyServer(id, PeerCredential(cs)); err != nil {
		return c.bad(peer, BadIdentity, "server %s not accepted: %w", id, err)
	}
	return nil
}

// DropPeer closes the pooled connection to peer, if any, and keeps a
// dial in progress from being pooled; the next request dials again (and
// meets VerifyServer again). Requests in flight on the connection fail.
// Use it when a peer's standing changes, such as after a ban.
func (c *Client) DropPeer(peer string) {
	c.mu.Lock()
	conn := c.conns[peer]
	delete(c.conns, peer)
	if call, ok := c.dials[peer]; ok {
		call.dropped = true
	}
	c.mu.Unlock()
	if conn != nil {
		conn.CloseWithError(codeNoError, "")
	}
}

type expectKey struct{}

// ExpectNode returns a context under which requests go out only on a
// connection whose server proved node id in the handshake; to any other
// the request fails with a *PeerError matching ErrBadPeer (BadIdentity).
// Whoever dials an address it learnt from what a node said about itself
// binds the request to that node, so a node cannot pass off another's
// address (and answers) as its own.
func ExpectNode(ctx context.Context, id NodeID) context.Context {
	return context.WithValue(ctx, expectKey{}, id)
}

// exchange is one request on its own stream.
type exchange struct {
	c    *Client
	peer string
	req  proto.Message
	st   *quic.Stream
	r    *bufio.Reader
	stop func() bool
}

func (c *Client) send(ctx context.Context, peer string, req proto.Message) (*exchange, error) {
	conn, err := c.conn(ctx, peer)
	if err != nil {
		return nil, peerErr(peer, err)
	}
	if want, ok := ctx.Value(expectKey{}).(NodeID); ok {
		got, err := PeerID(conn.ConnectionState().TLS)
		if err != nil {
			return nil, c.bad(peer, BadIdentity, "server identity: %w", err)
		}
		if got != want {
			// The connection stays pooled: it is good for whoever is at
			// that address, just not the node asked for.
			return nil, c.bad(peer, BadIdentity, "the server at %s proved node %s, the request is for node %s", peer, got, want)
		}
	}
	// Connections are dialled without 0-RTT, so no request, idempotent
	// or not (Enroll), can be replayed from early data (SPEC.md 1).
	// A peer that never grants stream credit stalls here: bound it.
	octx, ocancel := context.WithTimeout(ctx, c.cfg.StallTimeout)
	st, err := conn.OpenStreamSync(octx)
	ocancel()
	if err != nil {
		if conn.Context().Err() != nil {
			c.drop(peer, conn) // not for our own cancellation: the connection is fine
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no stream credit within %v (stalled)", c.cfg.StallTimeout)
		}
		return nil, peerErr(peer, ctxErr(ctx, fmt.Errorf("open stream: %w", err)))
	}
	c.requests.Add(1)
	if c.cfg.OnRequest != nil {
		c.cfg.OnRequest(peer, req.Type())
	}
	// Cancelling the context resets the stream both ways, which frees the
	// server's side at once.
	stop := context.AfterFunc(ctx, func() {
		st.CancelRead(streamCancelled)
		st.CancelWrite(streamCancelled)
	})
	st.SetWriteDeadline(time.Now().Add(c.cfg.StallTimeout))
	if err := proto.WriteMessage(st, req); err != nil {
		stop()
		st.CancelRead(streamCancelled)
		return nil, peerErr(peer, ctxErr(ctx, fmt.Errorf("send %v: %w", req.Type(), err)))
	}
	st.Close()
	return &exchange{c: c, peer: peer, req: req, st: st, r: bufio.NewReaderSize(st, 64<<10), stop: stop}, nil
}

// drop forgets a pooled connection and closes it: Close only reaches
// pooled ones.
func (c *Client) drop(peer string, conn *quic.Conn) {
	c.mu.Lock()
	if c.conns[peer] == conn {
		delete(c.conns, peer)
	}
	c.mu.Unlock()
	conn.CloseWithError(codeNoError, "")
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// next reads one response frame; io.EOF at a clean end of stream.
func (x *exchange) next(ctx context.Context) (proto.Message, error) {
	x.st.SetReadDeadline(time.Now().Add(x.c.cfg.StallTimeout))
	m, err := proto.ReadResponse(x.r, x.req.Type())
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		return nil, io.EOF
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, proto.ErrMalformed), errors.Is(err, proto.ErrUnknownType),
		errors.Is(err, proto.ErrUnexpectedType), errors.Is(err, proto.ErrFrameTooLarge):
		return nil, x.c.bad(x.peer, BadFrame, "%v answer: %w", x.req.Type(), err)
	case isTimeout(err):
		return nil, peerErr(x.peer, fmt.Errorf("%v: no answer within %v (stalled)", x.req.Type(), x.c.cfg.StallTimeout))
	default:
		return nil, peerErr(x.peer, fmt.Errorf("%v: %w", x.req.Type(), err))
	}
	if e, ok := m.(*proto.Error); ok {
		return nil, peerErr(x.peer, e)
	}
	return m, nil
}

func (x *exchange) close() {
	x.stop()
	x.st.CancelRead(codeOK)
}

// one sends a request and reads its single answer.
func (c *Client) one(ctx context.Context, peer string, req proto.Message) (proto.Message, error) {
	return c.oneTry(ctx, peer, req)
}

func (c *Client) oneTry(ctx context.Context, peer string, req proto.Message) (proto.Message, error) {
	x, err := c.send(ctx, peer, req)
	if err != nil {
		return nil, err
	}
	defer x.close()
	m, err := x.next(ctx)
	if errors.Is(err, io.EOF) {
		return nil, c.bad(peer, BadFrame, "%v: stream ended without an answer", req.Type())
	}
	return m, err
}

// acceptRoot verifies r against the site key and the newest root this
// client accepted; a forged, expired or older root marks the peer bad.
func (c *Client) acceptRoot(peer string, r tree.Root) error {
	if err := r.Verify(c.cfg.SiteKey, c.cfg.Now()); err != nil {
		return c.bad(peer, BadRoot, "root seq %d: %w", r.Seq, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil {
		if err := r.CheckSuccessor(*c.last); err != nil && !errors.Is(err, tree.ErrSameRoot) {
			return c.bad(peer, BadRoot, "root seq %d: %w", r.Seq, err)
		}
		if r.Seq <= c.last.Seq {
			return nil
		}
	}
	c.last = &r
	return nil
}

// AcceptRoot tells the client about a root verified elsewhere (a node's
// own log), so that peers offering older ones are caught as rollbacks.
func (c *Client) AcceptRoot(r tree.Root) error { return c.acceptRoot("local", r) }

// LatestAccepted returns the newest root the client has accepted.
func (c *Client) LatestAccepted() (tree.Root, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return tree.Root{}, false
	}
	return *c.last, true
}

// Root fetches and verifies a peer's latest signed root.
func (c *Client) Root(ctx context.Context, peer string) (tree.Root, error) {
	m, err := c.one(ctx, peer, &proto.GetRoot{})
	if err != nil {
		return tree.Root{}, err
	}
	r := m.(*proto.Root).Root
	if err := c.acceptRoot(peer, r); err != nil {
		return tree.Root{}, err
	}
	return r, nil
}

// Roots fetches the signed roots after seq after from peer, at most max
// (1..proto.MaxRootsPerRequest) of them, oldest first: the chain a node
// that missed roots lacks. It checks them as a chain: each signed by the
// site key (tree.Root.Verify at the root's own time, since older roots
// have expired honestly), seqs after+1, after+2, ... without a gap, each
// one's Prev the Hash of the one before, and no more than max. Any
// violation is a *PeerError matching ErrBadPeer, and no roots are
// returned. An empty answer means the peer has nothing newer.
//
// The first root's Prev is not checked: it names the caller's root of
// seq after, which the client does not know (tree.Log.Append checks it).
// Nor is the chain checked against the root the client accepted, or the
// newest one's expiry: Roots fetches history, and leaves the latest
// accepted root (AcceptRoot, Root, Lookup) as it was.
func (c *Client) Roots(ctx context.Context, peer string, after uint64, max int) ([]tree.Root, error) {
	if max < 1 || max > proto.MaxRootsPerRequest {
		return nil, fmt.Errorf("transport: %d roots in one request, want 1..proto.MaxRootsPerRequest = %d", max, proto.MaxRootsPerRequest)
	}
	return c.roots(ctx, peer, after, max)
}

func (c *Client) roots(ctx context.Context, peer string, after uint64, max int) ([]tree.Root, error) {
	x, err := c.send(ctx, peer, &proto.GetRoots{After: after, Max: uint64(max)})
	if err != nil {
		return nil, err
	}
	defer x.close()
	var chain []tree.Root
	for {
		m, err := x.next(ctx)
		if errors.Is(err, io.EOF) {
			return chain, nil
		}
		if err != nil {
			return nil, err
		}
		r := m.(*proto.Root).Root
		if len(chain) == max {
			return nil, c.bad(peer, BadRoot, "more roots than the %d asked for", max)
		}
		// No overflow concern: a seq of 0 that after+n wrapped to fails
		// Verify below.
		if want := after + uint64(len(chain)) + 1; r.Seq != want {
			return nil, c.bad(peer, BadRoot, "root seq %d where seq %d was due, asking for the roots after %d", r.Seq, want, after)
		}
		if err := r.Verify(c.cfg.SiteKey, r.Time); err != nil {
			return nil, c.bad(peer, BadRoot, "root seq %d: %w", r.Seq, err)
		}
		if len(chain) > 0 {
			if prev := chain[len(chain)-1]; r.Prev != prev.Hash() {
				return nil, c.bad(peer, BadRoot, "root seq %d follows %s, not seq %d (%s): %w",
					r.Seq, r.Prev.Short(), prev.Seq, prev.Hash().Short(), tree.ErrBrokenChain)
			}
		}
		chain = append(chain, r)
	}
}

// Enroll presents a join token (1..proto.MaxTokenSize bytes) to peer and
// returns the grant it answers with, unverified: the grant's format and
// checks are the membership layer's. A refusal is an error wrapping
// proto.ErrUnauthorized (or ErrBadRequest from a node that does not
// enroll). The request waits for the handshake rather than going out in
// 0-RTT, and is never repeated by the client.
func (c *Client) Enroll(ctx context.Context, peer string, token []byte) ([]byte, error) {
	if len(token) < 1 || len(token) > proto.MaxTokenSize {
		return nil, fmt.Errorf("transport: join token of %d bytes, want 1..proto.MaxTokenSize = %d", len(token), proto.MaxTokenSize)
	}
	m, err := c.one(ctx, peer, &proto.Enroll{Token: token})
	if err != nil {
		return nil, err
	}
	return m.(*proto.Grant).Body, nil
}

// SwarmKeys asks peer for the swarm keys and returns its answer,
// unverified (the membership layer checks it). A refusal is an error
// wrapping proto.ErrUnauthorized (or ErrBadRequest).
func (c *Client) SwarmKeys(ctx context.Context, peer string) ([]byte, error) {
	m, err := c.one(ctx, peer, &proto.GetSwarmKeys{})
	if err != nil {
		return nil, err
	}
	return m.(*proto.SwarmKeys).Body, nil
}

// TLSCert sends peer a certificate request (1..
// proto.MaxTLSCertRequestSize bytes) and returns the certificate chain
// it answers with, unverified (the caller checks it). A refusal is an
// error wrapping proto.ErrUnauthorized (or ErrBadRequest from a node
// that issues none).
func (c *Client) TLSCert(ctx context.Context, peer string, request []byte) ([]byte, error) {
	if len(request) < 1 || len(request) > proto.MaxTLSCertRequestSize {
		return nil, fmt.Errorf("transport: certificate request of %d bytes, want 1..proto.MaxTLSCertRequestSize = %d", len(request), proto.MaxTLSCertRequestSize)
	}
	m, err := c.one(ctx, peer, &proto.GetTLSCert{Body: request})
	if err != nil {
		return nil, err
	}
	return m.(*proto.TLSCert).Body, nil
}

// LookupResult is a verified lookup.
type LookupResult struct {
	// Root is the signed root the proof was checked against.
	Root tree.Root
	tree.Result
	Proof *tree.Proof
	// Inline holds the whole file when the peer sent it (verified against
	// the file's chunk hashes); HasInline says whether it did.
	Inline    []byte
	HasInline bool
}

// Lookup resolves p on peer. With root nil it asks for the peer's latest
// root and gets it in the same round trip. inlineMax asks for small files
// inline (0 for never). The proof is verified against the (verified)
// root; a path that does not exist is a result, not an error.
func (c *Client) Lookup(ctx context.Context, peer string, root *tree.Root, p tree.Path, inlineMax int) (*LookupResult, error) {
	req := &proto.Lookup{Path: p.String(), MaxInline: uint64(max(inlineMax, 0)), AcceptZstd: true}
	if root == nil {
		req.Latest = true
	} else {
		req.Tree = root.Tree
	}
	m, err := c.one(ctx, peer, req)
	if err != nil {
		return nil, err
	}
	lr := m.(*proto.LookupResult)
	out := &LookupResult{Proof: lr.Proof}
	switch {
	case root != nil:
		out.Root = *root
	case lr.Root == nil:
		return nil, c.bad(peer, BadProof, "latest lookup answered without a root")
	default:
		if err := c.acceptRoot(peer, *lr.Root); err != nil {
			return nil, err
		}
		out.Root = *lr.Root
	}
	res, err := tree.Verify(out.Root.Tree, p, lr.Proof)
	if err != nil {
		return nil, c.bad(peer, BadProof, "proof for %s: %w", p, err)
	}
	if res.Status != lr.Status {
		return nil, c.bad(peer, BadProof, "claims %v for %s, its proof shows %v", lr.Status, p, res.Status)
	}
	out.Result = res
	if data, ok := lr.Inline(); ok {
		f, isFile := res.Node.(*tree.FileNode)
		if !isFile {
			return nil, c.bad(peer, BadProof, "inline data for %s, which is not a file", p)
		}
		if err := verifyInline(f, data); err != nil {
			return nil, c.bad(peer, BadProof, "inline data for %s: %w", p, err)
		}
		out.Inline, out.HasInline = data, true
	}
	return out, nil
}

// verifyInline checks a whole small file against its level-0 file node.
func verifyInline(f *tree.FileNode, data []byte) error {
	if uint64(len(data)) != f.Size {
		return fmt.Errorf("%d bytes, the file has %d", len(data), f.Size)
	}
	if f.Level != 0 {
		return errors.New("inline data for a file with index nodes")
	}
	cs := int(f.ChunkSize)
	for i, h := range f.Hashes {
		chunk := data[i*cs : min(len(data), (i+1)*cs)]
		if blockstore.Sum(chunk) != h {
			return fmt.Errorf("chunk %d does not match its hash", i)
		}
	}
	return nil
}

// GetBlock fetches one whole block and verifies it.
func (c *Client) GetBlock(ctx context.Context, peer string, h blockstore.Hash) ([]byte, error) {
	m, err := c.one(ctx, peer, &proto.GetBlock{Hash: h, AcceptZstd: true})
	if err != nil {
		return nil, err
	}
	b := m.(*proto.Block)
	if b.Hash != h {
		return nil, c.bad(peer, BadBlock, "asked for block %s, got %s", h.Short(), b.Hash.Short())
	}
	if err := b.Verify(); err != nil {
		return nil, c.bad(peer, BadBlock, "%w", err)
	}
	return b.Data(), nil
}

// SpotCheck asks peer for bytes [off, off+n) of a block the caller holds
// (block, whose hash names it) and compares them with the caller's copy:
// proof that the peer holds the block, for the cost of n bytes on the
// wire instead of the whole block. An honest peer's store re-hashes the
// whole block before it sends any range of it, so a damaged copy fails
// too. A peer that answers with other bytes, another size or another
// range fails with a *PeerError matching ErrBadPeer; one that says it
// does not have the block fails with an error matching proto.ErrNotFound.
func (c *Client) SpotCheck(ctx context.Context, peer string, block []byte, off, n uint64) error {
	h := blockstore.Sum(block)
	size := uint64(len(block))
	if off > size || n == 0 || n > size-off {
		return fmt.Errorf("transport: spot check of %s: range %d+%d outside its %d bytes", h.Short(), off, n, size)
	}
	m, err := c.one(ctx, peer, &proto.GetBlock{Hash: h, Offset: off, Length: n})
	if err != nil {
		return err
	}
	b := m.(*proto.Block)
	switch {
	case b.Hash != h:
		return c.bad(peer, BadBlock, "asked for block %s, got %s", h.Short(), b.Hash.Short())
	case b.Total != size:
		return c.bad(peer, BadBlock, "block %s: says it has %d bytes, it has %d", h.Short(), b.Total, size)
	case b.Offset != off || uint64(len(b.Data())) != n:
		return c.bad(peer, BadBlock, "block %s: asked for bytes %d+%d, got %d+%d", h.Short(), off, n, b.Offset, len(b.Data()))
	case !bytes.Equal(b.Data(), block[off:off+n]):
		return c.bad(peer, BadBlock, "block %s: bytes %d+%d differ from the block's", h.Short(), off, n)
	}
	return nil
}

// GetBlocks fetches many blocks in one request; fn receives each verified
// block as it arrives (not necessarily in request order). It returns the
// hashes the peer said it does not have. A stream that ends with hashes
// unanswered, an unrequested or duplicate block, or a block that does not
// verify is a bad peer; the blocks delivered before that stay delivered.
func (c *Client) GetBlocks(ctx context.Context, peer string, hashes []blockstore.Hash, fn func(blockstore.Hash, []byte) error) (missing []blockstore.Hash, err error) {
	return c.getBlocks(ctx, peer, hashes, fn)
}

func (c *Client) getBlocks(ctx context.Context, peer string, hashes []blockstore.Hash, fn func(blockstore.Hash, []byte) error) (missing []blockstore.Hash, err error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	if len(hashes) > proto.MaxBatch {
		return nil, fmt.Errorf("transport: %d hashes in one request exceed proto.MaxBatch %d", len(hashes), proto.MaxBatch)
	}
	want := make(map[blockstore.Hash]bool, len(hashes))
	for _, h := range hashes {
		want[h] = true
	}
	x, err := c.send(ctx, peer, &proto.GetBlocks{Hashes: hashes, AcceptZstd: true})
	if err != nil {
		return nil, err
	}
	defer x.close()
	for len(want) > 0 {
		m, err := x.next(ctx)
		if errors.Is(err, io.EOF) {
			return missing, c.bad(peer, BadFrame, "stream ended with %d of %d blocks unanswered", len(want), len(hashes))
		}
		if err != nil {
			return missing, err
		}
		switch m := m.(type) {
		case *proto.Missing:
			if !want[m.Hash] {
				return missing, c.bad(peer, BadFrame, "unrequested or repeated answer for %s", m.Hash.Short())
			}
			delete(want, m.Hash)
			missing = append(missing, m.Hash)
		case *proto.Block:
			if !want[m.Hash] {
				return missing, c.bad(peer, BadFrame, "unrequested or repeated block %s", m.Hash.Short())
			}
			if err := m.Verify(); err != nil {
				return missing, c.bad(peer, BadBlock, "%w", err)
			}
			delete(want, m.Hash)
			if err := fn(m.Hash, m.Data()); err != nil {
				return missing, err
			}
		}
	}
	return missing, nil
}

// PeerNodeID connects to peer (or reuses the pooled connection) and
// returns the node key it proved in the TLS handshake.
func (c *Client) PeerNodeID(ctx context.Context, peer string) (NodeID, error) {
	conn, err := c.conn(ctx, peer)
	if err != nil {
		return NodeID{}, peerErr(peer, err)
	}
	select {
	case <-conn.HandshakeComplete():
	case <-ctx.Done():
		return NodeID{}, ctx.Err()
	}
	return PeerID(conn.ConnectionState().TLS)
}
