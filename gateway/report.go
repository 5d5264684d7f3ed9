package gateway

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// ReportTokenHeader carries, on the origin's pages and root answers, the
// token a service worker must send back with a report: proof that the
// report comes from a browser that visited the site recently, from about
// where it visits from.
const ReportTokenHeader = "Grits-Report-Token"

// Report tokens.
const (
	// ReportTokenTTL is how long a token stays good; the worker gets a
	// fresh one with every page and root check.
	ReportTokenTTL = time.Hour
	// reportTokenSkew accepts tokens stamped this far in the future.
	reportTokenSkew   = time.Minute
	reportTokenPrefix = "v1."
	reportTokenMACLen = 16
	reportTokenDomain = "grits-report-token-v1\x00"
)

// ErrReportToken is a report's missing, malformed, expired or foreign
// token.
var ErrReportToken = errors.New("report token missing, expired or not issued to this address")

// reportTokens issues and checks report tokens: "v1." and the unpadded
// base64url of the issue time (8 bytes, Unix seconds) and an HMAC-SHA256
// (first 16 bytes) under a key only this node holds, over the time and
// the client's address class. Nothing is stored per client.
type reportTokens struct {
	key []byte
	now func() time.Time
}

// ReportClass is the part of a client's address a report token and the
// per-reporter quotas are bound to: its /24 for IPv4, its /48 for IPv6
// (what one home or office network usually holds), so that a phone
// keeping its network keeps its token.
func ReportClass(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 24
	if ip.Is6() {
		bits = 48
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

func (t *reportTokens) mac(at uint64, class netip.Prefix) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(reportTokenDomain))
	var b [8 + 16 + 1]byte
	binary.BigEndian.PutUint64(b[:8], at)
	a := class.Addr().As16()
	copy(b[8:24], a[:])
	b[24] = byte(class.Bits())
	m.Write(b[:])
	return m.Sum(nil)[:reportTokenMACLen]
}

// issue returns a token for a client in class.
func (t *reportTokens) issue(class netip.Prefix) string {
	at := uint64(t.now().Unix())
	var b [8 + reportTokenMACLen]byte
	binary.BigEndian.PutUint64(b[:8], at)
	copy(b[8:], t.mac(at, class))
	return reportTokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// check verifies a token presented by a client in class.
func (t *reportTokens) check(token string, class netip.Prefix) error {
	rest, ok := strings.CutPrefix(token, reportTokenPrefix)
	if !ok || len(rest) != base64.RawURLEncoding.EncodedLen(8+reportTokenMACLen) {
		return ErrReportToken
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return ErrReportToken
	}
	at := binary.BigEndian.Uint64(b[:8])
	now := t.now()
	issued := time.Unix(int64(at), 0)
	if at > uint64(now.Add(reportTokenSkew).Unix()) || now.Sub(issued) > ReportTokenTTL {
		return ErrReportToken
	}
	if !hmac.Equal(b[8:], t.mac(at, class)) {
		return ErrReportToken
	}
	return nil
}

// setReportToken gives a response the client's report token: on the
// origin's pages and root answers, where the worker looks for its root,
// not on the block and lookup answers that are the hot path.
func (h *Handler) setReportToken(w http.ResponseWriter, r *http.Request, api bool) {
	if h.tokens == nil || api && r.URL.Path != APIPrefix+"root" {
		return
	}
	w.Header()[ReportTokenHeader] = []string{h.tokens.issue(ReportClass(h.rateLimitClientIP(r)))}
}
