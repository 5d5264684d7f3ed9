package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

func TestReportEndpoint(t *testing.T) {
	var got []Report
	var from []string
	h, err := NewHandler(Config{Store: blockstore.NewMem(-1), RateLimit: -1, OnReport: func(client string, r Report) {
		got = append(got, r)
		from = append(from, client)
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(body string) int {
		resp, err := http.Post(srv.URL+ReportPath, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(`{"peer":"https://v1.example:8443","hash":"b3-00","reason":"block does not match its hash"}`); code != http.StatusNoContent {
		t.Fatalf("good report: %d", code)
	}
	if len(got) != 1 || got[0].Peer != "https://v1.example:8443" || from[0] != "127.0.0.1" {
		t.Fatalf("report %+v from %v", got, from)
	}
	for _, bad := range []string{"", "{", `{"hash":"b3-00"}`, strings.Repeat("x", 5000)} {
		if code := post(bad); code != http.StatusBadRequest {
			t.Errorf("report %.20q: %d, want 400", bad, code)
		}
	}
	long := `{"peer":"p","reason":"` + strings.Repeat("r", 1000) + `"}`
	if code := post(long); code != http.StatusNoContent || len(got[len(got)-1].Reason) != 200 {
		t.Errorf("long reason: %d, %d bytes kept", code, len(got[len(got)-1].Reason))
	}
	if len(got) != 2 {
		t.Fatalf("%d reports passed on, want 2", len(got))
	}
}
