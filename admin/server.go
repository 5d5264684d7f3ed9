package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/grits-cdn/grits/membership"
)

// DefaultAddr is where the admin listener answers unless told otherwise:
// loopback only, next to the grits/1 (7433) and gossip (7434) ports.
const DefaultAddr = "127.0.0.1:7435"

// Config configures the admin listener.
type Config struct {
	// Addr is the TCP address to listen on.
	Addr    string
	Metrics *Metrics
	Sources Sources
	// Series, if set, is fed the members' served reports every
	// SampleEvery (default 5s) for the dashboard's chart.
	Series      *Series
	SampleEvery time.Duration
	Logger      *slog.Logger
}

// Server is the operator-facing HTTP listener: /metrics, /healthz,
// /readyz and the dashboard.
type Server struct {
	cfg Config
	src *Sources
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
	// local: the listener is on loopback, so only requests naming a
	// loopback host are answered (a web page cannot reach it through
	// DNS rebinding).
	local bool
	start time.Time
}

// Listen binds the admin listener and registers the scrape-time
// collectors; Serve answers on it.
func Listen(cfg Config) (*Server, error) {
	if cfg.Metrics == nil {
		return nil, errors.New("admin: no Metrics")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = 5 * time.Second
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	s := &Server{cfg: cfg, src: &cfg.Sources, ln: ln, log: cfg.Logger, start: time.Now()}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		s.local = true
	}
	reg := cfg.Metrics.reg
	if err := reg.Register(newCollector(s.src, cfg.Series)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: time.Minute, ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers until ctx ends, and samples the swarm's served reports
// for the dashboard meanwhile.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		s.srv.Shutdown(sctx)
	})
	defer stop()
	if s.cfg.Series != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			s.sample(ctx)
		}()
	}
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin listener: %w", err)
	}
	return nil
}

// Close stops the listener at once.
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) sample(ctx context.Context) {
	t := time.NewTicker(s.cfg.SampleEvery)
	defer t.Stop()
	for {
		s.observe()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// observe feeds the series the reports the swarm holds now.
func (s *Server) observe() {
	sw := s.src.Swarm
	if sw == nil || s.cfg.Series == nil {
		return
	}
	roles := map[membership.NodeID]membership.Role{}
	for _, m := range sw.Members() {
		roles[m.ID] = m.Role
	}
	s.cfg.Series.Observe(s.src.now(), sw.Served(), roles)
}

// Handler is the admin listener's routes (tests call it directly).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Metrics.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn), ErrorHandling: promhttp.ContinueOnError,
		MaxRequestsInFlight: 4, Timeout: 20 * time.Second}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if why := s.src.notReady(); len(why) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", strings.Join(why, "; "))
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /{$}", s.serveDashboard)
	mux.HandleFunc("GET /api/dashboard", s.serveDashboardData)
	return s.guard(mux)
}

// guard answers only requests whose Host names this listener's loopback
// (when it listens on loopback): a page the operator's browser opens
// elsewhere could otherwise read it through DNS rebinding.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.local && !loopbackHost(r.Host) {
			http.Error(w, "the admin listener answers only requests addressed to a loopback host", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// registerRuntime adds the Go runtime's and the process's collectors.
func registerRuntime(reg *prometheus.Registry) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}
