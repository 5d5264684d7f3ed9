package h2

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzServeConn feeds arbitrary frames to a server connection after a
// valid preface: whatever the bytes, the server must not panic, and must
// let go of the connection once the client closes it.
//
//	go test -run '^$' -fuzz FuzzServeConn -fuzztime 60s ./internal/h2
func FuzzServeConn(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	srv := &Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			w.Header().Set("Trailer", "X-T")
			w.Write(b)
			w.Write(make([]byte, 20000))
			w.Header().Set("X-T", "t")
		}),
		Logger:       slog.New(slog.DiscardHandler),
		IdleTimeout:  50 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cli, sc := net.Pipe()
		done := make(chan struct{})
		go func() {
			srv.ServeConn(sc)
			close(done)
		}()
		go io.Copy(io.Discard, cli)
		cli.SetWriteDeadline(time.Now().Add(2 * time.Second))
		cli.Write([]byte(http2.ClientPreface))
		cli.Write(data)
		cli.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("ServeConn still running 5s after the client closed")
		}
	})
}

// fuzzSeeds are frame sequences that reach every frame handler: a GET, a
// POST with body and trailers, a header block over CONTINUATION, window
// updates, a reset, PING, PRIORITY, an unknown frame type, GOAWAY.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(fields ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return append([]byte(nil), hb.Bytes()...)
	}
	req := func(method, path string, extra ...string) []byte {
		return block(append([]string{":method", method, ":scheme", "https", ":authority", "x", ":path", path}, extra...)...)
	}
	frames := func(write func(fr *http2.Framer)) {
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
		write(fr)
		seeds = append(seeds, b.Bytes())
	}
	frames(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: req("GET", "/"), EndStream: true, EndHeaders: true})
		fr.WriteWindowUpdate(0, 1<<20)
		fr.WriteWindowUpdate(1, 1<<20)
	})
	frames(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: req("POST", "/up", "content-length", "5", "trailer", "x-sum"), EndHeaders: true})
		fr.WriteData(3, false, []byte("hel"))
		fr.WriteDataPadded(3, false, []byte("lo"), []byte{0, 0, 0})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block("x-sum", "1"), EndStream: true, EndHeaders: true})
		fr.WritePing(false, [8]byte{1, 2, 3})
	})
	frames(func(fr *http2.Framer) {
		b := req("GET", "/long", "x-long", string(bytes.Repeat([]byte("a"), 300)))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:10], EndStream: true})
		fr.WriteContinuation(1, false, b[10:100])
		fr.WriteContinuation(1, true, b[100:])
		fr.WritePriority(3, http2.PriorityParam{StreamDep: 1, Weight: 5})
		fr.WriteRawFrame(0x20, 0, 0, []byte("unknown"))
		fr.WriteRSTStream(1, http2.ErrCodeCancel)
		fr.WriteGoAway(1, http2.ErrCodeNo, nil)
	})
	frames(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: req("GET", "/", "expect", "100-continue"), EndHeaders: true})
		fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 20000})
		fr.WriteData(1, true, nil)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: req("HEAD", "/"), EndStream: true, EndHeaders: true})
	})
	return seeds
}
