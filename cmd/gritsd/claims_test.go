package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/node"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// liar is a storage node that joined with gritsd join and then runs the
// membership code by hand: it says it pins everything and holds the
// whole current root, and holds nothing.
type liar struct {
	id    string
	swarm *membership.Swarm
}

func startLiar(t *testing.T, origin *swarmNode, seq uint64) *liar {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dd, id := join(t, newToken(t, origin.d, origin.srv.addr, "--role", "storage"))
	d, err := datadir.Open(ctx, string(dd), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	cert, err := node.LoadCert(d)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := node.LoadRing(d)
	if err != nil {
		t.Fatal(err)
	}
	ident, err := transport.CertificateWithCredential(d.NodeKey, cert.Encode())
	if err != nil {
		t.Fatal(err)
	}
	verifier := membership.NewVerifier()
	client, err := transport.NewClient(transport.ClientConfig{SiteKey: d.Config.SiteKey, Identity: &ident, VerifyServer: verifier.VerifyServer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	log, err := tree.OpenLog(ctx, filepath.Join(t.TempDir(), "roots.log"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := membership.Start(ctx, membership.Config{NodeKey: d.NodeKey, Site: d.Config.SiteKey, Cert: cert, Gossip: "127.0.0.1:0",
		ProtoAddr: pc.LocalAddr().String(), Capacity: 1 << 30, Pins: []string{"/"}, Ring: ring, Seeds: []string{origin.gossip},
		Profile: membership.ProfileLocal, Roots: log, Client: client, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	srv, err := transport.NewServer(transport.ServerConfig{Identity: ident, Store: blockstore.NewMem(-1), Roots: log, Authorize: s.Authorize})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, pc) }()
	t.Cleanup(func() { cancel(); <-done; pc.Close() })
	s.Update(func(m *membership.Meta) { m.RootSeq, m.Complete, m.Lacking = seq, seq, 0 })
	return &liar{id: id, swarm: s}
}

// claimedStatus is status --json with the claim-based count.
type claimedStatus struct {
	swarmStatus
	Claimed int `json:"claimed_replicas"`
}

func (d dataDir) claimedStatus(t *testing.T) (claimedStatus, error) {
	t.Helper()
	r := d.run(t, "status", "--json")
	if r.code != 0 {
		return claimedStatus{}, fmt.Errorf("status: %s", r)
	}
	var st claimedStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		return claimedStatus{}, fmt.Errorf("status --json: %v\n%s", err, r)
	}
	return st, nil
}

// A storage node that claims in gossip to hold the whole current root,
// and holds none of it, is no replica: not on the origin, whose audits
// find it out, and not on a volunteer, which only hears claims (and
// says so). Before, a volunteer's status counted the claim as a replica.
func TestClaimedReplicaDoesNotCount(t *testing.T) {
	t.Parallel()
	d, _ := newOriginWithKey(t)
	d.setOffload(t, 0, "1h") // store_max 0: keep everything; audits every 200 ms
	d.importTree(t, newSource(t, []entry{{path: "index.html", data: []byte("<h1>hi</h1>")}, {path: "a.bin", data: randBytes(7, 300<<10)}}))
	origin := startNode(t, d, "")
	origin.id = d.mustStatus(t).Node
	vol := enrol(t, origin, "volunteer")
	seq := origin.d.mustStatus(t).seq()
	l := startLiar(t, origin, seq)

	eventually(t, offloadWait, 200*time.Millisecond, func() error {
		for _, n := range []*swarmNode{origin, vol} {
			st, err := n.d.status(t)
			if err != nil {
				return err
			}
			i, ok := st.member(l.id)
			if !ok || st.Members[i].State != "alive" || st.Members[i].Complete != seq {
				return fmt.Errorf("%s does not see the liar's claim yet: %s", n.d, st.members())
			}
		}
		ost, err := origin.d.offloadStatus(t)
		if err != nil {
			return err
		}
		if ns, ok := nodeState(ost, l.id); !ok || ns.State != "failed" {
			return fmt.Errorf("the origin's audits have not failed the liar yet: %+v", ns)
		}
		return nil
	})
	ost, err := origin.d.claimedStatus(t)
	if err != nil {
		t.Fatal(err)
	}
	if ost.Replicas != 0 {
		t.Errorf("the origin counts %d replicas; the only storage node holds nothing", ost.Replicas)
	}
	vst, err := vol.d.claimedStatus(t)
	if err != nil {
		t.Fatal(err)
	}
	if vst.Replicas != 0 || vst.Claimed != 1 {
		t.Errorf("the volunteer reports %d replicas and %d claimed; want 0 and the liar's 1 claim", vst.Replicas, vst.Claimed)
	}
	r, _ := runWithin(t, 30*time.Second, "status", "--data", string(vol.d), "--wait-replicas", "1", "--timeout", "10s")
	if r.code == 0 || !strings.Contains(r.stderr, "run it on the origin") {
		t.Errorf("status --wait-replicas on a volunteer: want a failure pointing to the origin\n%s", r)
	}
	r = vol.d.must(t, "status")
	if !strings.Contains(r.stdout, "1 nodes claim the whole root (only the origin's audits count") {
		t.Errorf("a volunteer's status: want the claims shown as claims\n%s", r)
	}
}

// grantedStatus is a member's granted capacity in status --json.
type grantedStatus struct {
	Members []struct {
		ID      string `json:"id"`
		Granted uint64 `json:"granted_bytes"`
		Signed  bool   `json:"signed"`
	} `json:"members"`
}

func (d dataDir) granted(t *testing.T, id string) (uint64, bool, error) {
	t.Helper()
	r := d.run(t, "status", "--json")
	if r.code != 0 {
		return 0, false, fmt.Errorf("status: %s", r)
	}
	var st grantedStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		return 0, false, err
	}
	for _, m := range st.Members {
		if m.ID == id {
			return m.Granted, m.Signed, nil
		}
	}
	return 0, false, fmt.Errorf("%s not listed", id[:16])
}

// gritsd grant sets the most capacity placement counts for a node; the
// running origin spreads it and every node, the granted one too, uses
// it. Members sign what they say about themselves.
func TestGrantFromCLI(t *testing.T) {
	t.Parallel()
	origin, _ := startOrigin(t, []entry{{path: "index.html", data: []byte("hi")}})
	vol := enrol(t, origin, "volunteer")
	waitAlive(t, vol, origin, vol)
	eventually(t, swarmWait, 200*time.Millisecond, func() error {
		g, signed, err := origin.d.granted(t, vol.id)
		if err != nil {
			return err
		}
		if g != membership.DefaultGrant || !signed {
			return fmt.Errorf("the origin lists the volunteer granted %d, signed %v; want the default %d, signed", g, signed, membership.DefaultGrant)
		}
		return nil
	})
	if r := origin.d.run(t, "grant", vol.id, "--capacity", "lots"); r.code != 2 || !strings.Contains(r.stderr, "want a size") {
		t.Errorf("grant --capacity lots: want a usage error\n%s", r)
	}
	if r := vol.d.run(t, "grant", vol.id, "--capacity", "1GiB"); r.code == 0 {
		t.Errorf("grant on a volunteer: want a refusal\n%s", r)
	}
	origin.d.must(t, "grant", vol.id[:20], "--capacity", "1.5GiB")
	for _, n := range []*swarmNode{origin, vol} {
		eventually(t, swarmWait, 200*time.Millisecond, func() error {
			g, _, err := n.d.granted(t, vol.id)
			if err != nil {
				return err
			}
			if g != 3<<29 {
				return fmt.Errorf("%s lists the volunteer granted %d, want %d", n.d, g, 3<<29)
			}
			return nil
		})
	}
}
