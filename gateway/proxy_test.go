package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

const testInject = `<script src="/grits/v1/register.js" defer></script>`

// startApp is a small app server: HTML pages, an API, a stream and a
// WebSocket echo.
func startApp(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<html><head><title>t</title></head><body>host=%s xff=%s</body></html>", r.Host, r.Header.Get("X-Forwarded-For"))
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
	h, err := NewProxy(ProxyConfig{Upstream: u, InjectScript: inject})
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
	fu, _ := url.Parse(front.URL)
	if !strings.Contains(body, "host="+fu.Host) || !strings.Contains(body, "xff=127.0.0.1") {
		t.Fatalf("forwarding headers: %q", body)
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
