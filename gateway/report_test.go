package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

func TestReportEndpoint(t *testing.T) {
	var got []Report
	var from []string
	h, err := NewHandler(Config{Store: blockstore.NewMem(-1), RateLimit: -1, ReportKey: []byte("0123456789abcdef"),
		OnReport: func(client string, r Report) {
			got = append(got, r)
			from = append(from, client)
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	// A visit: any page gives the token.
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	token := resp.Header.Get(ReportTokenHeader)
	if token == "" {
		t.Fatal("no report token on a page")
	}
	post := func(body, token string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+ReportPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set(ReportTokenHeader, token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	good := `{"peer":"https://v1.example:8443","hash":"b3-00","reason":"block does not match its hash"}`
	if code := post(good, ""); code != http.StatusForbidden {
		t.Fatalf("report without a token: %d, want 403", code)
	}
	if code := post(good, token[:len(token)-2]+"AA"); code != http.StatusForbidden {
		t.Fatalf("report with a forged token: %d, want 403", code)
	}
	if len(got) != 0 {
		t.Fatalf("reports without a valid token passed on: %+v", got)
	}
	if code := post(good, token); code != http.StatusNoContent {
		t.Fatalf("good report: %d", code)
	}
	if len(got) != 1 || got[0].Peer != "https://v1.example:8443" || from[0] != "127.0.0.0/24" {
		t.Fatalf("report %+v from %v", got, from)
	}
	for _, bad := range []string{"", "{", `{"hash":"b3-00"}`, strings.Repeat("x", 5000)} {
		if code := post(bad, token); code != http.StatusBadRequest {
			t.Errorf("report %.20q: %d, want 400", bad, code)
		}
	}
	long := `{"peer":"p","reason":"` + strings.Repeat("r", 1000) + `"}`
	if code := post(long, token); code != http.StatusNoContent || len(got[len(got)-1].Reason) != 200 {
		t.Errorf("long reason: %d, %d bytes kept", code, len(got[len(got)-1].Reason))
	}
	if len(got) != 2 {
		t.Fatalf("%d reports passed on, want 2", len(got))
	}
	if _, err := NewHandler(Config{Store: blockstore.NewMem(-1), OnReport: func(string, Report) {}}); err == nil {
		t.Error("OnReport without a ReportKey accepted")
	}
}

// TestReportTokens: a token is good for its address class and an hour;
// not for another network, not once expired, not from another key.
func TestReportTokens(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tk := &reportTokens{key: []byte("a key of sixteen"), now: func() time.Time { return now }}
	home := ReportClass(netip.MustParseAddr("198.51.100.7"))
	tok := tk.issue(home)
	for _, c := range []struct {
		name  string
		class netip.Prefix
		at    time.Time
		key   string
		ok    bool
	}{
		{"same address class", ReportClass(netip.MustParseAddr("198.51.100.200")), now, "", true},
		{"59 minutes later", home, now.Add(59 * time.Minute), "", true},
		{"another network", ReportClass(netip.MustParseAddr("198.51.101.7")), now, "", false},
		{"IPv6", ReportClass(netip.MustParseAddr("2001:db8::1")), now, "", false},
		{"after an hour", home, now.Add(61 * time.Minute), "", false},
		{"issued in the future", home, now.Add(-2 * time.Minute), "", false},
		{"another key (a restart with a new one)", home, now, "another key 16 b", false},
	} {
		chk := &reportTokens{key: tk.key, now: func() time.Time { return c.at }}
		if c.key != "" {
			chk.key = []byte(c.key)
		}
		if err := chk.check(tok, c.class); (err == nil) != c.ok {
			t.Errorf("%s: %v, want ok %v", c.name, err, c.ok)
		}
	}
	for _, bad := range []string{"", "v1.", "v2." + tok[3:], tok + "A", strings.Repeat("A", len(tok))} {
		if tk.check(bad, home) == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
	if ReportClass(netip.MustParseAddr("2001:db8:1:2::1")) != ReportClass(netip.MustParseAddr("2001:db8:1:ffff::9")) {
		t.Error("one IPv6 /48, two classes")
	}
}

// FuzzReportToken checks the report token parser, network input: it
// never panics, and the only strings it accepts for a class are the
// tokens issued to that class (a fuzzed string that passes would be a
// forged token). Seeds are in testdata/fuzz/FuzzReportToken.
func FuzzReportToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	tk := &reportTokens{key: []byte("the fuzzer's key"), now: func() time.Time { return now }}
	class := ReportClass(netip.MustParseAddr("192.0.2.9"))
	issued := tk.issue(class)
	for _, s := range []string{issued, "", "v1.", "v1." + strings.Repeat("A", 32), issued[:len(issued)-1], issued + "=", "v2" + issued[2:]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if tk.check(s, class) == nil && s != issued {
			t.Fatalf("accepted %q, which was never issued", s)
		}
	})
}
