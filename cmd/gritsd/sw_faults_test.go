package main_test

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// statusReports is what gritsd status on the origin lists of browsers'
// reports about volunteers.
type statusReports []struct {
	Peer   string `json:"peer"`
	Reason string `json:"reason"`
	Count  int    `json:"count"`
}

func (s *swSite) reports() statusReports {
	s.t.Helper()
	r := s.o.must(s.t, "status", "--json")
	var st struct {
		Reports statusReports `json:"reports"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		s.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st.Reports
}

// noReports fails the test if the origin heard any complaint about a
// volunteer: after a run with healthy volunteers there must be none.
func (s *swSite) noReports() {
	s.t.Helper()
	if reps := s.reports(); len(reps) > 0 {
		s.t.Errorf("the origin holds %d reports against healthy volunteers: %+v", len(reps), reps)
	}
}

// TestServiceWorkerSlowVolunteerIsNoFault: one of two volunteers is
// healthy but answers 400 ms late (a proxy holds each response). The
// worker's hedges go to the other one and win, again and again; every
// file arrives byte-exact, and the origin gets no report: losing races
// is not a fault, only a timeout or a lie is.
func TestServiceWorkerSlowVolunteerIsNoFault(t *testing.T) {
	files := moreFiles(checkFiles(), 16)
	s := newSWSite(t, files)
	s.volunteer()
	var asked atomic.Int64
	slowURL, _ := s.faultyVolunteer(nil, func(resp *http.Response) error {
		asked.Add(1)
		time.Sleep(400 * time.Millisecond) // the headers leave late
		return nil
	})
	s.waitPeers(2, slowURL)
	b := s.browser()
	s.open(b, "/")
	checkFilesLive(t, b, files)
	st := workerStats(t, b)
	t.Logf("the slow volunteer was asked %d times; the worker sent %d hedges: %+v", asked.Load(), st.HedgesSent, st)
	if asked.Load() == 0 || st.HedgesSent == 0 {
		t.Fatal("no request went to the slow volunteer, or none was hedged: the test proved nothing")
	}
	if st.ReportsSent != 0 {
		t.Errorf("the worker sent %d reports about healthy volunteers", st.ReportsSent)
	}
	s.noReports()
}
