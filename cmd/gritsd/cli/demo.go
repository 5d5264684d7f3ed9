package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/internal/demosite"
)

// demo runs other commands through Main, which looks commands up in
// the table: it joins the table at init to keep the initialization
// order acyclic.
func init() {
	commands = append(commands, command{"demo", "[--open] [--port N] [--dir DIR]", "an origin, two volunteers and a sample site on this machine, in one command", runDemo})
}

// runDemo starts an origin and two volunteers on loopback with the
// embedded sample site, and reports who served how much.
func runDemo(ctx context.Context, c *cmdContext) error {
	open := c.flags.Bool("open", false, "launch Chromium with a fresh profile that trusts the demo's certificate")
	port := c.flags.Int("port", 8443, "HTTPS port of the origin; the volunteers use the next two")
	dirFlag := c.flags.String("dir", "", "keep the demo's data directories here (default: a temporary directory, removed at exit)")
	browser := c.flags.String("browser", "", "browser to launch with --open (default: chromium, chromium-browser or google-chrome from PATH)")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	if *port < 1 || *port > 65533 {
		return usagef("--port %d: want 1..65533", *port)
	}
	base := *dirFlag
	if base == "" {
		tmp, err := os.MkdirTemp("", "grits-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		base = tmp
	} else if err := os.MkdirAll(base, 0o700); err != nil {
		return err
	}
	o, v1, v2 := filepath.Join(base, "origin"), filepath.Join(base, "volunteer1"), filepath.Join(base, "volunteer2")
	// A --dir that holds a whole demo from before is run again as it is
	// (its keys, certificates and browser profile too); anything else in
	// the way is an error.
	existing := 0
	for _, d := range []string{o, v1, v2} {
		if _, err := os.Stat(filepath.Join(d, "node.cert")); err == nil || d == o && (existsFile(filepath.Join(d, "gritsd.toml")) || existsFile(filepath.Join(d, "config.json"))) {
			existing++
		} else if existsFile(d) {
			return fmt.Errorf("%s exists but is not a demo's node: give --dir an empty or new directory, or one a demo ran in", d)
		}
	}
	resume := existing == 3
	if existing > 0 && !resume {
		return fmt.Errorf("%s holds part of a demo: give --dir an empty or new directory, or one a whole demo ran in", base)
	}
	sub := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		if code := Main(ctx, args, Env{Stdout: &out, Stderr: &errb, Getenv: c.Getenv}); code != ExitOK {
			return "", fmt.Errorf("gritsd %s: %s", strings.Join(args, " "), strings.TrimSpace(errb.String()))
		}
		return strings.TrimSpace(out.String()), nil
	}

	site := filepath.Join(base, "site")
	if !resume {
		if err := copyFS(site, demosite.FS()); err != nil {
			return fmt.Errorf("write the sample site: %w", err)
		}
		if _, err := sub("--data", o, "init", "--origin"); err != nil {
			return err
		}
		if _, err := sub("--data", o, "import", site); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	errs := make(chan error, 3)
	names := []string{"origin", "volunteer1", "volunteer2"}
	dirs := []string{o, v1, v2}
	urls := make([]string, 3)
	var originGossip string           // the last node's gossip address; the origin's after serve(0)
	dashboard := make(chan string, 1) // the origin's "admin on ADDR (URL)"
	serve := func(i int) (string, error) {
		// 127.0.0.1, not localhost: the nodes listen on IPv4 loopback,
		// and a browser told to use HTTP/3 for "localhost" tries ::1
		// over UDP with no fallback to IPv4.
		urls[i] = "https://127.0.0.1:" + strconv.Itoa(*port+i)
		ready, gossip := make(chan string, 1), make(chan string, 1)
		w := &lineWatch{prefix: "listening on ", found: ready}
		gw := &lineWatch{prefix: "gossip on ", found: gossip}
		// Each node serves a development certificate of its own key from
		// the origin's CA (volunteers ask the origin for theirs): one CA
		// to trust, one SPKI for --open, and both survive restarts.
		args := []string{"--data", dirs[i], "serve", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--gossip-profile", "local",
			"--https", "127.0.0.1:" + strconv.Itoa(*port+i), "--url", urls[i], "--log-level", "error"}
		stderr := io.MultiWriter(gw, w, prefixWriter(c.Stderr, names[i]+": "))
		if i == 0 {
			stderr = io.MultiWriter(&lineWatch{prefix: "admin on ", found: dashboard}, stderr)
		}
		wg.Go(func() {
			if code := Main(ctx, args, Env{Stdout: io.Discard, Stderr: stderr, Getenv: c.Getenv}); code != ExitOK && ctx.Err() == nil {
				errs <- fmt.Errorf("%s stopped (exit %d)", names[i], code)
			}
		})
		select {
		case a := <-ready:
			select {
			case g := <-gossip: // printed before "listening on"
				originGossip = g
			default:
			}
			return a, nil
		case err := <-errs:
			return "", err
		case <-time.After(30 * time.Second):
			return "", fmt.Errorf("%s did not start", names[i])
		}
	}
	originAddr, err := serve(0)
	gossipAddr := originGossip
	if err != nil {
		return err
	}
	for i, d := range []string{v1, v2} {
		if !resume {
			tok, err := sub("--data", o, "token", "--origin-addr", originAddr)
			if err != nil {
				return err
			}
			if _, err := sub("--data", d, "join", tok); err != nil {
				return err
			}
		} else if err := setOrigin(ctx, d, originAddr, gossipAddr, c); err != nil {
			return err
		}
		if _, err := serve(i + 1); err != nil {
			return err
		}
	}
	ca, err := gateway.LoadDevCA(o)
	if err != nil {
		return err
	}
	c.errorf("\ngrits demo: an origin and two volunteers on this machine, serving a sample site.\n\n")
	c.errorf("  open %s/\n\n", urls[0])
	c.errorf("Every node's certificate comes from the origin's development CA (%s). Either run\ngritsd demo --open, or trust it: %s\n", filepath.Join(o, "ca.pem"), ca.TrustHint(filepath.Join(o, "ca.pem")))
	c.errorf("Volunteers: %s, %s. Data: %s. Ctrl-C stops everything", urls[1], urls[2], base)
	if *dirFlag != "" {
		c.errorf("; gritsd demo --dir %s runs it again", base)
	}
	c.errorf(".\n")
	select {
	case a := <-dashboard:
		if _, u, ok := strings.Cut(a, " ("); ok {
			c.errorf("The origin's dashboard (the swarm, and the bytes volunteers served): %s\n", strings.TrimSuffix(u, ")"))
		}
	default:
	}
	c.errorf("\n")
	if *open {
		if err := launchBrowser(ctx, *browser, base, ca.Cert, urls); err != nil {
			c.errorf("--open: %v\n", err)
		}
	}
	reportServed(ctx, c, names, dirs, errs)
	cancel()
	return nil
}

// reportServed prints, whenever it changes, how many bytes each node
// served to browsers, until ctx ends or a node fails.
func reportServed(ctx context.Context, c *cmdContext, names, dirs []string, errs chan error) {
	last := ""
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-errs:
			c.errorf("demo: %v\n", err)
			return
		case <-t.C:
		}
		var parts []string
		var total, vol int64
		for i, d := range dirs {
			st, err := fetchStatus(ctx, &datadir.Dir{Path: d})
			if err != nil {
				parts = append(parts, names[i]+" ?")
				continue
			}
			n := st.Served.HTTPBytes
			total += n
			if i > 0 {
				vol += n
			}
			parts = append(parts, fmt.Sprintf("%s %s", names[i], humanBytes(n)))
		}
		line := "served to browsers: " + strings.Join(parts, " · ")
		if total > 0 {
			line += fmt.Sprintf(" · volunteers' share %.0f%%", 100*float64(vol)/float64(total))
		}
		if line != last {
			c.errorf("%s\n", line)
			last = line
		}
	}
}

// launchBrowser starts a browser with a profile of the demo's own that
// accepts every certificate the origin's development CA signed (pinned
// by the CA's SPKI, which Chromium matches anywhere in the chain the
// server sends): every node, across restarts and renewals.
func launchBrowser(ctx context.Context, name, base string, ca *x509.Certificate, urls []string) error {
	if name == "" {
		for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(n); err == nil {
				name = p
				break
			}
		}
	}
	if name == "" {
		return errors.New("no chromium, chromium-browser or google-chrome in PATH; open the URL yourself (see above for trusting the CA), or pass --browser")
	}
	var hosts []string
	for _, u := range urls {
		hosts = append(hosts, strings.TrimPrefix(u, "https://"))
	}
	cmd := exec.CommandContext(ctx, name,
		"--user-data-dir="+filepath.Join(base, "browser-profile"),
		"--no-first-run", "--no-default-browser-check",
		"--ignore-certificate-errors-spki-list="+gateway.SPKIHash(ca),
		"--origin-to-force-quic-on="+strings.Join(hosts, ","),
		urls[0]+"/")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

func existsFile(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// setOrigin points a demo volunteer from before at the origin's grits/1
// and gossip addresses of this run (random ports).
func setOrigin(ctx context.Context, dir, addr, gossip string, c *cmdContext) error {
	d, err := datadir.Open(ctx, dir, c.logger)
	if err != nil {
		return err
	}
	defer d.Close()
	d.Config.OriginAddr = addr
	if gossip != "" {
		d.Config.Seeds = []string{gossip}
	}
	return d.SaveConfig()
}

func copyFS(dst string, src fs.FS) error {
	return fs.WalkDir(src, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(p))
		if e.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// lineWatch reports the rest of the first line that starts with prefix.
type lineWatch struct {
	prefix string
	found  chan string
	buf    []byte
	done   bool
	mu     sync.Mutex
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if rest, ok := strings.CutPrefix(line, w.prefix); ok {
			w.found <- rest
			w.done = true
			w.buf = nil
			break
		}
	}
	return len(p), nil
}

// prefixWriter labels a node's error lines; the serve lines the demo
// reads itself are dropped.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	return &labelWriter{w: w, prefix: prefix}
}

type labelWriter struct {
	w      io.Writer
	prefix string
	buf    []byte
	mu     sync.Mutex
}

func (l *labelWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		if strings.HasPrefix(line, "listening on ") || strings.HasPrefix(line, "gossip on ") || strings.HasPrefix(line, "https on ") ||
			strings.HasPrefix(line, "admin on ") {
			continue
		}
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, line)
	}
	return len(p), nil
}
