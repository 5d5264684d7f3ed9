package main_test

// Integration tests for a swarm that restarts: real gritsd processes on
// ports chosen once and reused by every restart, as an operator's nodes
// keep theirs. After each restart, freeze or outage the swarm must be
// whole again (every node lists every other alive) and a new import on
// the origin must reach every volunteer.

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/membership"
)

// fixedPorts are the ports handed out in this test process.
var fixedPorts struct {
	sync.Mutex
	taken map[int]bool
}

// fixedPort returns a loopback port, free for TCP and UDP, below the
// kernel's ephemeral range (32768 and up on Linux): bind(":0") never
// lands there, so no other test can take it while a node restarts.
func fixedPort(t *testing.T) int {
	t.Helper()
	fixedPorts.Lock()
	defer fixedPorts.Unlock()
	if fixedPorts.taken == nil {
		fixedPorts.taken = map[int]bool{}
	}
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if fixedPorts.taken[p] {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		pc.Close()
		fixedPorts.taken[p] = true
		return p
	}
	t.Fatal("no free loopback port in 20000..31999")
	return 0
}

// fixedNode is a swarm node that always runs with the same flags.
type fixedNode struct {
	*swarmNode
	listen string // grits/1, UDP
	role   string
}

// startFixed starts gritsd serve on d on new fixed ports.
func startFixed(t *testing.T, d dataDir, id, role string) *fixedNode {
	t.Helper()
	n := &fixedNode{swarmNode: &swarmNode{d: d, id: id}, role: role,
		listen: fmt.Sprintf("127.0.0.1:%d", fixedPort(t))}
	n.gossip = fmt.Sprintf("127.0.0.1:%d", fixedPort(t))
	n.start(t)
	return n
}

// start (re)starts the node with its flags.
func (n *fixedNode) start(t *testing.T) {
	t.Helper()
	n.srv = startServe(t, n.d, "--listen", n.listen, "--gossip", n.gossip, "--gossip-profile", "local",
		"--https", "off", "--admin", "off")
	if n.srv.addr != n.listen {
		t.Fatalf("serve listens on %s, want %s\n%s", n.srv.addr, n.listen, n.srv)
	}
	if !strings.Contains(n.srv.stderr.String(), "gossip on "+n.gossip) {
		t.Fatalf("serve: want \"gossip on %s\"\n%s", n.gossip, n.srv)
	}
}

// stop stops the node gracefully, as an operator's SIGTERM does.
func (n *fixedNode) stop(t *testing.T) {
	t.Helper()
	n.srv.stop(t, syscall.SIGTERM)
	if code := n.srv.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s after SIGTERM: exit %d, want 0\n%s", n.role, code, n.srv)
	}
}

// restartSwarm is an origin serving the standard fixture and two
// volunteers, all on fixed ports, alive everywhere.
type restartSwarm struct {
	origin  *fixedNode
	vols    []*fixedNode
	entries []entry
	seq     uint64 // of the latest import
}

func newRestartSwarm(t *testing.T) *restartSwarm {
	t.Helper()
	s := &restartSwarm{entries: standardEntries()}
	d, _ := newOriginWithKey(t)
	d.importTree(t, newSource(t, s.entries))
	s.seq = 1
	s.origin = startFixed(t, d, "", "origin")
	s.origin.id = d.mustStatus(t).Node
	for range 2 {
		vd, id := join(t, newToken(t, d, s.origin.listen, "--role", "volunteer"))
		s.vols = append(s.vols, startFixed(t, vd, id, "volunteer"))
	}
	s.waitWhole(t)
	return s
}

func (s *restartSwarm) all() []*fixedNode { return append([]*fixedNode{s.origin}, s.vols...) }

// waitWhole waits until every node lists every node alive.
func (s *restartSwarm) waitWhole(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	var want []*swarmNode
	for _, n := range s.all() {
		want = append(want, n.swarmNode)
	}
	for _, n := range want {
		waitAlive(t, n, want...)
	}
	return time.Since(start)
}

// importReaches imports a changed fixture on the origin and waits until
// the volunteers vols (every one if none is named) have the new root.
func (s *restartSwarm) importReaches(t *testing.T, only ...*fixedNode) {
	t.Helper()
	if len(only) == 0 {
		only = s.vols
	}
	s.seq++
	s.entries = replaceEntry(s.entries, "index.html", fmt.Appendf(nil, "<!doctype html>\n<h1>version %d</h1>\n", s.seq))
	s.origin.d.importTree(t, newSource(t, s.entries))
	var vols []*swarmNode
	for _, v := range only {
		vols = append(vols, v.swarmNode)
	}
	start := time.Now()
	waitSeq(t, s.seq, latestRoot(t, s.origin.d), vols...)
	t.Logf("root seq %d reached %d volunteers %v after the import", s.seq, len(vols), time.Since(start).Round(time.Millisecond))
}

// checkSnapshot checks that n's members.json lists the others at their
// gossip addresses.
func checkSnapshot(t *testing.T, n *fixedNode, others ...*fixedNode) {
	t.Helper()
	b, err := os.ReadFile(n.d.path("members.json"))
	if err != nil {
		t.Fatalf("%s: %v", n.role, err)
	}
	snap, err := membership.DecodeSnapshot(b)
	if err != nil {
		t.Fatalf("%s's members.json: %v\n%s", n.role, err, b)
	}
	for _, o := range others {
		i := slices.IndexFunc(snap.Members, func(k membership.Known) bool { return k.ID.String() == o.id })
		if i < 0 || snap.Members[i].GossipAddr != o.gossip || snap.Members[i].ProtoAddr != o.listen || snap.Members[i].Role.String() != o.role {
			t.Errorf("%s's members.json: want %s %s at gossip %s, grits/1 %s\n%s", n.role, o.role, o.id[:16], o.gossip, o.listen, b)
		}
	}
}

// TestSwarmOriginRestart: the origin (which has no seeds) stopped with
// SIGTERM and started again with the same flags re-forms the swarm with
// its volunteers, and new roots reach them.
func TestSwarmOriginRestart(t *testing.T) {
	t.Parallel()
	s := newRestartSwarm(t)
	s.origin.stop(t)
	checkSnapshot(t, s.origin, s.vols...)
	s.origin.start(t)
	t.Logf("the swarm was whole %v after the origin restarted", s.waitWhole(t).Round(time.Millisecond))
	s.importReaches(t)
}

// TestSwarmVolunteerRestart: a volunteer stopped and started again.
func TestSwarmVolunteerRestart(t *testing.T) {
	t.Parallel()
	s := newRestartSwarm(t)
	v := s.vols[0]
	v.stop(t)
	checkSnapshot(t, v, s.origin, s.vols[1])
	s.importReaches(t, s.vols[1]) // while it is down
	v.start(t)
	t.Logf("the swarm was whole %v after the volunteer restarted", s.waitWhole(t).Round(time.Millisecond))
	s.importReaches(t)
}

// TestSwarmFullRestart stops every node and starts them again one by
// one, the origin first or last: the last one up finds the others.
func TestSwarmFullRestart(t *testing.T) {
	t.Parallel()
	for _, originFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("origin first %v", originFirst), func(t *testing.T) {
			t.Parallel()
			s := newRestartSwarm(t)
			for _, n := range slices.Backward(s.all()) {
				n.stop(t)
			}
			order := append(slices.Clone(s.vols), s.origin)
			if originFirst {
				order = s.all()
			}
			for _, n := range order {
				n.start(t)
			}
			t.Logf("the swarm was whole %v after the last node started", s.waitWhole(t).Round(time.Millisecond))
			s.importReaches(t)
		})
	}
}

// TestSwarmFrozenNodeMergesBack freezes a volunteer with SIGSTOP until
// the others declare it dead, then thaws it: it merges back, and roots
// reach it again.
func TestSwarmFrozenNodeMergesBack(t *testing.T) {
	t.Parallel()
	s := newRestartSwarm(t)
	v := s.vols[0]
	if err := v.srv.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if err := v.srv.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT: %v", err)
			}
		}
	}
	defer thaw()
	frozen := time.Now()
	for _, n := range []*fixedNode{s.origin, s.vols[1]} {
		eventually(t, swarmWait, 200*time.Millisecond, func() error {
			st, err := n.d.status(t)
			if err != nil {
				return err
			}
			if i, ok := st.member(v.id); !ok || st.Members[i].State != "dead" {
				return fmt.Errorf("the %s does not see the frozen volunteer dead: %s", n.role, st.members())
			}
			return nil
		})
	}
	t.Logf("the frozen volunteer was dead everywhere after %v", time.Since(frozen).Round(time.Millisecond))
	s.importReaches(t, s.vols[1]) // while it is frozen
	thaw()
	t.Logf("the swarm was whole %v after SIGCONT", s.waitWhole(t).Round(time.Millisecond))
	s.importReaches(t)
}
