package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// The protocol suite measures grits/1 itself, node to client, with a Go
// client (transport.Client, as gritsd get and the nodes use it) against
// real gritsd serve processes:
//
//   - round trips per operation over a link with protoRTT of delay
//     (bench/relay.go in front of each node's UDP port): a lookup on a
//     cold connection, on a warm one, a revalidation of unchanged
//     content, a small file, a large file, an absent path. The round
//     trips are the elapsed time over the link's RTT (what a user waits
//     for), beside the requests the client sent;
//   - throughput of one peer on loopback against a raw quic-go stream
//     moving the same bytes in the same run;
//   - one large file from 1, 2 and 4 peers over the delayed links.
const (
	protoRTT     = 20 * time.Millisecond
	protoSmall   = 10 << 10 // inline in a lookup
	protoLarge   = 32 << 20
	protoLargeQ  = 8 << 20 // -quick
	protoInline  = 64 << 10
	protoPeersMx = 4
)

func protocolSuite(ctx context.Context, work string, quick bool) ([]Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	bin, err := gritsdBinary(ctx, work)
	if err != nil {
		return nil, err
	}
	reps, large := 7, protoLarge
	if quick {
		reps, large = 3, protoLargeQ
	}
	big := randomBytes(7, large)
	files := map[string][]byte{
		"small.txt":       randomBytes(8, protoSmall),
		"big.bin":         big,
		"a/b/c/deep.html": randomBytes(9, 2000),
	}
	fmt.Fprintln(os.Stderr, "protocol: an origin and three volunteers")
	site, err := newBenchSite(ctx, bin, filepath.Join(work, "protocol"), files, protoPeersMx-1, false)
	if err != nil {
		return nil, err
	}
	defer site.Close()
	siteKey, err := site.siteKey(ctx)
	if err != nil {
		return nil, err
	}
	nodes := append([]*benchNode{site.origin}, site.vols...)
	var relays []*relay
	for _, n := range nodes {
		r, err := newRelay(n.proto, protoRTT, 0)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		relays = append(relays, r)
	}
	newClient := func() (*transport.Client, error) {
		return transport.NewClient(transport.ClientConfig{SiteKey: siteKey, DialTimeout: 10 * time.Second})
	}
	// Every volunteer pulls the big file through once, so that all four
	// peers hold it when the multi-peer fetch is measured.
	warm, err := newClient()
	if err != nil {
		return nil, err
	}
	for _, v := range site.vols {
		if err := fetchWhole(ctx, warm, []string{v.proto}, "/big.bin", len(big)); err != nil {
			warm.Close()
			return nil, fmt.Errorf("warming %s: %w", v.name, err)
		}
	}
	warm.Close()

	var out []Result
	peer := relays[0].Addr()
	rttNote := fmt.Sprintf("link RTT %v", protoRTT)
	type op struct {
		name string
		cold bool // a new client (no connection, no session ticket) each time
		run  func(ctx context.Context, c *transport.Client, root *tree.Root) error
	}
	lookup := func(path string, wantInline bool) func(context.Context, *transport.Client, *tree.Root) error {
		return func(ctx context.Context, c *transport.Client, root *tree.Root) error {
			r, err := c.Lookup(ctx, peer, root, tree.MustParsePath(path), protoInline)
			if err != nil {
				return err
			}
			if wantInline && !r.HasInline {
				return fmt.Errorf("%s: no inline data", path)
			}
			return nil
		}
	}
	ops := []op{
		{"small file, cold connection", true, lookup("/small.txt", true)},
		{"small file, warm connection", false, lookup("/small.txt", true)},
		{"unchanged content (root only)", false, func(ctx context.Context, c *transport.Client, _ *tree.Root) error {
			_, err := c.Root(ctx, peer)
			return err
		}},
		{"path 4 deep, known root", false, lookup("/a/b/c/deep.html", true)},
		{"absent path", false, func(ctx context.Context, c *transport.Client, root *tree.Root) error {
			r, err := c.Lookup(ctx, peer, root, tree.MustParsePath("/a/b/missing.html"), 0)
			if err == nil && r.Status != tree.Absent {
				err = fmt.Errorf("absent path: status %v", r.Status)
			}
			return err
		}},
		{fmt.Sprintf("large file (%d MiB), warm", large>>20), false, func(ctx context.Context, c *transport.Client, _ *tree.Root) error {
			return fetchWhole(ctx, c, []string{peer}, "/big.bin", len(big))
		}},
	}
	fmt.Fprintln(os.Stderr, "protocol: round trips per operation")
	shared, err := newClient()
	if err != nil {
		return nil, err
	}
	defer shared.Close()
	first, err := shared.Lookup(ctx, peer, nil, tree.MustParsePath("/small.txt"), 0) // warms the connection
	if err != nil {
		return nil, fmt.Errorf("first lookup: %w", err)
	}
	root := first.Root
	for _, o := range ops {
		var ms, rts []float64
		var reqs int64
		for range reps {
			c := shared
			if o.cold {
				if c, err = newClient(); err != nil {
					return nil, err
				}
			}
			var arg *tree.Root
			if o.name != "small file, cold connection" && o.name != "small file, warm connection" {
				arg = &root
			}
			before := c.Requests()
			start := time.Now()
			err := o.run(ctx, c, arg)
			el := time.Since(start)
			reqs = c.Requests() - before
			if o.cold {
				c.Close()
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", o.name, err)
			}
			ms = append(ms, float64(el.Microseconds())/1000)
			rts = append(rts, el.Seconds()/protoRTT.Seconds())
		}
		out = append(out, Result{Suite: "protocol", Case: o.name, Server: "gritsd", Protocol: "grits/1",
			Unit: "RTT", Value: median(rts), Millis: median(ms), Baseline: "1 RTT", BaselineValue: 1, Ratio: median(rts),
			Note: fmt.Sprintf("%s; %.1f ms; %d requests", rttNote, median(ms), reqs)})
	}

	fmt.Fprintln(os.Stderr, "protocol: one peer against a raw quic-go stream (loopback)")
	rs, err := protoThroughput(ctx, newClient, site.origin.proto, big, reps)
	if err != nil {
		return nil, err
	}
	out = append(out, rs...)

	fmt.Fprintln(os.Stderr, "protocol: a large file from 1, 2 and 4 peers")
	var one float64
	for _, k := range []int{1, 2, 4} {
		var peers []string
		for _, r := range relays[:k] {
			peers = append(peers, r.Addr())
		}
		c, err := newClient()
		if err != nil {
			return nil, err
		}
		if _, err := c.Root(ctx, peers[0]); err != nil { // connections warm
			c.Close()
			return nil, err
		}
		for _, p := range peers[1:] {
			c.Root(ctx, p)
		}
		var speeds []float64
		for range reps {
			start := time.Now()
			if err := fetchWhole(ctx, c, peers, "/big.bin", len(big)); err != nil {
				c.Close()
				return nil, fmt.Errorf("%d peers: %w", k, err)
			}
			speeds = append(speeds, mbps(int64(len(big)), time.Since(start)))
		}
		c.Close()
		v := median(speeds)
		if k == 1 {
			one = v
		}
		out = append(out, Result{Suite: "protocol", Case: fmt.Sprintf("large file from %d peer(s)", k), Server: "gritsd", Protocol: "grits/1",
			Unit: "MB/s", Value: v, MBPerS: v, Baseline: "1 peer", BaselineValue: one, Ratio: ratio(v, one), Note: rttNote + " each; " + fmtList(speeds, "%.0f")})
	}
	return out, nil
}

// fetchWhole looks path up and fetches the whole file from peers,
// verified, checking its length.
func fetchWhole(ctx context.Context, c *transport.Client, peers []string, path string, size int) error {
	r, err := c.Lookup(ctx, peers[0], nil, tree.MustParsePath(path), 0)
	if err != nil {
		return err
	}
	f, ok := r.Node.(*tree.FileNode)
	if !ok || r.Status != tree.Found {
		return fmt.Errorf("%s: not a file (%v)", path, r.Status)
	}
	buf := &sizedWriter{b: make([]byte, f.Size)}
	if _, err := c.FetchFile(ctx, peers, f, buf, transport.FetchOptions{}); err != nil {
		return err
	}
	if int(f.Size) != size {
		return fmt.Errorf("%s: %d bytes, want %d", path, f.Size, size)
	}
	return nil
}

type sizedWriter struct{ b []byte }

func (w *sizedWriter) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(w.b)) {
		return 0, errors.New("write past the end")
	}
	return copy(w.b[off:], p), nil
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// protoThroughput fetches data from one gritsd on loopback, and the same
// bytes over a raw quic-go stream from a server in this process with
// grits/1's transport settings, alternating.
func protoThroughput(ctx context.Context, newClient func() (*transport.Client, error), peer string, data []byte, reps int) ([]Result, error) {
	raw, err := startRawQUIC(data)
	if err != nil {
		return nil, err
	}
	defer raw.close()
	c, err := newClient()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := fetchWhole(ctx, c, []string{peer}, "/big.bin", len(data)); err != nil {
		return nil, err
	}
	var g, b []float64
	for range reps {
		start := time.Now()
		if err := fetchWhole(ctx, c, []string{peer}, "/big.bin", len(data)); err != nil {
			return nil, err
		}
		g = append(g, mbps(int64(len(data)), time.Since(start)))
		start = time.Now()
		if err := raw.fetch(ctx, len(data)); err != nil {
			return nil, err
		}
		b = append(b, mbps(int64(len(data)), time.Since(start)))
	}
	v, base := median(g), median(b)
	return []Result{{Suite: "protocol", Case: fmt.Sprintf("one peer, %d MiB, loopback", len(data)>>20), Server: "gritsd", Protocol: "grits/1",
		Unit: "MB/s", Value: v, MBPerS: v, Baseline: "raw quic-go stream", BaselineValue: base, Ratio: ratio(v, base),
		Note: "verified blocks vs unverified bytes; gritsd " + fmtList(g, "%.0f") + ", raw " + fmtList(b, "%.0f")}}, nil
}

// rawQUIC is the baseline: a quic-go server that answers every stream
// with the data, and one client connection to it.
type rawQUIC struct {
	ln     *quic.Listener
	tr, ct *quic.Transport
	conn   *quic.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startRawQUIC(data []byte) (*rawQUIC, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	r := &rawQUIC{tr: &quic.Transport{Conn: pc}}
	qc := &quic.Config{MaxIdleTimeout: time.Minute, MaxIncomingStreams: 100, MaxIncomingUniStreams: -1}
	r.ln, err = r.tr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"raw"}, MinVersion: tls.VersionTLS13}, qc)
	if err != nil {
		pc.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() {
		for {
			conn, err := r.ln.Accept(ctx)
			if err != nil {
				return
			}
			r.wg.Go(func() {
				for {
					st, err := conn.AcceptStream(ctx)
					if err != nil {
						return
					}
					io.Copy(io.Discard, st)
					st.Write(data)
					st.Close()
				}
			})
		}
	})
	cpc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		r.close()
		return nil, err
	}
	r.ct = &quic.Transport{Conn: cpc}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	r.conn, err = r.ct.Dial(dctx, pc.LocalAddr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"raw"}},
		&quic.Config{MaxIdleTimeout: time.Minute, MaxIncomingStreams: -1, MaxIncomingUniStreams: -1})
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func (r *rawQUIC) fetch(ctx context.Context, want int) error {
	st, err := r.conn.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	st.Write([]byte{1})
	st.Close()
	n, err := io.Copy(io.Discard, st)
	if err == nil && n != int64(want) {
		err = fmt.Errorf("raw stream: %d bytes, want %d", n, want)
	}
	return err
}

func (r *rawQUIC) close() {
	if r.conn != nil {
		r.conn.CloseWithError(0, "")
	}
	r.cancel()
	r.ln.Close()
	r.tr.Close()
	if r.ct != nil {
		r.ct.Close()
	}
	r.wg.Wait()
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// siteKey asks the origin's daemon for the site's public key.
func (s *benchSite) siteKey(ctx context.Context) (tree.PublicKey, error) {
	out, err := exec.CommandContext(ctx, s.bin, "--data", s.origin.data, "status", "--json").Output()
	if err != nil {
		return tree.PublicKey{}, fmt.Errorf("gritsd status: %w", err)
	}
	var st struct {
		Site tree.PublicKey `json:"site"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return tree.PublicKey{}, fmt.Errorf("gritsd status --json: %w", err)
	}
	return st.Site, nil
}
