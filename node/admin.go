package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// The admin socket: DATA/gritsd.sock, an HTTP server on a unix socket
// that only who can read the data directory can reach. Commands in other
// processes (status, import, ban) talk to the running daemon through it.

type adminServer struct {
	mux *http.ServeMux
	srv *http.Server
}

// HandleAdmin adds a route to the admin socket (patterns as in
// http.ServeMux, e.g. "GET /v1/thing"). Routes may be added at any time.
func (n *Node) HandleAdmin(pattern string, h http.HandlerFunc) {
	n.admin.mux.HandleFunc(pattern, h)
}

func (n *Node) serveAdmin() (*adminServer, error) {
	path := n.dir.FilePath(SockFile)
	// A stale socket from a killed daemon: remove it if nobody answers.
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("another gritsd serve is running on %s (%s answers)", n.dir.Path, path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	a := &adminServer{mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(n.Status())
	})
	if n.origin {
		a.mux.HandleFunc("POST /v1/roots/reread", func(w http.ResponseWriter, r *http.Request) {
			if err := n.RereadRoots(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
	}
	a.srv = &http.Server{Handler: a.mux, ReadHeaderTimeout: 5 * time.Second}
	n.bg.Go(func() { a.srv.Serve(ln) })
	n.closers = append(n.closers, func() error {
		err := a.srv.Close()
		os.Remove(path)
		return err
	})
	return a, nil
}

// Admin is a client of a running daemon's admin socket.
type Admin struct {
	path string
	hc   *http.Client
}

// DialAdmin returns a client for the daemon serving the data directory
// at dir (it connects on each call).
func DialAdmin(dir string, timeout time.Duration) *Admin {
	path := filepath.Join(dir, SockFile)
	return &Admin{path: path, hc: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", path)
	}}, Timeout: timeout}}
}

// Do sends a request to the daemon; the URL's host is ignored. A status
// other than 200 is an error carrying the daemon's message.
func (a *Admin) Do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://gritsd"+path, body)
	if err != nil {
		return nil, err
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no gritsd serve answers on %s (is it running with this --data?): %w", a.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("daemon: %s: %s", resp.Status, b)
	}
	return resp, nil
}

// Status asks the daemon for its status.
func (a *Admin) Status(ctx context.Context) (Status, error) {
	resp, err := a.Do(ctx, "GET", "/v1/status", nil)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("status from %s: %w", a.path, err)
	}
	return st, nil
}

// RereadRoots tells an origin's daemon to take the newest root in its
// log now.
func (a *Admin) RereadRoots(ctx context.Context) error {
	resp, err := a.Do(ctx, "POST", "/v1/roots/reread", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
