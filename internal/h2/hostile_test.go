package h2

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawConn is a hand-driven HTTP/2 client connection, for what well-behaved
// clients never do.
type rawConn struct {
	t    *testing.T
	tc   *tls.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

func dialRaw(t *testing.T, ts *testServer, settings ...http2.Setting) *rawConn {
	t.Helper()
	tc, err := tls.Dial("tcp", strings.TrimPrefix(ts.URL, "https://"), &tls.Config{RootCAs: ts.pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	if _, err := tc.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	rc := &rawConn{t: t, tc: tc, fr: http2.NewFramer(tc, tc)}
	rc.henc = hpack.NewEncoder(&rc.hbuf)
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := rc.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *rawConn) get(id uint32, path string) error {
	rc.hbuf.Reset()
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "test"}, {":path", path}} {
		rc.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	return rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: true, EndHeaders: true})
}

// until reads frames until match accepts one, or the deadline.
func (rc *rawConn) until(d time.Duration, what string, match func(http2.Frame) bool) http2.Frame {
	rc.t.Helper()
	rc.tc.SetReadDeadline(time.Now().Add(d))
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("waiting for %s: %v", what, err)
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			rc.fr.WriteSettingsAck()
		}
		if match(f) {
			return f
		}
	}
}

// TestStalledWindowResetsStream: a client that never opens its window
// does not hold a handler forever.
func TestStalledWindowResetsStream(t *testing.T) {
	writeErr := make(chan error, 1)
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := w.Write(make([]byte, 64<<10))
		writeErr <- err
	}), func(s *Server) { s.WriteTimeout = 300 * time.Millisecond })
	rc := dialRaw(t, ts, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	if err := rc.get(1, "/"); err != nil {
		t.Fatal(err)
	}
	f := rc.until(5*time.Second, "RST_STREAM", func(f http2.Frame) bool {
		_, ok := f.(*http2.RSTStreamFrame)
		return ok
	}).(*http2.RSTStreamFrame)
	if f.StreamID != 1 || f.ErrCode != http2.ErrCodeCancel {
		t.Errorf("reset %v on stream %d, want CANCEL on 1", f.ErrCode, f.StreamID)
	}
	select {
	case err := <-writeErr:
		if !errors.Is(err, errFlowStalled) {
			t.Errorf("handler's write: %v, want errFlowStalled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler still blocked")
	}
}

// TestRapidResetLimited: a client that opens streams and resets them at
// once, while their handlers keep running, loses the connection once it
// has twice the stream limit of handlers busy (CVE-2023-44487).
func TestRapidResetLimited(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // a handler that does not notice the reset
	}), func(s *Server) { s.MaxConcurrentStreams = 10 })
	rc := dialRaw(t, ts)
	var id uint32 = 1
	for ; id < 200; id += 2 {
		if rc.get(id, "/") != nil || rc.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break // the server hung up
		}
	}
	f := rc.until(5*time.Second, "GOAWAY", func(f http2.Frame) bool {
		_, ok := f.(*http2.GoAwayFrame)
		return ok
	}).(*http2.GoAwayFrame)
	if f.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM", f.ErrCode)
	}
	if last := f.LastStreamID; last < 2*10*2-1 || last > 2*10*2+1 {
		t.Errorf("GOAWAY after stream %d, want about the 21st stream (41)", last)
	}
}

// TestShutdownBeforePreface: a connection that shutdown finds before its
// preface still gets SETTINGS first, then GOAWAY.
func TestShutdownBeforePreface(t *testing.T) {
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), nil)
	tc, err := tls.Dial("tcp", strings.TrimPrefix(ts.URL, "https://"), &tls.Config{RootCAs: ts.pool, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	waitFor(t, 5*time.Second, "connection handed to ServeConn", func() bool { return ts.active.Load() == 1 })
	ts.h2.Shutdown()
	tc.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(tc, tc)
	fr.WriteSettings()
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var types []http2.FrameType
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			break
		}
		types = append(types, f.Header().Type)
		if f.Header().Type == http2.FrameGoAway {
			break
		}
	}
	if len(types) < 2 || types[0] != http2.FrameSettings || types[len(types)-1] != http2.FrameGoAway {
		t.Errorf("frames %v, want SETTINGS first and GOAWAY last", types)
	}
}

// TestReadDeadlineEndsADrippedBody: a client that sends its request body
// a byte at a time does not hold the handler past the read deadline the
// handler set through http.ResponseController (as the gateway does on
// every request), and the stream's data then stops counting against the
// connection.
func TestReadDeadlineEndsADrippedBody(t *testing.T) {
	readErr := make(chan error, 1)
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
			readErr <- err
			return
		}
		_, err := io.Copy(io.Discard, r.Body)
		readErr <- err
		w.WriteHeader(http.StatusRequestTimeout)
	}), nil)
	rc := dialRaw(t, ts)
	rc.hbuf.Reset()
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "https"}, {":authority", "test"}, {":path", "/"}, {"content-length", "1000"}} {
		rc.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: rc.hbuf.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	dripped := make(chan struct{})
	go func() {
		defer close(dripped)
		for range 100 { // bounded: 10 s at most
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if rc.fr.WriteData(1, false, []byte{'x'}) != nil {
				return
			}
		}
	}()
	var err error
	select {
	case err = <-readErr:
	case <-time.After(10 * time.Second):
		err = errors.New("the handler still reads the dripped body")
	}
	close(stop) // the framer is not for two writers: until acknowledges SETTINGS
	<-dripped
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("body read: %v, want a deadline error", err)
	}
	f := rc.until(5*time.Second, "the response", func(f http2.Frame) bool {
		h, ok := f.(*http2.MetaHeadersFrame)
		return ok && h.StreamID == 1
	}).(*http2.MetaHeadersFrame)
	if got := f.PseudoValue("status"); got != "408" {
		t.Errorf("status %s, want 408", got)
	}
}
