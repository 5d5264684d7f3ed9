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

// BenchmarkFirstRequest measures what 0-RTT would save: the time of the
// first request on a new connection over a link with a 20 ms RTT, with a
// session ticket from an earlier connection (resumed: the client may
// send the request in 0-RTT data) and without one (a full handshake).
// Member clients, as every node's is, check the server's credential
// before they send anything, so they wait for the handshake either way;
// an anonymous client (gritsd get) sends at once. Reported in RTTs.
//
//	go test -run '^$' -bench FirstRequest -benchtime 20x ./transport
func BenchmarkFirstRequest(b *testing.B) {
	const rtt = 20 * time.Millisecond
	s := newSite(b, map[string][]byte{"index.html": []byte("<h1>hello</h1>")})
	_, addr := startServer(b, ServerConfig{Store: s.store, Roots: &rootList{s.root}})
	link := newDelayLink(b, addr, rtt)
	_, cert := memberCert(b, []byte("a member's credential"))
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
				ctx := context.Background()
				var total time.Duration
				zeroRTT := 0
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
					if conn := c.pooled(link.addr()); conn != nil && conn.ConnectionState().Used0RTT {
						zeroRTT++
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
				b.ReportMetric(total.Seconds()/float64(b.N)/rtt.Seconds(), "RTT/op")
				b.ReportMetric(float64(zeroRTT)/float64(b.N), "0rtt-share")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}
