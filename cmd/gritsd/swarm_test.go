package main_test

// Integration tests for the swarm: gritsd token, join, serve with gossip,
// status, ban. Real processes on the loopback interface, with the local
// gossip profile (fast timers).

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/membership"
)

// localTiming is the local gossip profile's bounds (membership.Timing)
// for the test swarms, which have at most 5 nodes.
var localTiming = func() membership.Timing {
	t, err := membership.ProfileLocal.Timing(5)
	if err != nil {
		panic(err)
	}
	return t
}()

// swarmSlack is the margin these tests give the protocol's bounds: the
// processes do not run under the race detector, but the machine is small
// and shared, and the tests run in parallel.
const swarmSlack = 5

// swarmWait bounds one wait for the swarm to converge: a member seen
// alive (Join) or dead (Dead), the swarm whole again after a restart
// (Reform), a root or a ban spread (Root, and one request to a member).
var swarmWait = swarmSlack * max(localTiming.Join, localTiming.Dead, localTiming.Reform, localTiming.Root+dialTimeout)

// swarmStatus is gritsd status --json.
type swarmStatus struct {
	Node string `json:"node"`
	Role string `json:"role"`
	Site string `json:"site"`
	Root *struct {
		Seq  uint64 `json:"seq"`
		Hash string `json:"hash"`
		Tree string `json:"tree"`
	} `json:"root"`
	Members  []statusMember `json:"members"`
	Replicas int            `json:"replicas"`
	Banned   int            `json:"banned"`
	BanList  int64          `json:"ban_list_version"`
	Upstream struct {
		Fetched, Bytes, Coalesced, Failed, SourceErrors int64
	} `json:"upstream"`
	Served struct {
		Requests int64 `json:"requests"`
		Blocks   int64 `json:"blocks"`
		Bytes    int64 `json:"bytes"`
	} `json:"served"`
}

// statusMember is one member in gritsd status --json.
type statusMember struct {
	ID       string   `json:"id"`
	Role     string   `json:"role"`
	State    string   `json:"state"`
	Addr     string   `json:"addr"`
	RootSeq  uint64   `json:"root_seq"`
	Complete uint64   `json:"complete_seq"`
	Lacking  uint64   `json:"lacking_bytes"`
	Pins     []string `json:"pins"`
	Self     bool     `json:"self"`
}

// seq is the root seq the node reports, 0 for none.
func (s swarmStatus) seq() uint64 {
	if s.Root == nil {
		return 0
	}
	return s.Root.Seq
}

// member returns the entry for id, if listed.
func (s swarmStatus) member(id string) (int, bool) {
	i := slices.IndexFunc(s.Members, func(m statusMember) bool { return m.ID == id })
	return i, i >= 0
}

// members summarizes the member list for messages: "id[:16] role state".
func (s swarmStatus) members() string {
	var parts []string
	for _, m := range s.Members {
		parts = append(parts, fmt.Sprintf("%s %s %s seq %d", m.ID[:min(len(m.ID), 16)], m.Role, m.State, m.RootSeq))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// status asks d's running daemon for its status; an error (not a test
// failure) if it does not answer, for use in eventually.
func (d dataDir) status(t *testing.T) (swarmStatus, error) {
	t.Helper()
	r := d.run(t, "status", "--json")
	if r.code != 0 && r.code != notReadyCode {
		return swarmStatus{}, fmt.Errorf("status: %s", r)
	}
	var st swarmStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		return swarmStatus{}, fmt.Errorf("status --json: %v\n%s", err, r)
	}
	return st, nil
}

// mustStatus is status, failing the test if the daemon does not answer.
func (d dataDir) mustStatus(t *testing.T) swarmStatus {
	t.Helper()
	st, err := d.status(t)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// swarmNode is a serving node of a test swarm.
type swarmNode struct {
	d      dataDir
	id     string // ed25519-<64 hex>
	srv    *server
	gossip string
}

var gossipLineRE = regexp.MustCompile(`(?m)^gossip on (127\.0\.0\.1:\d+)$`)

// startNode starts gritsd serve on d with loopback gossip and the local
// gossip profile.
func startNode(t *testing.T, d dataDir, id string) *swarmNode {
	t.Helper()
	s := startServe(t, d, "--gossip", "127.0.0.1:0", "--gossip-profile", "local")
	m := gossipLineRE.FindStringSubmatch(s.stderr.String())
	if m == nil {
		t.Fatalf("serve: want \"gossip on 127.0.0.1:PORT\" before \"listening on\"\n%s", s)
	}
	return &swarmNode{d: d, id: id, srv: s, gossip: m[1]}
}

var nodeIDLineRE = regexp.MustCompile(`^node-id: (ed25519-[0-9a-f]{64})\n$`)

// newToken runs gritsd token on the origin and returns the token.
func newToken(t *testing.T, origin dataDir, originAddr string, args ...string) string {
	t.Helper()
	r := origin.must(t, append([]string{"token", "--origin-addr", originAddr}, args...)...)
	tok := strings.TrimSuffix(r.stdout, "\n")
	if !strings.HasPrefix(tok, "grits-join-1.") || strings.Contains(tok, "\n") {
		t.Fatalf("token: want one line grits-join-1.... on stdout\n%s", r)
	}
	return tok
}

// join runs gritsd join TOKEN into a new data directory and returns it
// with the node ID join printed.
func join(t *testing.T, tok string) (dataDir, string) {
	t.Helper()
	d := dataDir(filepath.Join(t.TempDir(), "node"))
	r := d.must(t, "join", tok)
	m := nodeIDLineRE.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("join: want \"node-id: ed25519-<64 hex>\" on stdout\n%s", r)
	}
	return d, m[1]
}

// enrol makes a node of the given role join the origin's swarm and
// starts it.
func enrol(t *testing.T, origin *swarmNode, role string) *swarmNode {
	t.Helper()
	d, id := join(t, newToken(t, origin.d, origin.srv.addr, "--role", role))
	return startNode(t, d, id)
}

// startOrigin makes an origin, imports entries and serves it.
func startOrigin(t *testing.T, entries []entry) (*swarmNode, string) {
	t.Helper()
	d, key := newOriginWithKey(t)
	if entries != nil {
		d.importTree(t, newSource(t, entries))
	}
	n := startNode(t, d, "")
	n.id = d.mustStatus(t).Node
	return n, key
}

// waitAlive waits until n's status lists exactly the nodes want, all
// alive.
func waitAlive(t *testing.T, n *swarmNode, want ...*swarmNode) swarmStatus {
	t.Helper()
	var st swarmStatus
	eventually(t, swarmWait, 200*time.Millisecond, func() error {
		var err error
		if st, err = n.d.status(t); err != nil {
			return err
		}
		if len(st.Members) != len(want) {
			return fmt.Errorf("%s sees %d members, want %d: %s", n.d, len(st.Members), len(want), st.members())
		}
		for _, w := range want {
			i, ok := st.member(w.id)
			if !ok || st.Members[i].State != "alive" {
				return fmt.Errorf("%s does not see %s alive: %s", n.d, w.id[:16], st.members())
			}
		}
		return nil
	})
	return st
}

// waitSeq waits until each node's status reports root seq (and, if hash
// is set, that root).
func waitSeq(t *testing.T, seq uint64, hash string, nodes ...*swarmNode) {
	t.Helper()
	for _, n := range nodes {
		eventually(t, swarmWait, 200*time.Millisecond, func() error {
			st, err := n.d.status(t)
			if err != nil {
				return err
			}
			if st.seq() != seq || hash != "" && st.Root.Hash != hash {
				return fmt.Errorf("%s (%s) is at root seq %d, want %d (%s)", n.id[:16], n.d, st.seq(), seq, hash)
			}
			return nil
		})
	}
}

// latestRoot is the hash of the newest root in d's log (the daemon may
// not have seen it yet).
func latestRoot(t *testing.T, d dataDir) string {
	t.Helper()
	l := d.log(t)
	if len(l) == 0 {
		t.Fatalf("%s has no roots", d)
	}
	return l[0].root
}

// runWithin runs gritsd with a deadline of its own, for commands that
// must end quickly (a refused serve must not serve).
func runWithin(t *testing.T, timeout time.Duration, args ...string) (result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gritsdBin, args...)
	cmd.Env = baseEnv()
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("gritsd %s: still running after %v\n%s", strings.Join(args, " "), timeout, r)
	case errors.As(err, &ee) && ee.Exited():
		r.code = ee.ExitCode()
	default:
		t.Fatalf("gritsd %s: %v\n%s", strings.Join(args, " "), err, r)
	}
	return r, took
}

// snapshotDir describes every file and directory under dir: mode, and
// for files the size and SHA-256.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %d %x", len(b), sha256.Sum256(b))
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkUnchanged reports differences between two snapshots.
func checkUnchanged(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, b := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s: %s disappeared", what, p)
		} else if a != b {
			t.Errorf("%s: %s changed: %s -> %s", what, p, b, a)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s appeared", what, p)
		}
	}
}

// checkNotJoined checks that a refused join left no trace of a swarm in d.
func checkNotJoined(t *testing.T, d dataDir) {
	t.Helper()
	for _, f := range []string{"node.cert", "swarm.keys"} {
		if _, err := os.Stat(d.path(f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused join left %s (stat: %v)", d.path(f), err)
		}
	}
}

// TestSwarmEndToEnd runs an origin and three volunteers enrolled with
// token and join: every node sees every other alive, a new root reaches
// every volunteer, a SIGKILLed volunteer is declared dead while the
// others keep serving the content pull-through, and the volunteer comes
// back under the same ID and catches up with what it missed.
func TestSwarmEndToEnd(t *testing.T) {
	t.Parallel()
	entries := standardEntries()
	origin, key := startOrigin(t, entries)
	vols := []*swarmNode{enrol(t, origin, "volunteer"), enrol(t, origin, "volunteer"), enrol(t, origin, "volunteer")}
	all := append([]*swarmNode{origin}, vols...)

	// (a) Everyone sees everyone alive, with the right roles and addresses.
	start := time.Now()
	st := waitAlive(t, origin, all...)
	for _, v := range vols {
		waitAlive(t, v, all...)
	}
	t.Logf("4 members alive everywhere after %v", time.Since(start).Round(time.Millisecond))
	for _, n := range all {
		i, _ := st.member(n.id)
		m := st.Members[i]
		wantRole := "volunteer"
		if n == origin {
			wantRole = "origin"
		}
		if m.Role != wantRole || m.Addr != n.srv.addr || m.Self != (n == origin) {
			t.Errorf("origin's status: member %s: want role %s, addr %s, self %v; got %+v", n.id[:16], wantRole, n.srv.addr, n == origin, m)
		}
	}
	if st.Role != "origin" || st.Site != key || st.seq() != 1 {
		t.Errorf("origin's status: want role origin, site %s, root seq 1; got %s, %s, %d", key, st.Role, st.Site, st.seq())
	}

	// (b) A new import reaches every volunteer.
	v2 := replaceEntry(entries, "media/big.bin", randBytes(30, 9*chunkSize+777))
	origin.d.importTree(t, newSource(t, v2))
	start = time.Now()
	waitSeq(t, 2, latestRoot(t, origin.d), vols...)
	t.Logf("root seq 2 reached the 3 volunteers %v after the import", time.Since(start).Round(time.Millisecond))

	// (c) A SIGKILLed volunteer is declared dead; the others still
	// serve a multi-block file without the origin's address given.
	dead := vols[2]
	dead.srv.stop(t, syscall.SIGKILL)
	killed := time.Now()
	eventually(t, swarmWait, 200*time.Millisecond, func() error {
		st, err := origin.d.status(t)
		if err != nil {
			return err
		}
		if i, ok := st.member(dead.id); !ok || st.Members[i].State != "dead" {
			return fmt.Errorf("origin does not see %s dead: %s", dead.id[:16], st.members())
		}
		return nil
	})
	t.Logf("origin saw the killed volunteer dead after %v", time.Since(killed).Round(time.Millisecond))
	big := v2[4]
	if big.path != "media/big.bin" {
		t.Fatalf("fixture changed: entry 4 is %s", big.path)
	}
	live := []string{vols[0].srv.addr, vols[1].srv.addr}
	// The volunteers may still be warming root seq 2, and a fetch that
	// asked the killed one waits for it to be declared dead: give get
	// room beyond its default 10 s stall timeout. How fast warming is
	// belongs to TestSwarmWarmNoFetchCycle.
	stall := []string{"--stall-timeout", "30s"}
	dest := filepath.Join(t.TempDir(), "big.bin")
	getStart := time.Now()
	r := run(t, append([]string{"get", "/" + big.path, "-o", dest, "--site-key", key}, append(stall, peerArgs(live...)...)...)...)
	t.Logf("get from the two live volunteers: exit %d in %v", r.code, time.Since(getStart).Round(time.Millisecond))
	if r.code != 0 {
		t.Fatalf("get from the live volunteers: want exit 0\n%s", r)
	}
	checkFile(t, dest, big.data)
	if s := parseSummary(t, r); s.seq != "2" || s.inline || len(s.from) == 0 {
		t.Errorf("get: want blocks of root seq 2, got %+v\n%s", s, r)
	} else {
		for p := range s.from {
			if !slices.Contains(live, p) {
				t.Errorf("get: bytes from %s, which was not asked\n%s", p, r)
			}
		}
	}

	// (d) A root imported while the volunteer is down; it restarts on
	// the same data directory, comes back under its ID and catches up.
	v3 := replaceEntry(v2, "index.html", []byte("<!doctype html>\n<h1>while you were away</h1>\n"))
	origin.d.importTree(t, newSource(t, v3))
	hash3 := latestRoot(t, origin.d)
	waitSeq(t, 3, hash3, vols[0], vols[1])
	restarted := startNode(t, dead.d, dead.id)
	start = time.Now()
	st = waitAlive(t, origin, all...)
	if i, _ := st.member(dead.id); st.Members[i].Addr != restarted.srv.addr {
		t.Errorf("origin's status: the restarted volunteer's address is %s, want %s", st.Members[i].Addr, restarted.srv.addr)
	}
	if got := restarted.d.mustStatus(t).Node; got != dead.id {
		t.Errorf("restarted volunteer: node ID %s, want %s as before", got, dead.id)
	}
	waitSeq(t, 3, hash3, restarted)
	t.Logf("the restarted volunteer was alive at root seq 3 %v after it started", time.Since(start).Round(time.Millisecond))
	r = run(t, append([]string{"get", "/index.html", "-o", "-", "--site-key", key}, append(stall, peerArgs(restarted.srv.addr)...)...)...)
	if r.code != 0 || r.stdout != string(v3[0].data) {
		t.Errorf("get /index.html from the restarted volunteer: want exit 0 and the new content\n%s", r)
	} else if s := parseSummary(t, r); s.seq != "3" {
		t.Errorf("get from the restarted volunteer: want root seq 3, got %s\n%s", s.seq, r)
	}
}

// TestStorageNodeResumesAfterKill SIGKILLs a storage node halfway
// through a rate-limited sync of 40 MB: restarted, it completes the
// sync without fetching again what it already had, the origin counts it
// as a replica, and its data directory is clean.
func TestStorageNodeResumesAfterKill(t *testing.T) {
	t.Parallel()
	const size = 40 << 20
	const rate = 10 << 20
	origin, _ := startOrigin(t, nil)
	origin.d.importTree(t, newSource(t, []entry{
		{path: "a/30m.bin", data: randBytes(40, 30<<20)},
		{path: "b/10m.bin", data: randBytes(41, 10<<20)},
	}))

	d, id := join(t, newToken(t, origin.d, origin.srv.addr, "--role", "storage"))
	var cfg map[string]any
	if err := json.Unmarshal([]byte(d.must(t, "config", "check", "--json").stdout), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["role"] != "storage" || fmt.Sprint(cfg["pins"]) != "[/]" {
		t.Errorf("gritsd.toml after join --role storage: want role storage and pins [/], got %v, %v", cfg["role"], cfg["pins"])
	}
	d.setConfig(t, "pin_rate_bytes", strconv.Itoa(rate))

	// Kill it once more than half has arrived, before the end.
	storage := startNode(t, d, id)
	var before swarmStatus
	var lacking uint64
	eventually(t, swarmWait, 50*time.Millisecond, func() error {
		st, err := d.status(t)
		if err != nil {
			return err
		}
		i, ok := st.member(id)
		if !ok {
			return fmt.Errorf("storage node does not list itself: %s", st.members())
		}
		self := st.Members[i]
		if st.seq() == 1 && self.Complete >= 1 {
			t.Fatalf("the storage node finished its sync before it could be killed (fetched %d bytes): is pin_rate_bytes in force?", st.Upstream.Bytes)
		}
		if st.seq() != 1 || self.Lacking == 0 || st.Upstream.Bytes < size/2 {
			return fmt.Errorf("storage node at root seq %d, lacking %d, fetched %d bytes", st.seq(), self.Lacking, st.Upstream.Bytes)
		}
		before, lacking = st, self.Lacking
		return nil
	})
	storage.srv.stop(t, syscall.SIGKILL)
	t.Logf("killed the storage node after it fetched %d of %d bytes (lacking %d as last published)", before.Upstream.Bytes, size, lacking)

	storage = startNode(t, d, id)
	r, took := runWithin(t, 90*time.Second, "status", "--data", string(origin.d), "--wait-replicas", "1", "--timeout", "60s")
	if r.code != 0 || !strings.Contains(r.stderr, "1 replicas of root seq 1") {
		t.Fatalf("status --wait-replicas 1 on the origin: want exit 0 and \"1 replicas of root seq 1\"\n%s", r)
	}
	t.Logf("the origin counted the restarted storage node as a replica after %v", took.Round(time.Millisecond))
	after := d.mustStatus(t)
	ost := origin.d.mustStatus(t)
	t.Logf("storage node fetched %d bytes before the kill (at least) and %d after; the origin served %d bytes in all",
		before.Upstream.Bytes, after.Upstream.Bytes, ost.Served.Bytes)
	if total := before.Upstream.Bytes + after.Upstream.Bytes; total >= size*3/2 {
		t.Errorf("the storage node fetched %d bytes over both runs for %d bytes of content; want < 1.5x (the resumed sync refetched what it had)", total, size)
	}
	if after.Upstream.Bytes > size-before.Upstream.Bytes+size/10 {
		t.Errorf("after the restart the storage node fetched %d bytes; it had %d of %d already", after.Upstream.Bytes, before.Upstream.Bytes, size)
	}
	if ost.Served.Bytes >= size*3/2 || ost.Served.Bytes < size {
		t.Errorf("the origin served %d bytes for %d bytes of content to its only member; want between 1x and 1.5x", ost.Served.Bytes, size)
	}
	if i, ok := ost.member(id); !ok || ost.Members[i].Role != "storage" || ost.Members[i].Complete != 1 || ost.Members[i].Lacking != 0 {
		t.Errorf("origin's view of the storage node: want role storage, complete seq 1, lacking 0: %+v", ost.Members)
	}

	storage.srv.stop(t, syscall.SIGTERM)
	if code := storage.srv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("storage node after SIGTERM: want exit 0, got %d\n%s", code, storage.srv)
	}
	d.fsckClean(t)
}

// TestJoinRefusals checks that join refuses replayed, expired, garbled
// and unreachable tokens, origins and nodes that already joined, that
// token and serve refuse the wrong kind of directory, and that refusals
// leave the directories as they were.
func TestJoinRefusals(t *testing.T) {
	t.Parallel()
	origin, _ := startOrigin(t, []entry{{path: "index.html", data: []byte("hi\n")}})
	o := origin.d

	tok := newToken(t, o, origin.srv.addr)
	vol, _ := join(t, tok)
	joined := snapshotDir(t, string(vol))
	for _, f := range []string{"gritsd.toml", "node.key", "node.cert", "swarm.keys"} {
		if _, ok := joined[f]; !ok {
			t.Errorf("join wrote no %s", f)
		}
	}

	t.Run("replayed token", func(t *testing.T) {
		d := dataDir(filepath.Join(t.TempDir(), "node"))
		r := d.run(t, "join", tok)
		if r.code != 1 || !strings.Contains(r.stderr, "already used") {
			t.Errorf("want exit 1 and \"already used\"\n%s", r)
		}
		checkNotJoined(t, d)
	})

	t.Run("expired token", func(t *testing.T) {
		r := o.must(t, "token", "--origin-addr", origin.srv.addr, "--ttl", "1s")
		m := regexp.MustCompile(`valid until (\S+);`).FindStringSubmatch(r.stderr)
		if m == nil {
			t.Fatalf("token: want \"valid until TIME;\" on stderr\n%s", r)
		}
		until, err := time.Parse(time.RFC3339, m[1])
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
			if time.Now().Before(until) {
				return fmt.Errorf("token valid until %v", until)
			}
			return nil
		})
		d := dataDir(filepath.Join(t.TempDir(), "node"))
		j := d.run(t, "join", strings.TrimSpace(r.stdout))
		if j.code != 1 || !strings.Contains(j.stderr, "expired") {
			t.Errorf("want exit 1 and \"expired\"\n%s", j)
		}
		checkNotJoined(t, d)
	})

	for _, garbage := range []string{"hello", "grits-join-1.!!!", "grits-join-1." + strings.Repeat("A", 40), tok[:len(tok)/2]} {
		t.Run("garbage token "+garbage[:min(len(garbage), 20)], func(t *testing.T) {
			d := dataDir(filepath.Join(t.TempDir(), "node"))
			r := d.run(t, "join", garbage)
			if r.code != 2 || !strings.Contains(r.stderr, "join token") || !strings.Contains(r.stderr, "usage: gritsd join") {
				t.Errorf("want exit 2, a message about the join token and the usage line\n%s", r)
			}
			if _, err := os.Stat(string(d)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("join with a garbled token created %s", d)
			}
		})
	}

	t.Run("nobody at the origin address", func(t *testing.T) {
		bad := newToken(t, o, deadPeer(t))
		d := dataDir(filepath.Join(t.TempDir(), "node"))
		r, took := runWithin(t, 30*time.Second, "join", bad, "--timeout", "3s", "--data", string(d))
		if r.code != 1 || !strings.Contains(r.stderr, "reach the origin") {
			t.Errorf("want exit 1 and \"reach the origin\"\n%s", r)
		}
		if took > 3*time.Second+dialTimeout {
			t.Errorf("join --timeout 3s took %v", took.Round(time.Millisecond))
		}
		checkNotJoined(t, d)
	})

	t.Run("origin's data directory", func(t *testing.T) {
		fresh := newToken(t, o, origin.srv.addr)
		before := snapshotDir(t, string(o))
		r := o.run(t, "join", fresh)
		if r.code != 1 || !strings.Contains(r.stderr, "is an origin's data directory") {
			t.Errorf("want exit 1 and \"is an origin's data directory\"\n%s", r)
		}
		after := snapshotDir(t, string(o))
		// The running origin may re-sign roots or record tokens; only
		// what join would write matters here.
		for _, f := range []string{"node.cert", "gritsd.toml", "swarm.keys", "node.key"} {
			if before[f] != after[f] {
				t.Errorf("refused join changed the origin's %s", f)
			}
		}
		// The refusal did not spend the token.
		join(t, fresh)
	})

	t.Run("joined twice", func(t *testing.T) {
		r := vol.run(t, "join", newToken(t, o, origin.srv.addr))
		if r.code != 1 || !strings.Contains(r.stderr, "already joined") {
			t.Errorf("want exit 1 and \"already joined\"\n%s", r)
		}
	})

	t.Run("token on a volunteer", func(t *testing.T) {
		r := vol.run(t, "token", "--origin-addr", origin.srv.addr)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "not an origin") {
			t.Errorf("want exit 1, nothing on stdout and \"not an origin\"\n%s", r)
		}
	})

	t.Run("serve before join", func(t *testing.T) {
		d := dataDir(filepath.Join(t.TempDir(), "node"))
		d.must(t, "init")
		before := snapshotDir(t, string(d))
		r, _ := runWithin(t, 30*time.Second, "serve", "--listen", "127.0.0.1:0", "--gossip", "127.0.0.1:0", "--data", string(d))
		if r.code != 1 || !strings.Contains(r.stderr, "run gritsd join") {
			t.Errorf("want exit 1 and \"run gritsd join\"\n%s", r)
		}
		checkUnchanged(t, "volunteer directory after a refused serve", before, snapshotDir(t, string(d)))
	})

	checkUnchanged(t, "joined volunteer's directory after the refusals", joined, snapshotDir(t, string(vol)))
}

// TestBanFromCLI bans a volunteer by an ID prefix: the origin and the
// other volunteer drop it, it loses the swarm, and the rest of the swarm
// goes on working.
func TestBanFromCLI(t *testing.T) {
	t.Parallel()
	origin, _ := startOrigin(t, standardEntries())
	a, b := enrol(t, origin, "volunteer"), enrol(t, origin, "volunteer")
	all := []*swarmNode{origin, a, b}
	for _, n := range all {
		waitAlive(t, n, all...)
	}

	prefix := strings.TrimPrefix(b.id, "ed25519-")[:8]
	r := origin.d.must(t, "ban", prefix)
	if !strings.Contains(r.stderr, "banned "+b.id) {
		t.Errorf("ban %s: want \"banned %s\" on stderr\n%s", prefix, b.id, r)
	}
	banned := time.Now()
	for _, n := range []*swarmNode{origin, a} {
		waitAlive(t, n, origin, a) // B is no longer listed
		eventually(t, swarmWait, 200*time.Millisecond, func() error {
			st, err := n.d.status(t)
			if err != nil {
				return err
			}
			if st.Banned != 1 || st.BanList < 1 {
				return fmt.Errorf("%s: banned %d, ban list version %d; want 1 node banned", n.d, st.Banned, st.BanList)
			}
			if _, ok := st.member(b.id); ok {
				return fmt.Errorf("%s still lists the banned node: %s", n.d, st.members())
			}
			return nil
		})
	}
	t.Logf("the ban was in force on the origin and the other volunteer after %v", time.Since(banned).Round(time.Millisecond))
	eventually(t, swarmWait, 200*time.Millisecond, func() error {
		st, err := b.d.status(t)
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			if !m.Self && (m.State == "alive" || m.State == "suspect") {
				return fmt.Errorf("the banned node still sees %s %s: %s", m.ID[:16], m.State, st.members())
			}
		}
		return nil
	})
	t.Logf("the banned node saw no live peer after %v", time.Since(banned).Round(time.Millisecond))

	// The swarm goes on: a new root reaches A.
	origin.d.importTree(t, newSource(t, []entry{{path: "index.html", data: []byte("after the ban\n")}}))
	waitSeq(t, 2, latestRoot(t, origin.d), a)

	// The origin cannot ban itself, by full ID or by prefix.
	for _, self := range []string{origin.id, strings.TrimPrefix(origin.id, "ed25519-")[:8]} {
		r := origin.d.run(t, "ban", self)
		if r.code != 2 || !strings.Contains(r.stderr, "this origin itself") {
			t.Errorf("ban %s (the origin): want exit 2 and \"this origin itself\"\n%s", self, r)
		}
	}
	// Banning again changes nothing, by full ID or by prefix.
	keys, err := os.ReadFile(origin.d.path("swarm.keys"))
	if err != nil {
		t.Fatal(err)
	}
	for _, again := range []string{b.id, prefix} {
		r := origin.d.run(t, "ban", again)
		if r.code != 0 || !strings.Contains(r.stderr, "already banned") {
			t.Errorf("ban %s again: want exit 0 and \"already banned\"\n%s", again, r)
		}
	}
	if now, err := os.ReadFile(origin.d.path("swarm.keys")); err != nil || string(now) != string(keys) {
		t.Errorf("banning an already banned node rewrote swarm.keys (%v)", err)
	}
	if st := origin.d.mustStatus(t); st.Banned != 1 {
		t.Errorf("origin: %d nodes banned after banning B again, want 1", st.Banned)
	}
}

// TestSwarmWarmNoFetchCycle imports an 8 MiB file into a swarm of two
// volunteers: with replication 2 each is a home node of every block, so
// both warm every block, at once, and each asks the other first. A
// member's request must never wait for a fetch that asks other
// volunteers (which may be waiting for this one): the warm takes about
// 1 s at the default 8 MiB/s; a cycle would wait out the 10 s stall
// timeout and fail the fetch.
func TestSwarmWarmNoFetchCycle(t *testing.T) {
	t.Parallel()
	const size = 32 * chunkSize
	origin, _ := startOrigin(t, []entry{{path: "index.html", data: []byte("hi\n")}})
	a, b := enrol(t, origin, "volunteer"), enrol(t, origin, "volunteer")
	all := []*swarmNode{origin, a, b}
	for _, n := range all {
		waitAlive(t, n, all...)
	}
	origin.d.importTree(t, newSource(t, []entry{{path: "8m.bin", data: randBytes(50, size)}}))
	start := time.Now()
	for _, v := range []*swarmNode{a, b} {
		eventually(t, swarmWait, 100*time.Millisecond, func() error {
			st, err := v.d.status(t)
			if err != nil {
				return err
			}
			if st.Upstream.Bytes < size {
				return fmt.Errorf("volunteer %s fetched %d bytes (%d blocks, %d coalesced, %d failed) of the %d it is home for",
					v.id[:16], st.Upstream.Bytes, st.Upstream.Fetched, st.Upstream.Coalesced, st.Upstream.Failed, size)
			}
			return nil
		})
	}
	t.Logf("both volunteers warmed the new %d bytes %v after the import", size, time.Since(start).Round(time.Millisecond))
	// A cycle is broken only by the 10 s stall timeout, which fails the
	// request to that source: none may have failed (a count, not a clock,
	// so a loaded machine can neither fail the test nor hide a cycle).
	for _, v := range []*swarmNode{a, b} {
		if st := v.d.mustStatus(t); st.Upstream.SourceErrors != 0 || st.Upstream.Failed != 0 {
			t.Errorf("volunteer %s: %d requests to sources failed, %d fetches failed while warming: the home volunteers waited for each other (a fetch cycle)",
				v.id[:16], st.Upstream.SourceErrors, st.Upstream.Failed)
		}
	}
}
