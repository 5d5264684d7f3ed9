package gateway

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// testHTTP2 is the HTTP/2 server every test of this package runs behind;
// TestGoHTTP2Server runs them all again with -gateway.http2=go.
var testHTTP2 = flag.String("gateway.http2", HTTP2Grits, "HTTP/2 server the tests run behind: grits or go")

// TestGoHTTP2Server runs every test of this package again behind Go's
// own HTTP/2 server, the one an operator can switch to (http2 = "go"):
// both must pass the same tests.
func TestGoHTTP2Server(t *testing.T) {
	if *testHTTP2 != HTTP2Grits {
		t.Skip("this run is the one behind Go's server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{"-test.count=1", "-test.skip=^TestGoHTTP2Server$", "-gateway.http2=go"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the package's tests behind Go's HTTP/2 server: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("no PASS from the run behind Go's HTTP/2 server:\n%s", out)
	}
}

// TestServerHTTP2Choice: the setting picks the server that answers
// HTTP/2, and an unknown one is refused.
func TestServerHTTP2Choice(t *testing.T) {
	for _, tt := range []struct{ server, writer string }{{HTTP2Grits, "*h2."}, {HTTP2Go, "*http.http2responseWriter"}} {
		t.Run(tt.server, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%T", w) })
			ts := srvTestStart(t, h, func(c *ServerConfig) { c.HTTP2 = tt.server })
			resp, body := srvTestGet(t, ts.h2Client(), ts.url, nil)
			if resp.ProtoMajor != 2 || !strings.HasPrefix(body, tt.writer) {
				t.Errorf("http2 = %s: answered over %s by %s, want HTTP/2 from %s...", tt.server, resp.Proto, body, tt.writer)
			}
		})
	}
	if _, err := Listen(ServerConfig{Addr: "127.0.0.1:0", Handler: http.NotFoundHandler(), TLS: TLSConfig(nil), HTTP2: "h2o"}); err == nil {
		t.Errorf("HTTP2 h2o: no error")
	}
}

// goH2SpecFailures are the h2spec cases Go's own HTTP/2 server fails on
// purpose or by a known, open bug: it accepts connection-specific
// request headers (golang/go#26321) and refuses a SETTINGS frame that
// repeats a setting. Ours passes all of them.
var goH2SpecFailures = []string{
	"Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE",
	"Sends a HEADERS frame that contains the connection-specific header field",
	"Sends a HEADERS frame that contains the TE header field with any value other than \"trailers\"",
}

// TestServerH2Spec runs h2spec, the HTTP/2 conformance suite, against the
// gateway's Server with the HTTP/2 server under test: ours passes every
// case, Go's every case but its known deviations.
func TestServerH2Spec(t *testing.T) {
	if testing.Short() {
		t.Skip("h2spec takes a few seconds")
	}
	ts := srvTestStart(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("hello"))
	}), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "h2spec", "-h", "127.0.0.1", "-p", ts.port, "-t", "-k", "-o", "2").CombinedOutput()
	report := string(out)
	i := strings.LastIndex(report, "Finished")
	if i < 0 {
		t.Fatalf("h2spec did not finish: %v\n%s", err, report)
	}
	var allowed []string
	if *testHTTP2 == HTTP2Go {
		allowed = goH2SpecFailures
	}
	var failed []string
	if j := strings.Index(report, "Failures:"); j >= 0 {
		for _, line := range strings.Split(report[j:i], "\n") {
			if _, name, ok := strings.Cut(line, "× "); ok {
				_, name, _ = strings.Cut(name, ": ")
				failed = append(failed, strings.TrimSpace(name))
			}
		}
	}
	for _, f := range failed {
		if !slices.Contains(allowed, f) {
			t.Errorf("h2spec against http2 = %s: %q failed", *testHTTP2, f)
		}
	}
	if want := fmt.Sprintf(" %d failed", len(allowed)); !strings.Contains(report[i:], want) || len(failed) != len(allowed) {
		t.Errorf("h2spec against http2 = %s: want exactly%s (%q), got %q\n%s", *testHTTP2, want, allowed, failed, report)
	}
	t.Log(report[i:])
}
