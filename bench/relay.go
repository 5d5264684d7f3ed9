package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// relay is a userspace link with latency: it listens on one 127.0.0.1
// port for both TCP and UDP and forwards everything to target, holding
// every chunk (TCP) or datagram (UDP) for delay = RTT/2 in each
// direction. Delays overlap: a chunk read at t is written at t+delay
// whatever came before it, in order, so the link adds latency without
// limiting throughput to one chunk per delay.
//
// UDP is forwarded per client address, with one upstream socket per
// client (the target sees one peer per client, as QUIC needs). The
// number of TCP connections and UDP clients is capped (relayMaxConns,
// relayMaxUDP); each costs four goroutines (TCP) or two (UDP), plus the
// two listeners' loops.
type relay struct {
	target string
	delay  atomic.Int64 // nanoseconds each way: RTT/2
	tcp    net.Listener
	udp    *net.UDPConn

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	udpMap map[string]*udpSession
	wg     sync.WaitGroup
	slots  chan struct{} // TCP connection slots

	// Counters: bytes relayed client→target (up) and target→client (down).
	TCPConns, TCPUp, TCPDown            atomic.Int64
	UDPClients, UDPUp, UDPDown, UDPDrop atomic.Int64
	Datagrams                           atomic.Int64
}

const (
	relayMaxConns = 256
	relayMaxUDP   = 64
	// relayQueue caps the chunks (TCP, per direction) or datagrams (UDP,
	// per client and direction) held in the delay line. A full TCP queue
	// stops reading (back-pressure); a full UDP queue drops, as a router does.
	relayQueue = 4096
	// relayUDPIdle ends a UDP client's session after this long without
	// traffic either way.
	relayUDPIdle = 2 * time.Minute
)

// relayStats is a snapshot of a relay's counters.
type relayStats struct {
	TCPConns, TCPUp, TCPDown                       int64
	UDPClients, UDPUp, UDPDown, UDPDrop, Datagrams int64
}

func (r *relay) stats() relayStats {
	return relayStats{r.TCPConns.Load(), r.TCPUp.Load(), r.TCPDown.Load(),
		r.UDPClients.Load(), r.UDPUp.Load(), r.UDPDown.Load(), r.UDPDrop.Load(), r.Datagrams.Load()}
}

func (s relayStats) sub(o relayStats) relayStats {
	return relayStats{s.TCPConns - o.TCPConns, s.TCPUp - o.TCPUp, s.TCPDown - o.TCPDown,
		s.UDPClients - o.UDPClients, s.UDPUp - o.UDPUp, s.UDPDown - o.UDPDown, s.UDPDrop - o.UDPDrop, s.Datagrams - o.Datagrams}
}

// newRelay listens on 127.0.0.1 (TCP and UDP, one port) and forwards to
// target with rtt/2 of delay each way. port 0 picks a free port. A
// target port of 0 means the relay's own port on the target host (a node
// on 127.0.0.2:P behind a relay on 127.0.0.1:P: the Alt-Svc the node
// sends, h3=":P", then names the relay, never the node itself).
func newRelay(target string, rtt time.Duration, port int) (*relay, error) {
	thost, tport, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("relay: target %q: %w", target, err)
	}
	r := &relay{target: target, conns: map[net.Conn]struct{}{}, udpMap: map[string]*udpSession{},
		slots: make(chan struct{}, relayMaxConns)}
	r.setRTT(rtt)
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		tl, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("relay: listen tcp: %w", err)
		}
		p := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err != nil {
			tl.Close()
			lastErr = err
			if port != 0 {
				break
			}
			continue // the UDP port is taken: another TCP port
		}
		// QUIC sends bursts: room for them between the reader's turns.
		ul.SetReadBuffer(4 << 20)
		ul.SetWriteBuffer(4 << 20)
		r.tcp, r.udp = tl, ul
		if tport == "0" {
			r.target = net.JoinHostPort(thost, strconv.Itoa(p))
		}
		break
	}
	if r.tcp == nil {
		return nil, fmt.Errorf("relay: listen udp: %w", lastErr)
	}
	r.wg.Add(2)
	go r.acceptTCP()
	go r.readUDP()
	return r, nil
}

// Addr is the relay's host:port (TCP and UDP).
// setRTT changes the round trip the relay adds, for what it relays
// from now on.
func (r *relay) setRTT(rtt time.Duration) { r.delay.Store(int64(rtt / 2)) }

func (r *relay) oneWay() time.Duration { return time.Duration(r.delay.Load()) }

func (r *relay) Addr() string { return r.tcp.Addr().String() }

// Port is the relay's port.
func (r *relay) Port() int { return r.tcp.Addr().(*net.TCPAddr).Port }

// Close stops the listeners, ends every connection and session, and
// waits for all the relay's goroutines.
func (r *relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	err := errors.Join(r.tcp.Close(), r.udp.Close())
	for c := range r.conns {
		c.Close()
	}
	for _, s := range r.udpMap {
		s.close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// track registers c to be closed by Close; false if the relay is closed.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

func (r *relay) acceptTCP() {
	defer r.wg.Done()
	for {
		c, err := r.tcp.Accept()
		if err != nil {
			return // closed
		}
		select {
		case r.slots <- struct{}{}:
		default:
			c.Close() // over the cap
			continue
		}
		r.TCPConns.Add(1)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.slots }()
			r.serveTCP(c)
		}()
	}
}

type chunk struct {
	b   []byte
	due time.Time
}

func (r *relay) serveTCP(c net.Conn) {
	defer c.Close()
	if !r.track(c) {
		return
	}
	defer r.untrack(c)
	// The TCP handshake itself is not delayed (the kernel completed it):
	// a new TCP connection through the relay costs one round trip less
	// than on a real link. The browser runs use QUIC, whose handshake is
	// datagrams and so delayed like everything else.
	up, err := net.DialTimeout("tcp", r.target, 10*time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); r.pipe(up, c, &r.TCPUp) }()
	go func() { defer wg.Done(); r.pipe(c, up, &r.TCPDown) }()
	wg.Wait()
}

// pipe copies src to dst through a delay line: one goroutine reads and
// stamps chunks, this one writes each at its due time. At EOF it closes
// dst's write side; on any error both ends close.
func (r *relay) pipe(dst, src net.Conn, count *atomic.Int64) {
	q := make(chan chunk, relayQueue)
	done := make(chan struct{})
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				select {
				case q <- chunk{b[:n], time.Now().Add(r.oneWay())}:
				case <-done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer close(done)
	for ch := range q {
		if d := time.Until(ch.due); d > 0 {
			time.Sleep(d)
		}
		count.Add(int64(len(ch.b))) // before the write, as in drain
		if n, err := dst.Write(ch.b); err != nil {
			count.Add(int64(n - len(ch.b)))
			src.Close()
			dst.Close()
			for range q { // let the reader end
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		dst.Close()
	}
}

// udpSession is one UDP client: its upstream socket and the delay lines
// both ways.
type udpSession struct {
	client   *net.UDPAddr
	up       *net.UDPConn
	toUp     chan chunk
	toClient chan chunk
	last     atomic.Int64 // unix nanoseconds of the last datagram either way
	once     sync.Once
	done     chan struct{}
}

func (s *udpSession) close() {
	s.once.Do(func() {
		close(s.done)
		s.up.Close()
	})
}

func (r *relay) readUDP() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := r.udp.ReadFromUDP(buf)
		if err != nil {
			return // closed
		}
		now := time.Now()
		s := r.session(addr)
		if s == nil {
			r.UDPDrop.Add(1)
			continue
		}
		s.last.Store(now.UnixNano())
		select {
		case s.toUp <- chunk{append([]byte(nil), buf[:n]...), now.Add(r.oneWay())}:
		default:
			r.UDPDrop.Add(1)
		}
	}
}

// session finds or starts the session for a client address; nil when
// the relay is closed, the cap is reached or the upstream cannot open.
func (r *relay) session(addr *net.UDPAddr) *udpSession {
	key := addr.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.udpMap[key]; ok {
		return s
	}
	if r.closed || len(r.udpMap) >= relayMaxUDP {
		return nil
	}
	ta, err := net.ResolveUDPAddr("udp", r.target)
	if err != nil {
		return nil
	}
	up, err := net.DialUDP("udp", nil, ta)
	if err != nil {
		return nil
	}
	up.SetReadBuffer(4 << 20)
	up.SetWriteBuffer(4 << 20)
	s := &udpSession{client: addr, up: up, toUp: make(chan chunk, relayQueue), toClient: make(chan chunk, relayQueue), done: make(chan struct{})}
	s.last.Store(time.Now().UnixNano())
	r.udpMap[key] = s
	r.UDPClients.Add(1)
	r.wg.Add(3)
	go func() { // upstream socket → delay line toward the client
		defer r.wg.Done()
		b := make([]byte, 64<<10)
		for {
			up.SetReadDeadline(time.Now().Add(relayUDPIdle))
			n, err := up.Read(b)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, s.last.Load())) < relayUDPIdle {
					continue
				}
				r.mu.Lock()
				if r.udpMap[key] == s {
					delete(r.udpMap, key)
				}
				r.mu.Unlock()
				s.close()
				return
			}
			s.last.Store(time.Now().UnixNano())
			select {
			case s.toClient <- chunk{append([]byte(nil), b[:n]...), time.Now().Add(r.oneWay())}:
			default:
				r.UDPDrop.Add(1)
			}
		}
	}()
	go func() { // delay line → upstream
		defer r.wg.Done()
		r.drain(s, s.toUp, func(b []byte) error { _, err := up.Write(b); return err }, &r.UDPUp)
	}()
	go func() { // delay line → client, from the listening socket
		defer r.wg.Done()
		r.drain(s, s.toClient, func(b []byte) error { _, err := r.udp.WriteToUDP(b, s.client); return err }, &r.UDPDown)
	}()
	return s
}

// drain writes each queued datagram at its due time until the session ends.
func (r *relay) drain(s *udpSession, q chan chunk, write func([]byte) error, count *atomic.Int64) {
	for {
		select {
		case <-s.done:
			return
		case ch := <-q:
			if d := time.Until(ch.due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
					return
				}
			}
			// Counted before the write: the receiver may act on the
			// datagram (and read the counters) before write returns.
			count.Add(int64(len(ch.b)))
			r.Datagrams.Add(1)
			if write(ch.b) != nil {
				count.Add(-int64(len(ch.b)))
				r.Datagrams.Add(-1)
			}
		}
	}
}

var _ io.Closer = (*relay)(nil)
