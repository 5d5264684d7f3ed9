package h2

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Frames are appended to c.out by hand: the layout is fixed (RFC 9113
// §4.1) and writing into the shared buffer directly saves a copy per
// frame over http2.Framer, which needs a writer of its own.

func (c *conn) appendFrameHeader(length int, typ http2.FrameType, flags http2.Flags, id uint32) {
	c.out = append(c.out,
		byte(length>>16), byte(length>>8), byte(length),
		byte(typ), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func (c *conn) appendSettings() {
	settings := []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: c.maxStreams},
		{ID: http2.SettingInitialWindowSize, Val: streamRecvWindow},
		{ID: http2.SettingMaxHeaderListSize, Val: c.fr.MaxHeaderListSize},
		{ID: http2.SettingEnablePush, Val: 0},
	}
	c.appendFrameHeader(6*len(settings), http2.FrameSettings, 0, 0)
	for _, s := range settings {
		c.out = append(c.out, byte(s.ID>>8), byte(s.ID))
		c.out = appendUint32(c.out, s.Val)
	}
}

func (c *conn) appendWindowUpdate(id uint32, inc uint32) {
	c.appendFrameHeader(4, http2.FrameWindowUpdate, 0, id)
	c.out = appendUint32(c.out, inc&0x7fffffff)
}

func (c *conn) appendReset(id uint32, code http2.ErrCode) {
	c.appendFrameHeader(4, http2.FrameRSTStream, 0, id)
	c.out = appendUint32(c.out, uint32(code))
}

func (c *conn) appendGoAway(code http2.ErrCode) {
	c.appendFrameHeader(8, http2.FrameGoAway, 0, 0)
	c.out = appendUint32(c.out, c.maxStreamID)
	c.out = appendUint32(c.out, uint32(code))
}

// appendHeaderBlockLocked encodes a header block with encode and
// appends it as HEADERS plus CONTINUATION frames as the peer's frame
// size requires. Encoding and appending happen under one lock hold: the
// HPACK state is shared by all streams and the frames of one block must
// not interleave with others.
func (c *conn) appendHeaderBlockLocked(id uint32, end bool, encode func()) {
	c.hbuf.Reset()
	encode()
	block := c.hbuf.Bytes()
	typ := http2.FrameHeaders
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), c.peerFrame)
		var flags http2.Flags
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders // same bit as CONTINUATION's
		}
		if first && end {
			flags |= http2.FlagHeadersEndStream
		}
		c.appendFrameHeader(n, typ, flags, id)
		c.out = append(c.out, block[:n]...)
		block = block[n:]
		typ = http2.FrameContinuation
	}
}

// waitRoomLocked waits until out has room for more of st's frames. It
// reports false if st or the connection ended meanwhile.
func (c *conn) waitRoomLocked(st *stream) bool {
	for len(c.out) >= outSoftLimit {
		if st.err != nil {
			return false
		}
		c.waitLocked(st)
	}
	return st.err == nil
}

// waitLocked waits for a change to the connection's window or buffer,
// or to st.
func (c *conn) waitLocked(st *stream) {
	c.waiting[st] = struct{}{}
	c.kickLocked()
	st.cond.Wait()
	delete(c.waiting, st)
}

var errFlowStalled = errors.New("h2: client granted no flow-control window for too long")

// waitUntilLocked is waitLocked that also returns at deadline.
func (c *conn) waitUntilLocked(st *stream, deadline time.Time) {
	t := time.AfterFunc(time.Until(deadline), func() {
		c.mu.Lock()
		st.cond.Broadcast()
		c.mu.Unlock()
	})
	c.waitLocked(st)
	t.Stop()
}

// writeDataLocked appends p as DATA frames on st as flow control allows,
// waiting for window updates and buffer room as needed; with end, the
// last frame carries END_STREAM (an empty one if p is empty).
func (c *conn) writeDataLocked(st *stream, p []byte, end bool) error {
	var stalled time.Time // since when the window has been closed
	for {
		if st.err != nil {
			return st.err
		}
		if len(c.out) >= outSoftLimit {
			c.waitLocked(st)
			continue
		}
		n := int64(len(p))
		n = min(n, int64(c.peerFrame), st.sendWindow, c.sendWindow)
		if len(p) > 0 && n <= 0 {
			// The client has not opened its window. The socket's write
			// deadline does not see this: a client that opens streams
			// and never grants them window would hold their handlers
			// (and their buffers) forever. Give up on the stream after
			// as long as a socket write may take.
			if stalled.IsZero() {
				stalled = time.Now()
			} else if time.Since(stalled) >= c.writeLimit {
				c.appendReset(st.id, http2.ErrCodeCancel)
				st.abortLocked(errFlowStalled)
				c.closeStreamLocked(st)
				c.kickLocked()
				return errFlowStalled
			}
			c.waitUntilLocked(st, stalled.Add(c.writeLimit))
			continue
		}
		stalled = time.Time{}
		n = max(n, 0)
		last := end && n == int64(len(p))
		var flags http2.Flags
		if last {
			flags = http2.FlagDataEndStream
		}
		c.appendFrameHeader(int(n), http2.FrameData, flags, st.id)
		c.out = append(c.out, p[:n]...)
		st.sendWindow -= n
		c.sendWindow -= n
		p = p[n:]
		if last {
			st.sentEnd = true
			if st.remoteDone {
				c.closeStreamLocked(st)
			}
			return nil
		}
		if len(p) == 0 {
			return nil
		}
	}
}

// hpackField is a header field before encoding.
type hpackField struct{ name, value string }

func hf(name, value string) hpack.HeaderField {
	return hpack.HeaderField{Name: name, Value: value}
}

func hfStatus(code string) hpack.HeaderField { return hf(":status", code) }

var statusTexts = func() map[int]string {
	m := make(map[int]string)
	for code := 100; code < 600; code++ {
		if http.StatusText(code) != "" {
			m[code] = strconv.Itoa(code)
		}
	}
	return m
}()

func statusText(code int) string {
	if s, ok := statusTexts[code]; ok {
		return s
	}
	return strconv.Itoa(code)
}

// commonHeaders maps lower-case names to canonical keys and back, so the
// common ones cost no allocation either way.
var commonCanonical, commonLower = func() (map[string]string, map[string]string) {
	names := []string{
		"accept", "accept-charset", "accept-encoding", "accept-language", "accept-ranges",
		"access-control-allow-credentials", "access-control-allow-headers", "access-control-allow-methods",
		"access-control-allow-origin", "access-control-expose-headers", "access-control-max-age",
		"access-control-request-headers", "access-control-request-method", "age", "allow", "alt-svc",
		"authorization", "cache-control", "content-disposition", "content-encoding", "content-language",
		"content-length", "content-location", "content-range", "content-security-policy", "content-type",
		"cookie", "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
		"if-none-match", "if-range", "if-unmodified-since", "last-modified", "link", "location",
		"max-forwards", "origin", "pragma", "priority", "range", "referer", "refresh", "retry-after",
		"sec-fetch-dest", "sec-fetch-mode", "sec-fetch-site", "sec-fetch-user", "server", "set-cookie",
		"strict-transport-security", "timing-allow-origin", "trailer", "user-agent", "vary", "via",
		"www-authenticate", "x-content-type-options", "x-forwarded-for", "x-forwarded-proto",
		"cross-origin-resource-policy", "service-worker-allowed", "grits-root",
	}
	canon := make(map[string]string, len(names))
	lower := make(map[string]string, len(names))
	for _, n := range names {
		k := http.CanonicalHeaderKey(n)
		canon[n] = k
		lower[k] = n
	}
	return canon, lower
}()

// canonicalKey is the http.Header key of a lower-case wire name.
func canonicalKey(name string) string {
	if k, ok := commonCanonical[name]; ok {
		return k
	}
	return http.CanonicalHeaderKey(name)
}

// lowerKey is the wire name of an http.Header key.
func lowerKey(k string) string {
	if n, ok := commonLower[k]; ok {
		return n
	}
	return strings.ToLower(k)
}

// httpDate is the Date header value, formatted once a second.
func httpDate() string {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text string
}

var cachedDate atomic.Pointer[dateText]
