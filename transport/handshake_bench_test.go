package transport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// delayLink is a UDP relay that holds every datagram for half an RTT in
// each direction, between one client and one server: a link with
// latency on loopback, where 0-RTT's saving becomes visible.
type delayLink struct {
	front, back *net.UDPConn
	server      *net.UDPAddr
	delay       time.Duration
	mu          sync.Mutex
	client      *net.UDPAddr
	wg          sync.WaitGroup
}

func newDelayLink(t testing.TB, server string, rtt time.Duration) *delayLink {
	t.Helper()
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		t.Fatal(err)
	}
	l := &delayLink{server: sa, delay: rtt / 2}
	if l.front, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	if l.back, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	l.wg.Add(2)
	go l.pump(l.front, true)
	go l.pump(l.back, false)
	t.Cleanup(func() {
		l.front.Close()
		l.back.Close()
		l.wg.Wait()
	})
	return l
}

func (l *delayLink) addr() string { return l.front.LocalAddr().String() }

// pump forwards what arrives on in after the delay: the client's
// datagrams to the server, the server's to the client.
func (l *delayLink) pump(in *net.UDPConn, fromClient bool) {
	defer l.wg.Done()
	for {
		buf := make([]byte, 2048)
		n, from, err := in.ReadFromUDP(buf)
		if err != nil {
			return
		}
		l.mu.Lock()
		if fromClient {
			l.client = from
		}
		to := l.client
		l.mu.Unlock()
		out, dst := l.back, l.server
		if !fromClient {
			out, dst = l.front, to
		}
		if dst == nil {
			continue
		}
		time.AfterFunc(l.delay, func() { out.WriteToUDP(buf[:n], dst) })
	}
}

// BenchmarkFirstRequest: the first request on a new connection over a
// link with a 20 ms RTT, after a full handshake and after a resumed one
// (a session ticket from an earlier connection), for an anonymous client
// (gritsd get) and a member client (every node's, which judges the
// server before it sends anything), against the baseline of the same
// run: a request on a pooled connection. Reported in RTTs.
//
// The client sends nothing in 0-RTT data (0rtt-share is 0). When it did
// (commit e42e5c7), every variant took the same: about 2.2 RTT, since
// the server reads no stream before the handshake completes.
//
//	go test -run '^$' -bench FirstRequest -benchtime 50x ./transport
func BenchmarkFirstRequest(b *testing.B) {
	const rtt = 20 * time.Millisecond
	s := newSite(b, map[string][]byte{"index.html": []byte("<h1>hello</h1>")})
	_, addr := startServer(b, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	link := newDelayLink(b, addr, rtt)
	_, cert := memberCert(b, []byte("a member's credential"))
	ctx := context.Background()

	var warm float64 // RTTs per request on a pooled connection
	b.Run("pooled", func(b *testing.B) {
		c := newClient(b, s.pub, nil)
		if _, err := c.Root(ctx, link.addr()); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for b.Loop() {
			if _, err := c.Root(ctx, link.addr()); err != nil {
				b.Fatal(err)
			}
		}
		warm = time.Since(start).Seconds() / float64(b.N) / rtt.Seconds()
		b.ReportMetric(warm, "RTT/op")
		b.ReportMetric(0, "ns/op")
	})
	for _, member := range []bool{false, true} {
		for _, resume := range []bool{false, true} {
			name := fmt.Sprintf("member=%v/resumed=%v", member, resume)
			b.Run(name, func(b *testing.B) {
				c := newClient(b, s.pub, func(cfg *ClientConfig) {
					if member {
						cfg.Identity = &cert
						cfg.VerifyServer = func(NodeID, []byte) error { return nil }
					}
				})
				var tickets *recordingCache
				if resume {
					tickets = watchTickets(c)
				} else {
					c.tlsc.ClientSessionCache = nil
				}
				var total time.Duration
				resumed, zeroRTT := 0, 0
				for b.Loop() {
					if conn := c.pooled(link.addr()); conn != nil {
						c.drop(link.addr(), conn)
					}
					had := 0
					if resume {
						had = tickets.tickets(link.addr())
					}
					start := time.Now()
					if _, err := c.Root(ctx, link.addr()); err != nil {
						b.Fatal(err)
					}
					total += time.Since(start)
					if conn := c.pooled(link.addr()); conn != nil {
						cs := conn.ConnectionState()
						if cs.TLS.DidResume {
							resumed++
						}
						if cs.Used0RTT {
							zeroRTT++
						}
					}
					if resume {
						// The next connection resumes with the ticket this
						// one gets after its handshake: wait for it, off
						// the clock.
						b.StopTimer()
						waitFor(b, 5*time.Second, "a session ticket", func() bool { return tickets.tickets(link.addr()) > had })
						b.StartTimer()
					}
				}
				per := total.Seconds() / float64(b.N) / rtt.Seconds()
				b.ReportMetric(per, "RTT/op")
				if warm > 0 {
					b.ReportMetric(per/warm, "x-pooled")
				}
				b.ReportMetric(float64(resumed)/float64(b.N), "resumed-share")
				b.ReportMetric(float64(zeroRTT)/float64(b.N), "0rtt-share")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
