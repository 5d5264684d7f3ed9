package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/sw"
	"github.com/grits-cdn/grits/transport"
)

// Endpoints: what a request asked for, over HTTP or grits/1. The set is
// closed, so label values stay bounded whatever the clients send.
type endpoint uint8

const (
	epBlock endpoint = iota
	epBlocks
	epLookup
	epRoot
	epRoots
	epPeers
	epReport
	epScript
	epSite
	epEnroll
	epSwarmKeys
	epOther
	numEndpoints
)

var endpointNames = [numEndpoints]string{"block", "blocks", "lookup", "root", "roots", "peers", "report", "script", "site", "enroll", "swarm_keys", "other"}

// Protocols a request came over.
type protocol uint8

const (
	protoH1 protocol = iota
	protoH2
	protoH3
	protoGrits1
	numProtocols
)

var protocolNames = [numProtocols]string{"h1", "h2", "h3", "grits1"}

// Results: how a request ended.
type result uint8

const (
	resOK result = iota
	resNotModified
	resRedirect
	resNotFound
	resBadRequest
	resUnauthorized
	resRateLimited
	resCancelled
	resError
	numResults
)

var resultNames = [numResults]string{"ok", "not_modified", "redirect", "not_found", "bad_request", "unauthorized", "rate_limited", "cancelled", "error"}

// cell is one (endpoint, protocol, result) series pair, made on first use
// so that a scrape lists only the combinations that happened.
type cell struct {
	requests, bytes prometheus.Counter
}

// Metrics holds the instruments the node's hot paths feed (HTTP
// middleware, the grits/1 answer hook, browser reports) and the
// registry that /metrics serves. The gauges and counters that already
// live in the core packages are read at scrape time (see Sources).
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	cells    [numEndpoints][numProtocols][numResults]atomic.Pointer[cell]
	timed    [numEndpoints][numProtocols]prometheus.Observer // lookup and block only
	reports  prometheus.Counter

	// Totals for the swarm's served reports, in the units they carry.
	httpRequests, httpBytes atomic.Int64
}

// NewMetrics makes the registry with the hot-path instruments, the Go
// runtime's and the process's collectors.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grits_served_requests_total",
		Help: "Requests answered, by endpoint, protocol (h1, h2, h3: browsers; grits1: nodes and clients) and result."},
		[]string{"endpoint", "protocol", "result"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "grits_served_bytes_total",
		Help: "Bytes sent in answers (HTTP: body bytes; grits/1: frame bytes), by endpoint, protocol and result."},
		[]string{"endpoint", "protocol", "result"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "grits_request_duration_seconds",
		Help:    "Time to answer a lookup or a block, from the request read to the answer written, by endpoint and protocol.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}},
		[]string{"endpoint", "protocol"})
	m.reports = prometheus.NewCounter(prometheus.CounterOpts{Name: "grits_browser_reports_total",
		Help: "Reports received from browsers' service workers about volunteers that sent bad data or did not answer (origin only)."})
	m.reg.MustRegister(m.requests, m.bytes, m.duration, m.reports)
	registerRuntime(m.reg)
	for _, e := range []endpoint{epLookup, epBlock} {
		for p := range numProtocols {
			m.timed[e][p] = m.duration.WithLabelValues(endpointNames[e], protocolNames[p])
		}
	}
	return m
}

// Registry is where /metrics gathers from; callers may register more.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) cell(e endpoint, p protocol, r result) *cell {
	if c := m.cells[e][p][r].Load(); c != nil {
		return c
	}
	l := []string{endpointNames[e], protocolNames[p], resultNames[r]}
	c := &cell{requests: m.requests.WithLabelValues(l...), bytes: m.bytes.WithLabelValues(l...)}
	// WithLabelValues returns the same counters to whoever loses the race.
	m.cells[e][p][r].CompareAndSwap(nil, c)
	return c
}

func (m *Metrics) observe(e endpoint, p protocol, r result, n int64, d time.Duration) {
	c := m.cell(e, p, r)
	c.requests.Inc()
	if n > 0 {
		c.bytes.Add(float64(n))
	}
	if o := m.timed[e][p]; o != nil && r == resOK {
		o.Observe(d.Seconds())
	}
}

// HTTP wraps the browser-facing handler, counting every request by
// endpoint, protocol and result, and timing lookups and blocks.
func (m *Metrics) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			// Also when the handler panics (a proxied stream cut with
			// http.ErrAbortHandler): the request still happened.
			m.httpRequests.Add(1)
			m.httpBytes.Add(rec.n)
			m.observe(httpEndpoint(r), httpProtocol(r), httpResult(rec.status), rec.n, time.Since(start))
		}()
		next.ServeHTTP(rec, r)
	})
}

// HTTPTotals is the requests and body bytes the HTTP wrapper has seen.
func (m *Metrics) HTTPTotals() (requests, bytes int64) {
	return m.httpRequests.Load(), m.httpBytes.Load()
}

// Answer is the grits/1 server's OnAnswer hook.
func (m *Metrics) Answer(a transport.Answer) {
	m.observe(protoEndpoint(a.Type), protoGrits1, errResult(a.Err), a.Bytes, a.Duration)
}

// Report counts a browser's report about a volunteer.
func (m *Metrics) Report() { m.reports.Inc() }

// recorder keeps the status and counts the body bytes of a response.
type recorder struct {
	http.ResponseWriter
	status int
	n      int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer (Flush for
// streamed answers, Hijack for proxied WebSockets).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func httpProtocol(r *http.Request) protocol {
	switch r.ProtoMajor {
	case 3:
		return protoH3
	case 2:
		return protoH2
	}
	return protoH1
}

func httpEndpoint(r *http.Request) endpoint {
	p := r.URL.Path
	switch {
	case p == sw.WorkerPath || p == sw.RegisterPath || p == sw.LibPath || p == sw.LibTypesPath || strings.HasPrefix(p, sw.ModulePath):
		return epScript
	case !strings.HasPrefix(p, gateway.APIPrefix):
		return epSite
	}
	switch rest := p[len(gateway.APIPrefix):]; {
	case strings.HasPrefix(rest, "block/"):
		return epBlock
	case strings.HasPrefix(rest, "blocks/"):
		return epBlocks
	case strings.HasPrefix(rest, "lookup/"):
		return epLookup
	case rest == "root":
		return epRoot
	case rest == "peers":
		return epPeers
	case rest == "report":
		return epReport
	}
	return epOther
}

func httpResult(status int) result {
	switch {
	case status == 0 || status >= 200 && status < 300:
		return resOK
	case status == http.StatusNotModified:
		return resNotModified
	case status < 400:
		return resRedirect
	case status == http.StatusNotFound:
		return resNotFound
	case status == http.StatusTooManyRequests:
		return resRateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return resUnauthorized
	case status < 500:
		return resBadRequest
	}
	return resError
}

func protoEndpoint(t proto.Type) endpoint {
	switch t {
	case proto.TypeGetBlock:
		return epBlock
	case proto.TypeGetBlocks:
		return epBlocks
	case proto.TypeLookup:
		return epLookup
	case proto.TypeGetRoot:
		return epRoot
	case proto.TypeGetRoots:
		return epRoots
	case proto.TypeEnroll:
		return epEnroll
	case proto.TypeGetSwarmKeys:
		return epSwarmKeys
	}
	return epOther
}

func errResult(err error) result {
	var ne net.Error
	switch {
	case err == nil:
		return resOK
	case errors.Is(err, proto.ErrNotFound), errors.Is(err, proto.ErrUnknownRoot), errors.Is(err, blockstore.ErrNotFound):
		return resNotFound
	case errors.Is(err, proto.ErrBadRequest), errors.Is(err, proto.ErrTooLarge):
		return resBadRequest
	case errors.Is(err, proto.ErrUnauthorized):
		return resUnauthorized
	case errors.Is(err, proto.ErrOverloaded):
		return resRateLimited
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return resCancelled
	}
	return resError
}
