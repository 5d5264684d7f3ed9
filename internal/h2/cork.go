package h2

import (
	"crypto/tls"
	"net"
	"sync"
)

// CorkConn is a net.Conn whose writes can be gathered. crypto/tls writes
// every record (at most 16 KiB) with a system call of its own; the
// connection's writer corks the socket around each batch of frames, so a
// batch costs one write however many records it makes. Writes from other
// goroutines meanwhile (TLS key updates, alerts) join the batch in order.
type CorkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

// corkKeep is the largest gathering buffer a connection keeps between
// batches.
const corkKeep = 1 << 20

// CorkListener wraps every accepted connection in a CorkConn.
func CorkListener(ln net.Listener) net.Listener { return corkListener{ln} }

type corkListener struct{ net.Listener }

func (l corkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &CorkConn{Conn: c}, nil
}

func (c *CorkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *CorkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork sends what was gathered in one write.
func (c *CorkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > corkKeep {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// corkOf finds the CorkConn under nc, if any.
func corkOf(nc net.Conn) *CorkConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	cc, _ := nc.(*CorkConn)
	return cc
}
