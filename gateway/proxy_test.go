package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

const testInject = `<script src="/grits/v1/register.js" defer></script>`

// testSiteName is the Host the test proxies give the app.
const testSiteName = "site.example"

// startApp is a small app server: HTML pages, an API, a stream and a
// WebSocket echo.
func startApp(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<html><head><title>t</title></head><body>host=%s xfh=%s xff=%s</body></html>", r.Host, r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-For"))
	})
	mux.HandleFunc("/nohead", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<p>fragment</p></body>")
	})
	mux.HandleFunc("/api", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, `{"method":%q,"body":%q}`, r.Method, b)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // holds the stream open until the client goes
	})
	mux.Handle("/ws", websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(c, &msg) != nil || websocket.Message.Send(c, msg) != nil {
				return
			}
		}
	}))
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	return app
}

func startProxy(t *testing.T, app *httptest.Server, inject string) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(app.URL)
	h, err := NewProxy(ProxyConfig{Upstream: u, Host: testSiteName, InjectScript: inject})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	t.Cleanup(front.Close)
	return front
}

func proxyGet(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestProxyForwardsAndInjects(t *testing.T) {
	app := startApp(t)
	front := startProxy(t, app, testInject)

	resp, body := proxyGet(t, front.URL+"/page")
	want := "<html><head><title>t</title>" + testInject + "</head>"
	if !strings.HasPrefix(body, want) {
		t.Fatalf("page: %q", body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Fatalf("Content-Length %d for %d bytes", resp.ContentLength, len(body))
	}
	// The app sees the site's host name and the client's address.
	if !strings.Contains(body, "host="+testSiteName+" xfh="+testSiteName+" ") || !strings.Contains(body, "xff=127.0.0.1") {
		t.Fatalf("forwarding headers: %q", body)
	}
	// Whatever Host the client writes: a forged one never reaches the
	// app, which may build links or password-reset mails from it.
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/page", nil)
	req.Host = "evil.example"
	req.Header.Set("X-Forwarded-Host", "evil.example")
	fr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	fb, _ := io.ReadAll(fr.Body)
	fr.Body.Close()
	if strings.Contains(string(fb), "evil") || !strings.Contains(string(fb), "host="+testSiteName) {
		t.Fatalf("with Host: evil.example the app saw %q, want only %s", fb, testSiteName)
	}
	if _, body := proxyGet(t, front.URL+"/nohead"); body != "<p>fragment</p>"+testInject+"</body>" {
		t.Fatalf("no head: %q", body)
	}
	// Non-HTML untouched; request bodies and methods pass.
	r, err := http.Post(front.URL+"/api", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if string(b) != `{"method":"POST","body":"hello"}` {
		t.Fatalf("api: %q", b)
	}
	// Without injection, pages pass unchanged.
	plain := startProxy(t, app, "")
	if _, body := proxyGet(t, plain.URL+"/page"); strings.Contains(body, "register.js") {
		t.Fatal("injected without being asked to")
	}
}

func TestProxyStreamsAndPassesWebSockets(t *testing.T) {
	app := startApp(t)
	front := startProxy(t, app, testInject)

	// A stream's first event arrives while the app still holds it open.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/stream", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "data: first\n\n" {
		t.Fatalf("stream: %q %v", buf, err)
	}
	resp.Body.Close()

	ws, err := websocket.Dial(strings.Replace(front.URL, "http", "ws", 1)+"/ws", "", front.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, msg := range []string{"hello", strings.Repeat("x", 100_000)} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		ws.SetDeadline(time.Now().Add(10 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
			t.Fatalf("echo of %d bytes: %d bytes, %v", len(msg), len(got), err)
		}
	}
}

func TestProxyWithDeadAppSays502(t *testing.T) {
	app := startApp(t)
	front := startProxy(t, app, "")
	app.Close()
	resp, body := proxyGet(t, front.URL+"/page")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "app server") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if _, err := NewProxy(ProxyConfig{Upstream: &url.URL{Scheme: "ftp", Host: "x"}}); err == nil {
		t.Fatal("accepted an ftp upstream")
	}
}

// TestAppPagesGetNoTimingAllowOrigin: the tree's files and the API are
// public and may be timed from any site; the app's pages, private to
// their user, are not (Timing-Allow-Origin: * would hand every other
// site their Resource Timing: sizes and durations that tell what a
// logged-in page holds).
func TestAppPagesGetNoTimingAllowOrigin(t *testing.T) {
	s := newGWSite(t)
	app := startApp(t)
	u, _ := url.Parse(app.URL)
	proxy, err := NewProxy(ProxyConfig{Upstream: u, Host: testSiteName})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.config()
	cfg.Site, cfg.Fallback, cfg.FallbackPrefixes = true, proxy, []string{"/api"}
	g := startGW(t, cfg)
	for _, c := range []struct {
		path string
		tao  bool
	}{
		{"/grits/v1/root", true},
		{"/index.html", true},   // the tree: public
		{"/page", false},        // the app, not in the tree
		{"/api", false},         // the app, by prefix
		{"/docs/../x", false},   // a path the tree refuses: the app
		{"/nothere.css", false}, // not in the tree: the app
	} {
		resp, body := g.get(t, c.path)
		if resp.StatusCode != http.StatusOK && c.tao {
			t.Fatalf("GET %s: %s %q", c.path, resp.Status, body)
		}
		if got := resp.Header.Get("Timing-Allow-Origin") == "*"; got != c.tao {
			t.Errorf("GET %s: Timing-Allow-Origin %q, want it: %v", c.path, resp.Header.Get("Timing-Allow-Origin"), c.tao)
		}
	}
}

// TestFallbackPrefixesAreRateLimited: paths that always go to the app
// are behind the per-client rate limit like every other path; before,
// the node sent them to the proxy ahead of the gateway, and a client
// could hammer the app through them without limit.
func TestFallbackPrefixesAreRateLimited(t *testing.T) {
	s := newGWSite(t)
	var hits atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "app")
	}))
	t.Cleanup(app.Close)
	u, _ := url.Parse(app.URL)
	proxy, err := NewProxy(ProxyConfig{Upstream: u, Host: testSiteName})
	if err != nil {
		t.Fatal(err)
	}
	const burst = 5
	cfg := s.config()
	cfg.Site, cfg.Fallback, cfg.FallbackPrefixes = true, proxy, []string{"/api/"}
	cfg.RateLimit, cfg.RateBurst = 0.01, burst // no refill during the test
	g := startGW(t, cfg)
	limited := 0
	for range 4 * burst {
		resp, _ := g.get(t, "/api/x")
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 3*burst || hits.Load() != burst {
		t.Fatalf("%d of %d requests limited and %d reached the app; want %d limited and %d at the app", limited, 4*burst, hits.Load(), 3*burst, burst)
	}
}
