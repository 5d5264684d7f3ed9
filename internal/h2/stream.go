package h2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// stream is one request and its response. Its fields are guarded by
// c.mu; cond waits on c.mu.
type stream struct {
	c      *conn
	id     uint32
	cond   sync.Cond
	cancel context.CancelFunc

	sendWindow int64
	recvWindow int64 // what the client may still send on this stream
	recvCredit int64 // read body bytes not yet returned to the client

	declared   int64 // request Content-Length, or -1
	received   int64
	body       bytes.Buffer // received, not yet read by the handler
	bodyErr    error        // io.EOF after END_STREAM, or why the body ended
	bodyClosed bool         // the handler closed the body or the stream closed
	trailer    http.Header  // declared request trailers
	continued  bool         // "100 Continue" sent or not needed

	remoteDone bool  // END_STREAM received
	sentEnd    bool  // END_STREAM sent
	err        error // set once the stream is reset or the connection closed

	// readTimer ends body reads at the handler's read deadline
	// (http.ResponseController.SetReadDeadline); nil when none is set.
	readTimer *time.Timer
}

// errReadDeadline is what body reads return once the handler's read
// deadline has passed, as net/http's servers do.
var errReadDeadline = fmt.Errorf("h2: request body: %w", os.ErrDeadlineExceeded)

// setReadDeadlineLocked arms (or, for the zero time, clears) st's read
// deadline. Once it passes, the body reads fail and the data the client
// still sends is dropped with its flow-control credit returned, so a
// client dripping a body holds neither the handler nor the window.
func (c *conn) setReadDeadlineLocked(st *stream, t time.Time) {
	if st.readTimer != nil {
		st.readTimer.Stop()
		st.readTimer = nil
	}
	if t.IsZero() || st.remoteDone || st.bodyClosed {
		return
	}
	d := time.Until(t)
	if d <= 0 {
		c.readDeadlinePassedLocked(st)
		return
	}
	var timer *time.Timer
	timer = time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if st.readTimer == timer {
			st.readTimer = nil
			c.readDeadlinePassedLocked(st)
		}
	})
	st.readTimer = timer
}

func (c *conn) readDeadlinePassedLocked(st *stream) {
	if st.remoteDone || st.bodyErr != nil {
		return
	}
	st.bodyErr = errReadDeadline
	st.bodyClosed = true
	if n := st.body.Len(); n > 0 {
		st.body.Reset()
		c.creditConnLocked(int64(n))
	}
	st.cond.Broadcast()
}

// abortLocked ends st for reason: writes fail, body reads fail, the
// request context is canceled.
func (st *stream) abortLocked(reason error) {
	if st.err == nil {
		st.err = reason
	}
	if st.bodyErr == nil || st.bodyErr == io.EOF && !st.remoteDone {
		st.bodyErr = reason
	}
	if st.cancel != nil {
		st.cancel()
	}
	st.cond.Broadcast()
}

// creditConnLocked returns n consumed bytes to the connection window,
// sending WINDOW_UPDATE once half the window is used.
func (c *conn) creditConnLocked(n int64) {
	c.recvCredit += n
	if c.recvCredit >= connRecvWindow/2 {
		c.appendWindowUpdate(0, uint32(c.recvCredit))
		c.recvWindow += c.recvCredit
		c.recvCredit = 0
		c.kickLocked()
	}
}

func (c *conn) creditStreamLocked(st *stream, n int64) {
	if st.remoteDone {
		return
	}
	st.recvCredit += n
	if st.recvCredit >= streamRecvWindow/2 {
		c.appendWindowUpdate(st.id, uint32(st.recvCredit))
		st.recvWindow += st.recvCredit
		st.recvCredit = 0
		c.kickLocked()
	}
}

// requestBody is a request's Body: what the client sends on the stream.
type requestBody struct {
	st           *stream
	needContinue bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	st := b.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.needContinue && !st.continued {
		st.continued = true
		if st.err == nil && !st.remoteDone {
			c.appendHeaderBlockLocked(st.id, false, func() {
				c.henc.WriteField(hfStatus("100"))
			})
			c.kickLocked()
		}
	}
	for st.body.Len() == 0 {
		if st.bodyErr != nil {
			return 0, st.bodyErr
		}
		if st.bodyClosed {
			return 0, http.ErrBodyReadAfterClose
		}
		st.cond.Wait()
	}
	n, _ := st.body.Read(p)
	c.creditConnLocked(int64(n))
	c.creditStreamLocked(st, int64(n))
	return n, nil
}

func (b *requestBody) Close() error {
	st := b.st
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !st.bodyClosed {
		st.bodyClosed = true
		if n := st.body.Len(); n > 0 {
			st.body.Reset()
			c.creditConnLocked(int64(n))
		}
	}
	if st.bodyErr == nil {
		st.bodyErr = http.ErrBodyReadAfterClose
	}
	st.cond.Broadcast()
	return nil
}

// newRequest builds the request a HEADERS frame opens.
func (c *conn) newRequest(st *stream, f *http2.MetaHeadersFrame) (*http.Request, error) {
	method := f.PseudoValue("method")
	path := f.PseudoValue("path")
	scheme := f.PseudoValue("scheme")
	authority := f.PseudoValue("authority")
	if f.PseudoValue("status") != "" || f.PseudoValue("protocol") != "" {
		return nil, errors.New("response or :protocol pseudo-header in request")
	}
	isConnect := method == http.MethodConnect
	if isConnect {
		if path != "" || scheme != "" || authority == "" {
			return nil, errors.New("malformed CONNECT")
		}
	} else if method == "" || path == "" || scheme == "" {
		return nil, errors.New("missing :method, :path or :scheme")
	}
	if !httpguts.ValidHostHeader(authority) {
		return nil, errors.New("invalid :authority")
	}

	fields := f.RegularFields()
	header := make(http.Header, len(fields))
	var cookies []string
	for _, hf := range fields {
		switch hf.Name {
		case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
			return nil, fmt.Errorf("connection-specific header %q", hf.Name)
		case "te":
			if hf.Value != "trailers" {
				return nil, errors.New("te header other than trailers")
			}
		case "cookie":
			cookies = append(cookies, hf.Value)
			continue
		}
		k := canonicalKey(hf.Name)
		header[k] = append(header[k], hf.Value)
	}
	if len(cookies) > 0 {
		header["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	host := authority
	if host == "" {
		host = header.Get("Host")
	}

	st.declared = -1
	if vv := header["Content-Length"]; len(vv) > 0 {
		for _, v := range vv[1:] {
			if v != vv[0] {
				return nil, errors.New("conflicting content-length")
			}
		}
		n, err := strconv.ParseUint(vv[0], 10, 63)
		if err != nil {
			return nil, errors.New("invalid content-length")
		}
		st.declared = int64(n)
	}

	var u *url.URL
	requestURI := path
	if isConnect {
		u = &url.URL{Host: authority}
		requestURI = authority
	} else {
		var err error
		if u, err = url.ParseRequestURI(path); err != nil {
			return nil, fmt.Errorf("invalid :path: %w", err)
		}
	}

	var trailer http.Header
	for _, v := range header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = textproto.TrimString(k)
			if k == "" || !httpguts.ValidTrailerHeader(k) {
				continue
			}
			if trailer == nil {
				trailer = make(http.Header)
			}
			trailer[canonicalKey(strings.ToLower(k))] = nil
		}
	}
	st.trailer = trailer

	var body io.ReadCloser = http.NoBody
	length := int64(0)
	st.continued = true
	if f.StreamEnded() {
		if st.declared > 0 {
			return nil, errors.New("content-length on a request without body")
		}
		st.bodyErr = io.EOF
	} else {
		rb := &requestBody{st: st}
		if strings.EqualFold(header.Get("Expect"), "100-continue") {
			rb.needContinue = true
			st.continued = false
		}
		body = rb
		length = st.declared
	}

	ctx, cancel := context.WithCancel(c.baseCtx)
	st.cancel = cancel
	req := &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        header,
		Body:          body,
		ContentLength: length,
		Host:          host,
		RemoteAddr:    c.remoteAddr,
		RequestURI:    requestURI,
		TLS:           c.tlsState,
		Trailer:       trailer,
	}
	return req.WithContext(ctx), nil
}

// runHandler serves one request and ends its stream.
func (c *conn) runHandler(st *stream, rw *responseWriter, req *http.Request, h http.Handler) {
	defer func() {
		if e := recover(); e != nil {
			if e != http.ErrAbortHandler {
				buf := make([]byte, 16<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.log.Error("h2: handler panicked", "remote", c.remoteAddr, "url", req.URL.String(), "panic", e, "stack", string(buf))
			}
			c.mu.Lock()
			if st.err == nil {
				c.appendReset(st.id, http2.ErrCodeInternal)
				c.kickLocked()
			}
			st.abortLocked(errors.New("h2: handler panicked"))
			c.closeStreamLocked(st)
			c.handlerDoneLocked(st)
			c.mu.Unlock()
			rw.release()
		}
	}()
	h.ServeHTTP(rw, req)
	rw.finish()
}

// handlerDoneLocked accounts for st's handler having returned.
func (c *conn) handlerDoneLocked(st *stream) {
	c.handlers--
	if st.readTimer != nil {
		st.readTimer.Stop()
		st.readTimer = nil
	}
	st.cancel()
	c.becameIdleLocked()
}

// responseWriter is the http.ResponseWriter of one stream. Only the
// handler's goroutine uses it.
type responseWriter struct {
	st       *stream
	c        *conn
	req      *http.Request
	header   http.Header
	status   int
	wrote    bool // final status chosen
	sent     bool // HEADERS sent
	isHead   bool
	buf      []byte
	written  int64
	declared int64 // Content-Length the handler set, or -1
	trailers []string
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, respBufSize); return &b }}

func (rw *responseWriter) Header() http.Header { return rw.header }

func (rw *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if rw.wrote {
		return
	}
	if code < 200 {
		if code != http.StatusSwitchingProtocols {
			rw.informational(code)
		}
		return
	}
	rw.wrote = true
	rw.status = code
	if cl := rw.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			rw.declared = n
		} else {
			rw.header.Del("Content-Length")
		}
	}
}

// informational sends a 1xx response (103 Early Hints, say).
func (rw *responseWriter) informational(code int) {
	c := rw.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if rw.st.err != nil || !c.waitRoomLocked(rw.st) {
		return
	}
	c.appendHeaderBlockLocked(rw.st.id, false, func() {
		c.henc.WriteField(hfStatus(strconv.Itoa(code)))
		c.encodeHeaderLocked(rw.header, nil)
	})
	c.kickLocked()
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wrote {
		rw.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(rw.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if rw.declared >= 0 && rw.written+int64(len(p)) > rw.declared {
		return 0, http.ErrContentLength
	}
	rw.written += int64(len(p))
	if rw.isHead {
		return len(p), nil
	}
	if len(rw.buf)+len(p) <= respBufSize {
		if rw.buf == nil {
			rw.buf = *bufPool.Get().(*[]byte)
		}
		rw.buf = append(rw.buf, p...)
		return len(p), nil
	}
	if err := rw.send(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (rw *responseWriter) WriteString(s string) (int, error) {
	if len(rw.buf)+len(s) <= respBufSize && rw.wrote && bodyAllowed(rw.status) && !rw.isHead &&
		(rw.declared < 0 || rw.written+int64(len(s)) <= rw.declared) {
		if rw.buf == nil {
			rw.buf = *bufPool.Get().(*[]byte)
		}
		rw.buf = append(rw.buf, s...)
		rw.written += int64(len(s))
		return len(s), nil
	}
	return rw.Write([]byte(s))
}

// SetReadDeadline bounds the handler's reads of the request body
// (http.ResponseController): from t on they fail with an error matching
// os.ErrDeadlineExceeded. The zero time clears the deadline.
func (rw *responseWriter) SetReadDeadline(t time.Time) error {
	rw.c.mu.Lock()
	defer rw.c.mu.Unlock()
	rw.c.setReadDeadlineLocked(rw.st, t)
	return nil
}

// Flush sends the headers and whatever body is buffered.
func (rw *responseWriter) Flush() { rw.FlushError() }

// FlushError is Flush for http.ResponseController.
func (rw *responseWriter) FlushError() error {
	if !rw.wrote {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.send(nil, false)
}

// send sends the headers if not yet sent, the buffered body and p, and
// with end, the end of the stream (with trailers if any).
func (rw *responseWriter) send(p []byte, end bool) error {
	c, st := rw.c, rw.st
	c.mu.Lock()
	defer c.mu.Unlock()
	if !rw.sent {
		if st.err != nil || !c.waitRoomLocked(st) {
			return st.err
		}
		rw.sent = true
		if end && !rw.isHead {
			rw.trailers = rw.declaredTrailers()
		}
		headersEnd := end && (rw.isHead || len(rw.buf) == 0 && len(p) == 0 && len(rw.trailers) == 0)
		c.appendHeaderBlockLocked(st.id, headersEnd, func() { rw.encodeResponseHeaderLocked(end) })
		if headersEnd {
			st.sentEnd = true
		}
	} else if end && !rw.isHead {
		rw.trailers = rw.declaredTrailers()
	}
	if st.sentEnd {
		c.kickLocked()
		return nil
	}
	withTrailers := end && len(rw.trailers) > 0
	if len(rw.buf) > 0 {
		last := end && len(p) == 0 && !withTrailers
		if err := c.writeDataLocked(st, rw.buf, last); err != nil {
			return err
		}
		rw.buf = rw.buf[:0]
	}
	if len(p) > 0 || (end && !st.sentEnd && !withTrailers) {
		if err := c.writeDataLocked(st, p, end && !withTrailers); err != nil {
			return err
		}
	}
	if withTrailers && !st.sentEnd {
		if st.err != nil || !c.waitRoomLocked(st) {
			return st.err
		}
		c.appendHeaderBlockLocked(st.id, true, func() { rw.encodeTrailersLocked() })
		st.sentEnd = true
	}
	c.kickLocked()
	return nil
}

// finish ends the response after the handler returned.
func (rw *responseWriter) finish() {
	if !rw.wrote {
		rw.WriteHeader(http.StatusOK)
	}
	err := rw.send(nil, true)
	c, st := rw.c, rw.st
	c.mu.Lock()
	if err != nil || st.err != nil {
		if st.err == nil {
			c.appendReset(st.id, http2.ErrCodeInternal)
			st.abortLocked(err)
		}
		c.closeStreamLocked(st)
	} else if st.remoteDone {
		c.closeStreamLocked(st)
	} else {
		// The response is complete before the request: ask the client
		// to stop sending (RFC 9113 §8.1).
		c.appendReset(st.id, http2.ErrCodeNo)
		st.abortLocked(errors.New("h2: response complete"))
		c.closeStreamLocked(st)
	}
	c.handlerDoneLocked(st)
	c.kickLocked()
	c.mu.Unlock()
	rw.release()
}

func (rw *responseWriter) release() {
	if rw.buf != nil && cap(rw.buf) == respBufSize {
		b := rw.buf[:0]
		rw.buf = nil
		bufPool.Put(&b)
	}
}

// declaredTrailers lists the trailers the handler has values for: keys
// it announced in a Trailer header, and keys with http.TrailerPrefix.
func (rw *responseWriter) declaredTrailers() []string {
	var keys []string
	for _, v := range rw.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = http.CanonicalHeaderKey(textproto.TrimString(k))
			if _, ok := rw.header[k]; ok && httpguts.ValidTrailerHeader(k) {
				keys = append(keys, k)
			}
		}
	}
	for k := range rw.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			keys = append(keys, k)
		}
	}
	return keys
}

// encodeResponseHeaderLocked encodes the status and headers; end says
// the whole body is in rw.buf, so its length and type are known.
func (rw *responseWriter) encodeResponseHeaderLocked(end bool) {
	c := rw.c
	c.henc.WriteField(hfStatus(statusText(rw.status)))
	h := rw.header
	var extra [3]hpackField
	n := 0
	if _, ok := h["Date"]; !ok {
		extra[n] = hpackField{"date", httpDate()}
		n++
	}
	if bodyAllowed(rw.status) && !rw.isHead {
		_, hasType := h["Content-Type"]
		if !hasType && h.Get("Content-Encoding") == "" && len(rw.buf) > 0 {
			extra[n] = hpackField{"content-type", http.DetectContentType(rw.buf)}
			n++
		}
		if end && rw.declared < 0 && h.Get("Content-Length") == "" {
			extra[n] = hpackField{"content-length", strconv.Itoa(len(rw.buf))}
			n++
		}
	}
	c.encodeHeaderLocked(h, extra[:n])
}

func (rw *responseWriter) encodeTrailersLocked() {
	c := rw.c
	for _, k := range rw.trailers {
		name := strings.TrimPrefix(k, http.TrailerPrefix)
		for _, v := range rw.header[k] {
			if httpguts.ValidHeaderFieldValue(v) {
				c.henc.WriteField(hf(lowerKey(name), v))
			}
		}
	}
}

// encodeHeaderLocked encodes h (without hop-by-hop fields, trailers and
// invalid fields, as net/http does) and extra.
func (c *conn) encodeHeaderLocked(h http.Header, extra []hpackField) {
	for k, vv := range h {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Trailer":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		name := lowerKey(k)
		// Values that differ from response to response would only churn
		// the HPACK table (and cost a table search each); cookies are
		// never indexed so they cannot be probed (RFC 7541 §7.1.3).
		unique := false
		switch name {
		case "etag", "content-length", "content-range", "last-modified", "set-cookie", "location":
			unique = true
		}
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				c.henc.WriteField(hpack.HeaderField{Name: name, Value: v, Sensitive: unique})
			}
		}
	}
	for _, e := range extra {
		c.henc.WriteField(hpack.HeaderField{Name: e.name, Value: e.value, Sensitive: e.name == "content-length"})
	}
}
