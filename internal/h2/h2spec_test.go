package h2

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestH2Spec runs h2spec, the HTTP/2 conformance suite (RFC 7540 and
// HPACK, 146 cases), against the server: every case must pass.
func TestH2Spec(t *testing.T) {
	if testing.Short() {
		t.Skip("h2spec takes a few seconds")
	}
	ts := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte("hello"))
	}), nil)
	hostPort := strings.TrimPrefix(ts.URL, "https://")
	host, port, _ := strings.Cut(hostPort, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "h2spec", "-h", host, "-p", port, "-t", "-k", "-o", "2").CombinedOutput()
	report := string(out)
	if err != nil {
		t.Fatalf("h2spec: %v\n%s", err, report)
	}
	if !strings.Contains(report, " 0 failed") {
		t.Fatalf("h2spec found failures:\n%s", report)
	}
	t.Log(report[strings.LastIndex(report, "Finished"):])
}
