package h2

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// conn is one HTTP/2 connection. The read loop (serve) parses frames and
// updates state; handler goroutines append frames to out; flushLoop
// writes out to the socket. mu guards everything below it, including the
// fields of every stream.
type conn struct {
	srv        *Server
	nc         net.Conn
	tlsState   *tls.ConnectionState
	remoteAddr string
	log        *slog.Logger
	baseCtx    context.Context
	handler    http.Handler
	maxStreams uint32
	idleAfter  time.Duration
	writeLimit time.Duration

	// Read loop only.
	br          *bufio.Reader
	fr          *http2.Framer
	sawSettings bool

	wake chan struct{} // nudges flushLoop; capacity 1
	done chan struct{} // closed with the connection
	// drained tells fail that the writer sent everything queued.
	drained chan struct{}

	mu          sync.Mutex
	maxStreamID uint32 // highest stream the client opened (GOAWAY names it)
	out         []byte // frames waiting for flushLoop
	spare       []byte // the other buffer, while flushLoop is not writing it
	hbuf        bytes.Buffer
	henc        *hpack.Encoder
	streams     map[uint32]*stream   // open or half-closed streams
	waiting     map[*stream]struct{} // blocked on the connection window or on out
	handlers    int                  // running handler goroutines
	sendWindow  int64                // what we may still send on the connection
	peerWindow  int64                // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame   int                  // the client's SETTINGS_MAX_FRAME_SIZE
	recvWindow  int64                // what the client may still send on the connection
	recvCredit  int64                // consumed connection bytes not yet returned
	started     bool                 // our SETTINGS are queued: other frames may follow
	goAwayEarly bool                 // shutdown began before that
	goingAway   bool                 // GOAWAY sent: no new streams
	closeAfter  bool                 // close once out is written
	lingering   bool                 // fail sent GOAWAY and waits for it to be written
	closed      bool
	idleSince   time.Time
	idleTimer   *time.Timer
}

func newConn(s *Server, nc net.Conn) *conn {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	base := s.BaseContext
	if base == nil {
		base = context.Background()
	}
	base = context.WithValue(base, http.LocalAddrContextKey, nc.LocalAddr())
	c := &conn{
		srv:        s,
		nc:         nc,
		remoteAddr: nc.RemoteAddr().String(),
		log:        log,
		baseCtx:    base,
		handler:    s.Handler,
		maxStreams: s.maxStreams(),
		idleAfter:  orDefault(s.IdleTimeout, defaultIdleTimeout),
		writeLimit: orDefault(s.WriteTimeout, defaultWriteTimeout),
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		drained:    make(chan struct{}, 1),
		streams:    make(map[uint32]*stream),
		waiting:    make(map[*stream]struct{}),
		sendWindow: protocolWindow,
		peerWindow: protocolWindow,
		peerFrame:  16384,
		recvWindow: connRecvWindow,
	}
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		c.tlsState = &st
	}
	c.henc = hpack.NewEncoder(&c.hbuf)
	c.br = bufio.NewReaderSize(nc, 32<<10)
	c.fr = http2.NewFramer(io.Discard, c.br)
	c.fr.SetMaxReadFrameSize(maxFrameSize)
	c.fr.MaxHeaderListSize = s.maxHeaderBytes()
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	return c
}

// serve runs the read loop until the connection ends.
func (c *conn) serve() {
	go c.flushLoop()
	defer c.close(nil)

	c.nc.SetReadDeadline(time.Now().Add(orDefault(c.srv.PrefaceTimeout, defaultPrefaceTimeout)))
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(c.br, preface[:]); err != nil || string(preface[:]) != http2.ClientPreface {
		c.log.Debug("h2: no client preface", "remote", c.remoteAddr, "err", err)
		return
	}
	c.mu.Lock()
	c.appendSettings()
	c.appendWindowUpdate(0, connRecvWindow-protocolWindow)
	c.started = true
	if c.goAwayEarly {
		c.goingAway = true
		c.appendGoAway(http2.ErrCodeNo)
	}
	c.becameIdleLocked()
	c.mu.Unlock()
	c.kick()

	for {
		f, err := c.fr.ReadFrame()
		if err == nil {
			err = c.process(f)
		}
		if err == nil {
			continue
		}
		var se http2.StreamError
		var ce http2.ConnectionError
		switch {
		case errors.As(err, &se):
			c.streamError(se)
			continue
		case errors.As(err, &ce):
			c.fail(http2.ErrCode(ce), err)
		case errors.Is(err, http2.ErrFrameTooLarge):
			c.fail(http2.ErrCodeFrameSize, err)
		default:
			if !isClosedError(err) {
				c.log.Debug("h2: read", "remote", c.remoteAddr, "err", err)
			}
		}
		return
	}
}

func isClosedError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// process handles one frame. A StreamError it returns resets that
// stream; any other error ends the connection.
func (c *conn) process(f http2.Frame) error {
	if !c.sawSettings {
		sf, ok := f.(*http2.SettingsFrame)
		if !ok || sf.IsAck() {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		c.sawSettings = true
		c.nc.SetReadDeadline(time.Time{})
	}
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.processSettings(f)
	case *http2.MetaHeadersFrame:
		return c.processHeaders(f)
	case *http2.DataFrame:
		return c.processData(f)
	case *http2.WindowUpdateFrame:
		return c.processWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.mu.Lock()
			c.appendFrameHeader(8, http2.FramePing, http2.FlagPingAck, 0)
			c.out = append(c.out, f.Data[:]...)
			err := c.controlLimitLocked()
			c.mu.Unlock()
			c.kick()
			return err
		}
	case *http2.RSTStreamFrame:
		return c.processReset(f)
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
		}
	case *http2.GoAwayFrame:
		// The client opens no more streams; finish the ones it has.
		c.startGoAway()
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	// Unknown frame types are ignored (RFC 9113 §5.5).
	return nil
}

func (c *conn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	// Repeated settings are legal and applied in order (RFC 9113
	// §6.5.3); the count is bounded so one frame is bounded work.
	if f.NumSettings() > 100 {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - c.peerWindow
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			c.peerWindow = int64(s.Val)
		case http2.SettingMaxFrameSize:
			c.peerFrame = int(s.Val)
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.appendFrameHeader(0, http2.FrameSettings, http2.FlagSettingsAck, 0)
	for _, st := range c.streams {
		st.cond.Broadcast()
	}
	defer c.kick()
	return c.controlLimitLocked()
}

const maxWindow = 1<<31 - 1

func (c *conn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		c.sendWindow += inc
		if c.sendWindow > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.wakeWaitingLocked()
		return nil
	}
	st := c.streams[f.StreamID]
	if st == nil {
		if f.StreamID > c.maxStreamID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil // closed: updates may cross our END_STREAM or reset
	}
	st.sendWindow += inc
	if st.sendWindow > maxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	st.cond.Broadcast()
	return nil
}

func (c *conn) processReset(f *http2.RSTStreamFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID > c.maxStreamID {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if st := c.streams[f.StreamID]; st != nil {
		st.abortLocked(fmt.Errorf("h2: stream reset by client: %v", f.ErrCode))
		c.closeStreamLocked(st)
	}
	return nil
}

func (c *conn) processHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.mu.Lock()
	st := c.streams[id]
	if st != nil {
		defer c.mu.Unlock()
		return c.processTrailersLocked(st, f)
	}
	if id <= c.maxStreamID {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	}
	c.maxStreamID = id
	if f.HasPriority() && f.Priority.StreamDep == id {
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if c.goingAway {
		// Streams after our GOAWAY are ignored (RFC 9113 §6.8).
		c.mu.Unlock()
		return nil
	}
	if uint32(len(c.streams)) >= c.maxStreams {
		c.mu.Unlock()
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	if c.handlers >= 2*int(c.maxStreams) {
		c.mu.Unlock()
		c.log.Warn("h2: client resets streams faster than their handlers end; closing", "remote", c.remoteAddr)
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	c.mu.Unlock()

	st = &stream{c: c, id: id, declared: -1}
	st.cond.L = &c.mu
	req, err := c.newRequest(st, f)
	if err != nil {
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: err}
	}
	handler := c.handler
	if f.Truncated {
		handler = http.HandlerFunc(headersTooLarge)
	}
	// Room for a dozen response headers: a map sized for 8 that grows
	// costs more than one allocated at its final size.
	rw := &responseWriter{st: st, c: c, req: req, header: make(http.Header, 16), declared: -1, isHead: req.Method == http.MethodHead}

	c.mu.Lock()
	st.sendWindow = c.peerWindow
	st.recvWindow = streamRecvWindow
	st.remoteDone = f.StreamEnded()
	c.streams[id] = st
	c.handlers++
	c.idleSince = time.Time{}
	c.mu.Unlock()
	c.srv.goHandler(func() { c.runHandler(st, rw, req, handler) })
	return nil
}

func headersTooLarge(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "request headers too large", http.StatusRequestHeaderFieldsTooLarge)
}

// processTrailersLocked handles a second HEADERS frame on st: the
// request's trailers, which must end the stream.
func (c *conn) processTrailersLocked(st *stream, f *http2.MetaHeadersFrame) error {
	if st.remoteDone {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeStreamClosed}
	}
	if !f.StreamEnded() {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if len(f.PseudoFields()) > 0 {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	if st.declared >= 0 && st.received != st.declared {
		return http2.StreamError{StreamID: st.id, Code: http2.ErrCodeProtocol}
	}
	if st.trailer != nil {
		for _, hf := range f.RegularFields() {
			k := canonicalKey(hf.Name)
			if _, ok := st.trailer[k]; ok {
				st.trailer[k] = append(st.trailer[k], hf.Value)
			}
		}
	}
	c.endBodyLocked(st)
	return nil
}

func (c *conn) processData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length) // padding counts against flow control too
	data := f.Data()
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.recvWindow {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	c.recvWindow -= n
	st := c.streams[id]
	if st == nil || st.remoteDone {
		if id > c.maxStreamID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		// Data crossing our reset or END_STREAM: give the connection
		// its window back.
		c.creditConnLocked(n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if n > st.recvWindow {
		c.creditConnLocked(n)
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	st.recvWindow -= n
	if pad := n - int64(len(data)); pad > 0 {
		c.creditConnLocked(pad)
		c.creditStreamLocked(st, pad)
	}
	st.received += int64(len(data))
	if st.declared >= 0 && st.received > st.declared {
		c.creditConnLocked(int64(len(data)))
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if st.bodyClosed {
		c.creditConnLocked(int64(len(data)))
	} else if len(data) > 0 {
		st.body.Write(data)
		st.cond.Broadcast()
	}
	if f.StreamEnded() {
		if st.declared >= 0 && st.received != st.declared {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		c.endBodyLocked(st)
	}
	return nil
}

// endBodyLocked records the client's END_STREAM on st.
func (c *conn) endBodyLocked(st *stream) {
	st.remoteDone = true
	if st.bodyErr == nil {
		st.bodyErr = io.EOF
	}
	st.cond.Broadcast()
	if st.sentEnd {
		c.closeStreamLocked(st)
	}
}

// streamError resets the stream a read or processing error names.
func (c *conn) streamError(se http2.StreamError) {
	c.log.Debug("h2: stream error", "id", se.StreamID, "code", se.Code, "cause", se.Cause)
	c.mu.Lock()
	if se.StreamID > c.maxStreamID {
		// A HEADERS frame the framer rejected still opened (and with
		// this reset closes) its stream.
		c.maxStreamID = se.StreamID
	}
	if st := c.streams[se.StreamID]; st != nil {
		st.abortLocked(fmt.Errorf("h2: stream error: %v", se.Code))
		c.closeStreamLocked(st)
	}
	c.appendReset(se.StreamID, se.Code)
	err := c.controlLimitLocked()
	c.mu.Unlock()
	c.kick()
	if err != nil {
		c.fail(http2.ErrCodeEnhanceYourCalm, err)
	}
}

// closeStreamLocked forgets st: both sides are done with it, or it was
// reset. Its handler may still be running.
func (c *conn) closeStreamLocked(st *stream) {
	if c.streams[st.id] != st {
		return
	}
	delete(c.streams, st.id)
	delete(c.waiting, st)
	// The client can no longer send on it: whatever it sent and the
	// handler did not read goes back to the connection window.
	if n := st.body.Len(); n > 0 {
		st.body.Reset()
		c.creditConnLocked(int64(n))
	}
	st.bodyClosed = true
	c.becameIdleLocked()
}

// becameIdleLocked arms the idle timer once nothing is left running, and
// closes a connection that is going away.
func (c *conn) becameIdleLocked() {
	if len(c.streams) > 0 || c.handlers > 0 || c.closed {
		return
	}
	if c.goingAway {
		c.closeAfter = true
		c.kickLocked()
		return
	}
	c.idleSince = time.Now()
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(c.idleAfter, c.onIdle)
	} else {
		c.idleTimer.Reset(c.idleAfter)
	}
}

func (c *conn) onIdle() {
	c.mu.Lock()
	idle := !c.idleSince.IsZero() && time.Since(c.idleSince) >= c.idleAfter-time.Millisecond
	c.mu.Unlock()
	if idle {
		c.startGoAway()
	}
}

// startGoAway sends GOAWAY(NO_ERROR): the streams opened so far finish,
// then the connection closes.
func (c *conn) startGoAway() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goingAway || c.closed {
		return
	}
	if !c.started {
		// GOAWAY may not precede our SETTINGS: it follows them.
		c.goAwayEarly = true
		return
	}
	c.goingAway = true
	c.appendGoAway(http2.ErrCodeNo)
	c.kickLocked()
	c.becameIdleLocked()
}

// fail sends GOAWAY with code; the read loop then returns and the
// connection closes. Before that, once the writer has sent the GOAWAY,
// what the client still sends is read and dropped for up to closeGrace:
// closing a socket with unread input makes the kernel send a reset,
// which can destroy the GOAWAY before the client has read it.
func (c *conn) fail(code http2.ErrCode, err error) {
	c.log.Debug("h2: connection error", "remote", c.remoteAddr, "code", code, "err", err)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	c.appendGoAway(code)
	c.lingering = true
	c.kickLocked()
	c.mu.Unlock()
	deadline := time.Now().Add(closeGrace)
	select {
	case <-c.drained:
	case <-c.done:
		return
	case <-time.After(closeGrace):
		return
	}
	c.nc.SetReadDeadline(deadline)
	io.Copy(io.Discard, c.br)
}

// close ends the connection: every stream is aborted and the socket
// closed. err, if any, is what handlers' writes report.
func (c *conn) close(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if err == nil {
		err = errConnClosed
	}
	for _, st := range c.streams {
		st.abortLocked(err)
	}
	c.wakeWaitingLocked()
	if c.idleTimer != nil {
		c.idleTimer.Stop()
	}
	close(c.done)
	c.mu.Unlock()
	c.nc.Close()
}

var errConnClosed = errors.New("h2: connection closed")

// kick wakes flushLoop.
func (c *conn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *conn) kickLocked() { c.kick() }

// wakeWaitingLocked wakes the handlers waiting for the connection window
// or for room in out.
func (c *conn) wakeWaitingLocked() {
	for st := range c.waiting {
		st.cond.Broadcast()
	}
}

// controlLimitLocked fails a connection whose peer makes the read loop
// queue frames faster than it reads them.
func (c *conn) controlLimitLocked() error {
	if len(c.out) > outHardLimit {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	return nil
}

// flushLoop writes whatever frames have accumulated, one write for all
// of them, until the connection closes.
func (c *conn) flushLoop() {
	cork := corkOf(c.nc)
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.mu.Lock()
		if len(c.out) == 0 {
			closeNow := c.closeAfter
			c.mu.Unlock()
			if closeNow {
				c.close(nil)
				return
			}
			continue
		}
		buf := c.out
		c.out, c.spare = c.spare[:0], nil
		c.wakeWaitingLocked()
		c.mu.Unlock()

		c.nc.SetWriteDeadline(time.Now().Add(c.writeLimit))
		var err error
		if cork != nil {
			cork.cork()
			_, err = c.nc.Write(buf)
			err = errors.Join(err, cork.uncork())
		} else {
			_, err = c.nc.Write(buf)
		}

		c.nc.SetWriteDeadline(time.Time{}) // TLS may write on its own (key updates)
		c.mu.Lock()
		if cap(buf) <= outKeep {
			c.spare = buf[:0]
		}
		more := len(c.out) > 0 || c.closeAfter
		drained := c.lingering && len(c.out) == 0
		c.mu.Unlock()
		if err != nil {
			if !isClosedError(err) {
				c.log.Debug("h2: write", "remote", c.remoteAddr, "err", err)
			}
			c.close(fmt.Errorf("h2: write: %w", err))
			return
		}
		if drained {
			select {
			case c.drained <- struct{}{}:
			default:
			}
		}
		if more {
			c.kick()
		}
	}
}
