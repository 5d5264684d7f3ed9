package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

type originReport struct {
	Peer      string `json:"peer"`
	Count     int    `json:"count"`
	Reporters int    `json:"reporters"`
}

func originReports(t *testing.T, o dataDir) []originReport {
	t.Helper()
	r := o.must(t, "status", "--json")
	var st struct {
		Reports []originReport `json:"reports"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st.Reports
}

// TestReportsNeedAVisitAndCannotBeDrowned: POST /grits/v1/report was
// open to anyone, and after 256 junk names the origin dropped genuine
// reports. A scripted client now finds: no report without the token the
// origin hands out with its pages; with one, reports about URLs that are
// no volunteer's are not kept, so a flood of them leaves room for the
// real one; one client cannot pile up a volunteer's count.
func TestReportsNeedAVisitAndCannotBeDrowned(t *testing.T) {
	t.Parallel()
	o, _ := newOriginWithKey(t)
	o.importTree(t, newSource(t, []entry{{path: "index.html", data: []byte("<h1>hi</h1>")}}))
	osrv := startServe(t, o, gwGossip...)
	oaddr, _ := gwHTTPS(t, osrv)
	base := "https://" + oaddr
	v := gwEnrol(t, o, osrv.addr)
	c := gwNewH2(t, gwCAPool(t, o.path("ca.pem")), nil)
	eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		_, body, err := c.try(http.MethodGet, base+"/grits/v1/peers", nil)
		if err != nil {
			return err
		}
		if !strings.Contains(string(body), v.url) {
			return fmt.Errorf("the origin does not list the volunteer yet: %s", body)
		}
		return nil
	})
	report := func(peer, token string) int {
		t.Helper()
		body := fmt.Sprintf(`{"peer":%q,"reason":"block does not match its hash"}`, peer)
		hdr := []string{"Content-Type: application/json"}
		if token != "" {
			hdr = append(hdr, "Grits-Report-Token: "+token)
		}
		resp, _, err := c.try(http.MethodPost, base+"/grits/v1/report", []byte(body), hdr...)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}

	if code := report(v.url, ""); code != http.StatusForbidden {
		t.Errorf("a report without a visit's token: %d, want 403", code)
	}
	resp, _ := c.get(t, base+"/")
	token := resp.Header.Get("Grits-Report-Token")
	if token == "" {
		t.Fatal("the origin's page carries no Grits-Report-Token")
	}
	// Junk first: more names than the origin ever kept.
	for i := range 300 {
		report(fmt.Sprintf("https://junk%d.example", i), token)
	}
	if code := report(v.url, token); code != http.StatusNoContent {
		t.Fatalf("a real report with the token: %d, want 204", code)
	}
	reps := originReports(t, o)
	if len(reps) != 1 || reps[0].Peer != v.url || reps[0].Count != 1 || reps[0].Reporters != 1 {
		t.Fatalf("the origin keeps %+v, want one report about %s", reps, v.url)
	}
	// One client cannot make a volunteer look reported by many.
	for range 30 {
		report(v.url, token)
	}
	reps = originReports(t, o)
	if len(reps) != 1 || reps[0].Count > 10 || reps[0].Reporters != 1 {
		t.Fatalf("after 30 more reports from one client the origin keeps %+v, want at most 10 from 1 reporter", reps)
	}
}
