package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/tree"
)

// Status is what gritsd status shows, as the daemon reports it on its
// admin socket (DATA/gritsd.sock, reachable only by who can read DATA).
type Status struct {
	Node    membership.NodeID `json:"node"`
	Role    string            `json:"role"`
	Site    tree.PublicKey    `json:"site"`
	URL     string            `json:"url,omitempty"`
	Root    *StatusRoot       `json:"root,omitempty"`
	Members []StatusMember    `json:"members"`
	// Replicas counts the nodes other than the origin that hold the
	// whole current root (pinning "/" and complete at its seq).
	Replicas int   `json:"replicas"`
	Bans     int   `json:"banned"`
	BanList  int64 `json:"ban_list_version"`
	// Upstream is what this node fetched from the swarm.
	Upstream membership.FetchStats `json:"upstream"`
	Served   ServedStats           `json:"served"`
	// Reports are browsers' complaints about volunteers (origin only).
	Reports []StatusReport `json:"reports,omitempty"`
	// HeldBack counts what the origin's mounts keep but do not publish
	// (files others may not read), as of their last commit.
	HeldBack *StatusHeld `json:"held_back,omitempty"`
}

// StatusHeld is what the publish rule keeps out of the published tree.
type StatusHeld struct {
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
}

// StatusReport sums the reports about one volunteer.
type StatusReport struct {
	Peer   string    `json:"peer"`
	Count  int       `json:"count"`
	Last   time.Time `json:"last"`
	Reason string    `json:"reason"`
	Hash   string    `json:"hash,omitempty"`
}

// StatusRoot is the current root.
type StatusRoot struct {
	Seq     uint64    `json:"seq"`
	Hash    string    `json:"hash"`
	Tree    string    `json:"tree"`
	Expires time.Time `json:"expires"`
}

// ServedStats counts what this node served over grits/1.
type ServedStats struct {
	Requests int64 `json:"requests"`
	Blocks   int64 `json:"blocks"`
	Lookups  int64 `json:"lookups"`
	Bytes    int64 `json:"bytes"`
	Refused  int64 `json:"refused_connections"`
	// Over HTTPS/HTTP3 to browsers.
	HTTPRequests  int64 `json:"http_requests"`
	HTTPBytes     int64 `json:"http_bytes"`
	HTTP3Requests int64 `json:"http3_requests"`
	// HTTP answers by kind: block, lookup, site (the origin's pages and
	// files), root.
	HTTPByKind map[string]KindStats `json:"http_by_kind,omitempty"`
}

// KindStats counts one kind of HTTP answer.
type KindStats struct {
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
}

// StatusMember is one member.
type StatusMember struct {
	ID       membership.NodeID `json:"id"`
	Role     string            `json:"role"`
	State    string            `json:"state"`
	Since    time.Time         `json:"since"`
	Addr     string            `json:"addr"`
	URL      string            `json:"url,omitempty"`
	RootSeq  uint64            `json:"root_seq"`
	Complete uint64            `json:"complete_seq"`
	Lacking  uint64            `json:"lacking_bytes"`
	Pins     []string          `json:"pins,omitempty"`
	Load     uint8             `json:"load"`
	Capacity uint64            `json:"capacity_bytes"`
	Self     bool              `json:"self,omitempty"`
}

func holdsAll(m membership.Member, seq uint64) bool {
	return m.Role != membership.RoleOrigin && m.Meta.Complete >= seq && seq > 0 && slices.Contains(m.Meta.Pins, "/") &&
		(m.State == membership.StateAlive || m.State == membership.StateSuspect)
}

// serveAdmin answers status requests on a unix socket in the data
// directory until ctx ends.
// reread, if set, is the origin's "an import committed a root" hook.
func serveAdmin(ctx context.Context, d *datadir.Dir, status func() Status, reread func(context.Context) error) error {
	path := d.FilePath(sockFile)
	// A stale socket from a killed daemon: remove it if nobody answers.
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return fmt.Errorf("another gritsd serve is running on %s (%s answers)", d.Path, path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(status())
	})
	if reread != nil {
		mux.HandleFunc("POST /v1/roots/reread", func(w http.ResponseWriter, r *http.Request) {
			if err := reread(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
		os.Remove(path)
	}()
	go srv.Serve(ln)
	return nil
}

// adminClient talks to the daemon's admin socket.
func adminClient(path string, timeout time.Duration) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", path)
	}}, Timeout: timeout}
}

// pokeDaemon tells a daemon serving d, if one runs, to read the root log
// now.
func pokeDaemon(ctx context.Context, d *datadir.Dir) error {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://gritsd/v1/roots/reread", nil)
	if err != nil {
		return err
	}
	resp, err := adminClient(d.FilePath(sockFile), 5*time.Second).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("daemon: %s: %s", resp.Status, b)
	}
	return nil
}

func fetchStatus(ctx context.Context, d *datadir.Dir) (Status, error) {
	path := d.FilePath(sockFile)
	hc := adminClient(path, 10*time.Second)
	req, err := http.NewRequestWithContext(ctx, "GET", "http://gritsd/v1/status", nil)
	if err != nil {
		return Status{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Status{}, fmt.Errorf("no gritsd serve answers on %s (is it running with this --data?): %w", path, err)
	}
	defer resp.Body.Close()
	var st Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("status from %s: %w", path, err)
	}
	return st, nil
}

func runStatus(ctx context.Context, c *cmdContext) error {
	asJSON := c.flags.Bool("json", false, "print the status as JSON")
	wait := c.flags.Int("wait-replicas", 0, "wait until N nodes other than the origin hold the whole current root, then exit 0 (the \"safe to go offline\" check)")
	timeout := c.flags.Duration("timeout", 0, "with --wait-replicas: give up (exit 1) after this long; 0 waits for ever")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	if *wait < 0 {
		return usagef("--wait-replicas %d: must be positive", *wait)
	}
	p, err := c.dir()
	if err != nil {
		return err
	}
	// Only the socket is needed: do not open (index) the whole store.
	d := &datadir.Dir{Path: p}
	if *wait > 0 {
		if *timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *timeout)
			defer cancel()
		}
		last := -1
		for {
			st, err := fetchStatus(ctx, d)
			if err == nil && st.Root != nil && st.Replicas >= *wait {
				c.errorf("%d replicas of root seq %d\n", st.Replicas, st.Root.Seq)
				return nil
			}
			if err == nil && st.Replicas != last {
				last = st.Replicas
				c.errorf("%d of %d replicas of the current root; waiting\n", st.Replicas, *wait)
			}
			select {
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return &exitError{code: ExitFailure, msg: fmt.Sprintf("only %d of %d replicas after %v", max(last, 0), *wait, *timeout)}
				}
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	st, err := fetchStatus(ctx, d)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStatus(c.Stdout, st)
	return nil
}

func printStatus(w io.Writer, st Status) {
	fmt.Fprintf(w, "node %s (%s), site %s\n", st.Node, st.Role, st.Site)
	if st.Root != nil {
		fmt.Fprintf(w, "root seq %d (%s), expires %s; %d complete replicas besides the origin\n",
			st.Root.Seq, st.Root.Tree, st.Root.Expires.Format(time.RFC3339), st.Replicas)
	} else {
		fmt.Fprintf(w, "no root yet\n")
	}
	if st.Bans > 0 {
		fmt.Fprintf(w, "%d nodes banned (ban list version %d)\n", st.Bans, st.BanList)
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tSTATE\tSINCE\tROOT\tCOMPLETE\tLACKING\tADDR\tURL")
	for _, m := range st.Members {
		id := m.ID.String()[:16]
		if m.Self {
			id += "*"
		}
		complete, lacking := "-", "-"
		if len(m.Pins) > 0 {
			complete, lacking = fmt.Sprint(m.Complete), humanBytes(int64(m.Lacking))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", id, m.Role, m.State, m.Since.Format("15:04:05"), m.RootSeq, complete, lacking, m.Addr, m.URL)
	}
	tw.Flush()
	for _, r := range st.Reports {
		fmt.Fprintf(w, "REPORTED %s: %d times by browsers, last %s: %s %s\n", r.Peer, r.Count, r.Last.Format("15:04:05"), r.Reason, r.Hash)
	}
	if h := st.HeldBack; h != nil && h.Files > 0 {
		fmt.Fprintf(w, "held back: %d files (%s) are kept but not published: others may not read them (chmod o+r, or o+rx for directories, publishes them)\n", h.Files, humanBytes(h.Bytes))
	}
	fmt.Fprintf(w, "served %d grits/1 requests (%s) and %d HTTP requests (%s); fetched %d blocks (%s) from the swarm\n",
		st.Served.Requests, humanBytes(st.Served.Bytes), st.Served.HTTPRequests, humanBytes(st.Served.HTTPBytes), st.Upstream.Fetched, humanBytes(st.Upstream.Bytes))
}
