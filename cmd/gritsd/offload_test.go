package main_test

// Integration tests for offload: an origin that keeps only part of its
// content, storage nodes that hold the library, audits. Real processes,
// real QUIC and HTTP/3 on loopback, real SIGKILLs and a real rm in a
// storage node's data directory.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/offload"
)

// offloadWait bounds one wait for offload to converge: storage nodes
// syncing and being verified, a pass, an audit catching a loss. With
// audits every 200 ms the work takes seconds; the margin is for a loaded
// machine under the race detector.
const offloadWait = 60 * time.Second

// setOffload gives d the test's origin settings: fast audits, a long
// grace unless the test says otherwise.
func (d dataDir) setOffload(t *testing.T, storeMax int64, grace string) {
	t.Helper()
	for k, v := range map[string]string{"store_max": fmt.Sprint(storeMax), "offload_replicas": "2",
		"audit_interval": `"200ms"`, "audit_timeout": `"5s"`, "offload_grace": strconv.Quote(grace)} {
		d.setConfig(t, k, v)
	}
}

// offloadEntries is a site of a dozen multi-chunk files and a few small
// ones: about 9 MiB in 40-odd chunks.
func offloadEntries() []entry {
	es := []entry{
		{path: "index.html", data: []byte("<!doctype html>\n<h1>offloaded</h1>\n")},
		{path: "small/a.txt", data: []byte("a small file\n")},
		{path: "small/b.txt", data: bytes.Repeat([]byte("b"), 10_000)},
	}
	for i := range 12 {
		es = append(es, entry{path: fmt.Sprintf("media/%02d.bin", i), data: randBytes(uint64(500+i), (1+i%5)*chunkSize-i*1000)})
	}
	return es
}

func contentBytes(es []entry) int64 {
	var n int64
	for _, e := range es {
		n += int64(len(e.data))
	}
	return n
}

// offloadStatus is the origin's status with its offload part.
type offloadStatus struct {
	Offload *offload.Stats `json:"offload"`
}

func (d dataDir) offloadStatus(t *testing.T) (offload.Stats, error) {
	t.Helper()
	r := d.run(t, "status", "--json")
	if r.code != 0 {
		return offload.Stats{}, fmt.Errorf("status: %s", r)
	}
	var st offloadStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		return offload.Stats{}, fmt.Errorf("status --json: %v\n%s", err, r)
	}
	if st.Offload == nil {
		return offload.Stats{}, fmt.Errorf("the origin's status has no offload part\n%s", r)
	}
	return *st.Offload, nil
}

func nodeState(st offload.Stats, id string) (offload.NodeStats, bool) {
	for _, n := range st.Nodes {
		if n.ID.String() == id {
			return n, true
		}
	}
	return offload.NodeStats{}, false
}

// waitOffloaded waits until every storage node given is verified and
// the origin's content on disk is within its budget, with something
// offloaded.
func waitOffloaded(t *testing.T, origin *swarmNode, storage ...*swarmNode) offload.Stats {
	t.Helper()
	var st offload.Stats
	start := time.Now()
	eventually(t, offloadWait, 200*time.Millisecond, func() error {
		var err error
		if st, err = origin.d.offloadStatus(t); err != nil {
			return err
		}
		for _, s := range storage {
			n, ok := nodeState(st, s.id)
			if !ok || n.State != "verified" {
				return fmt.Errorf("storage node %s: %+v", s.id[:16], n)
			}
		}
		if st.OffloadedBytes == 0 || st.StoreBytes > st.StoreMax || st.Warning != "" {
			return fmt.Errorf("%d of %d bytes offloaded, %d bytes of content on disk for a budget of %d (%s)",
				st.OffloadedBytes, st.ContentBytes, st.StoreBytes, st.StoreMax, st.Warning)
		}
		return nil
	})
	t.Logf("offloaded %d of %d bytes to %d verified storage nodes %v after they started", st.OffloadedBytes, st.ContentBytes, len(storage), time.Since(start).Round(time.Millisecond))
	return st
}

// diskContent sums the block files in d's store that are not tree nodes
// (treeBytes, from status): what the budget bounds, measured on disk.
func (d dataDir) diskContent(t *testing.T, treeBytes int64) int64 {
	t.Helper()
	var n int64
	for _, res := range []string{"pinned", "cached"} {
		err := filepath.WalkDir(d.path("blocks", res), func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			fi, err := de.Info()
			if err == nil {
				n += fi.Size()
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return n - treeBytes
}

// loadAll fetches every file of es from base over HTTP/3 and returns
// the paths that failed, with the answers; a 200 must be byte-exact.
func loadAll(t *testing.T, c gwClient, base string, es []entry) map[string]string {
	t.Helper()
	failed := map[string]string{}
	for _, e := range es {
		resp, body, err := c.try(http.MethodGet, base+gwURLPath(e.path), nil)
		switch {
		case err != nil:
			failed[e.path] = err.Error()
		case resp.StatusCode != http.StatusOK:
			failed[e.path] = fmt.Sprintf("%s: %s", resp.Status, body)
		case !bytes.Equal(body, e.data):
			t.Fatalf("%s GET %s: 200 with %d bytes that are not the file's %d (first difference at %d)", c.name, e.path, len(body), len(e.data), firstDiff(body, e.data))
		}
	}
	return failed
}

func (n *swarmNode) https(t *testing.T) string {
	addr, _ := gwHTTPS(t, n.srv)
	return "https://" + addr
}

// startOffloadSwarm makes an origin with store_max at frac of entries,
// imports them, and starts it with two storage nodes.
func startOffloadSwarm(t *testing.T, entries []entry, frac float64, grace string) (*swarmNode, string, []*swarmNode) {
	t.Helper()
	d, key := newOriginWithKey(t)
	d.setOffload(t, int64(float64(contentBytes(entries))*frac), grace)
	d.importTree(t, newSource(t, entries))
	origin := startNode(t, d, "")
	origin.id = d.mustStatus(t).Node
	return origin, key, []*swarmNode{enrol(t, origin, "storage"), enrol(t, origin, "storage")}
}

var blockNameRE = regexp.MustCompile(`block (b3-[0-9a-f]{64})`)

// TestOffloadEndToEnd: an origin with store_max at 30% of its site and
// two storage nodes lets its store fall to the budget once they are
// verified; every file then loads byte-exact over HTTP/3 from the
// origin, from a volunteer, and through gritsd get. With one storage
// node killed everything still loads; with both, files held only by
// them fail with an error naming the missing block (never wrong bytes),
// and come back when a storage node returns.
func TestOffloadEndToEnd(t *testing.T) {
	t.Parallel()
	entries := offloadEntries()
	origin, key, storage := startOffloadSwarm(t, entries, 0.3, "10m")
	vol := enrol(t, origin, "volunteer")
	st := waitOffloaded(t, origin, storage...)
	if got := origin.d.diskContent(t, st.TreeBytes); got > st.StoreMax {
		t.Errorf("the origin's store holds %d bytes of content on disk, budget %d", got, st.StoreMax)
	}

	oc := gwNewH3(t, gwCAPool(t, origin.d.path("ca.pem")))
	obase := origin.https(t)
	if failed := loadAll(t, oc, obase, entries); len(failed) > 0 {
		t.Fatalf("over HTTP/3 from the origin: %v", failed)
	}

	// From the volunteer, as the service worker reads: a verified lookup
	// and the blocks, over HTTP/3 (it fetches them from the storage
	// nodes and the origin).
	// Members get their development certificates from the origin's CA.
	vc := gwNewH3(t, gwCAPool(t, origin.d.path("ca.pem")))
	vbase := vol.https(t)
	siteKey := gwParseKey(t, key)
	for _, e := range entries {
		_, f, inline, nodes := gwLookup(t, vc, vbase, e.path, siteKey, len(e.data))
		got := inline
		if got == nil {
			got, _ = gwFetchFile(t, vc, vbase, f, nodes)
		}
		if !bytes.Equal(got, e.data) {
			t.Errorf("from the volunteer over HTTP/3: %s: %d bytes, want %d", e.path, len(got), len(e.data))
		}
	}

	getAll := func(what string, es []entry) {
		t.Helper()
		for _, e := range es {
			r := run(t, "get", "--peer", origin.srv.addr, "--site-key", key, "/"+e.path, "-o", "-")
			if r.code != 0 || r.stdout != string(e.data) {
				t.Errorf("%s: get /%s from the origin: want exit 0 and the file\n%s", what, e.path, r)
			}
		}
	}
	phase0 := time.Now()
	getAll("offloaded", entries)
	t.Logf("gritsd get of every file: %v", time.Since(phase0).Round(time.Millisecond))
	st, err := origin.d.offloadStatus(t)
	if err != nil {
		t.Fatal(err)
	}
	if st.FetchedBack == 0 || st.StoreBytes > st.StoreMax {
		t.Errorf("after reading everything: fetched back %d blocks, %d bytes of content on disk for a budget of %d; want blocks back, within the budget",
			st.FetchedBack, st.StoreBytes, st.StoreMax)
	}

	// One storage node gone: the other has everything.
	storage[0].srv.stop(t, syscall.SIGKILL)
	phase := time.Now()
	if failed := loadAll(t, oc, obase, entries); len(failed) > 0 {
		t.Fatalf("with one storage node killed, over HTTP/3 from the origin: %v", failed)
	}
	getAll("one storage node killed", entries[len(entries)-4:])
	t.Logf("with one storage node killed, every file loaded in %v", time.Since(phase).Round(time.Millisecond))

	// Both gone: what only they hold fails, naming the block.
	storage[1].srv.stop(t, syscall.SIGKILL)
	phase = time.Now()
	failed := loadAll(t, oc, obase, entries)
	t.Logf("with both killed, loading every file took %v", time.Since(phase).Round(time.Millisecond))
	if len(failed) == 0 {
		t.Fatalf("with both storage nodes killed every file still loads from an origin holding %d of %d bytes", st.LocalBytes, st.ContentBytes)
	}
	for p, msg := range failed {
		m := blockNameRE.FindStringSubmatch(msg)
		if !strings.HasPrefix(msg, "503") || !strings.Contains(msg, "content unavailable") || m == nil {
			t.Errorf("GET %s with both storage nodes gone: want 503 content unavailable naming the block, got %q", p, msg)
			continue
		}
		h, err := blockstore.ParseHash(m[1])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(origin.d.blockPath(h)); err == nil {
			t.Errorf("GET %s: names block %s as unavailable, but the origin has it", p, m[1])
		}
	}
	t.Logf("with both storage nodes killed, %d of %d files fail, e.g. %s", len(failed), len(entries), firstOf(failed))
	var missing entry
	for _, e := range entries {
		if _, ok := failed[e.path]; ok {
			missing = e
			break
		}
	}
	r := run(t, "get", "--peer", origin.srv.addr, "--site-key", key, "/"+missing.path, "-o", filepath.Join(t.TempDir(), "out"))
	if r.code != 1 || !strings.Contains(r.stderr, missing.path) {
		t.Errorf("get /%s with both storage nodes gone: want exit 1 naming the file\n%s", missing.path, r)
	}
	r = origin.d.run(t, "cat", "/"+missing.path)
	if r.code != 1 || !blockNameRE.MatchString(r.stderr) || !strings.Contains(r.stderr, "held only by storage nodes") {
		t.Errorf("cat /%s on the origin with both storage nodes gone: want exit 1 naming the block held only by storage nodes\n%s", missing.path, r)
	}

	// A storage node returns (at a new port): everything loads again.
	back := startNode(t, storage[1].d, storage[1].id)
	phase = time.Now()
	eventually(t, offloadWait, 500*time.Millisecond, func() error {
		if f := loadAll(t, oc, obase, entries); len(f) > 0 {
			return fmt.Errorf("%d files still fail, e.g. %s", len(f), firstOf(f))
		}
		return nil
	})
	t.Logf("a storage node back: every file loads %v after it started", time.Since(phase).Round(time.Millisecond))
	_ = back
	origin.d.checkFiles(t, entries)
}

func firstOf(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		return ""
	}
	return keys[0] + ": " + m[keys[0]]
}

// TestOffloadAuditCatchesLoss: a storage node that silently loses 5% of
// its block files (rm in its data directory) is caught by audit and
// reported; the origin then holds everything again (nothing it
// evicted is left with fewer than two audited copies) and says it is
// over budget; a third storage node, once verified, lets it offload
// again.
func TestOffloadAuditCatchesLoss(t *testing.T) {
	t.Parallel()
	entries := offloadEntries()
	origin, _, storage := startOffloadSwarm(t, entries, 0.3, "10m")
	st := waitOffloaded(t, origin, storage...)
	lossy := storage[0]

	// Audits read file content (tree nodes never leave the origin, so
	// their loss on a storage node does not count for offload): the loss
	// is taken from the content's block files.
	chunks := map[string]bool{}
	for _, e := range entries {
		for off := 0; off < len(e.data); off += chunkSize {
			chunks[blockstore.Sum(e.data[off:min(len(e.data), off+chunkSize)]).Hex()] = true
		}
	}
	var files []string
	err := filepath.WalkDir(lossy.d.path("blocks", "pinned"), func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() && chunks[de.Name()] {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	rng.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
	n := max(2, len(files)/20)
	for _, p := range files[:n] {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	removed := time.Now()
	t.Logf("removed %d of %d content block files from storage node %s", n, len(files), lossy.id[:16])

	local := st.LocalBytes
	eventually(t, offloadWait, 100*time.Millisecond, func() error {
		var err error
		if st, err = origin.d.offloadStatus(t); err != nil {
			return err
		}
		// Once the loss is known, nothing leaves the origin's disk.
		ns, _ := nodeState(st, lossy.id)
		if ns.State == "failed" {
			if st.LocalBytes < local {
				t.Fatalf("after the node failed, the origin's local content fell from %d to %d bytes", local, st.LocalBytes)
			}
			local = st.LocalBytes
		}
		if ns.State != "failed" || !blockNameRE.MatchString(ns.Reason) || st.LocalBytes != st.ContentBytes {
			return fmt.Errorf("lossy node %s (%s); %d of %d bytes on the origin", ns.State, ns.Reason, st.LocalBytes, st.ContentBytes)
		}
		return nil
	})
	t.Logf("caught and re-replicated %v after the rm: %s", time.Since(removed).Round(time.Millisecond), nodeOf(st, lossy.id).Reason)
	if st.Warning == "" || st.FetchedBack == 0 {
		t.Errorf("after re-replication: want a warning that the budget cannot be met and blocks fetched back; got %q, %d", st.Warning, st.FetchedBack)
	}
	if !strings.Contains(origin.srv.stderr.String(), "storage node failed") {
		t.Errorf("the origin did not log the failure\n%s", origin.srv)
	}
	r := origin.d.must(t, "status")
	t.Logf("gritsd status:\n%s", r.stdout)
	if !strings.Contains(r.stdout, "FAILED "+lossy.id[:16]) || !strings.Contains(r.stdout, "WARNING: ") {
		t.Errorf("status: want the failed node and the warning\n%s", r)
	}
	r = origin.d.run(t, "fsck")
	if r.code != 0 || strings.Contains(r.stderr, "held only by storage nodes") {
		t.Errorf("fsck on the origin after re-replication: want everything local and clean\n%s", r)
	}

	third := enrol(t, origin, "storage")
	waitOffloaded(t, origin, storage[1], third)
}

func nodeOf(st offload.Stats, id string) offload.NodeStats {
	n, _ := nodeState(st, id)
	return n
}

// TestOffloadOriginKilledDuringEviction SIGKILLs the origin as its
// store starts to shrink; after a restart fsck --remote is clean, every
// file reads back, and the budget is reached again.
func TestOffloadOriginKilledDuringEviction(t *testing.T) {
	t.Parallel()
	entries := offloadEntries()
	origin, _, storage := startOffloadSwarm(t, entries, 0.3, "10m")
	count := func() (pinned, cached int) {
		for _, res := range []string{"pinned", "cached"} {
			files, _ := filepath.Glob(origin.d.path("blocks", res, "*", "*"))
			if res == "pinned" {
				pinned = len(files)
			} else {
				cached = len(files)
			}
		}
		return
	}
	p0, _ := count()
	deadline := time.Now().Add(offloadWait)
	for {
		// The first evicted block (pinned ones move to the cache first,
		// then the quota evicts): kill it there.
		p, c := count()
		if p+c < p0 {
			origin.srv.stop(t, syscall.SIGKILL)
			pk, ck := count()
			t.Logf("killed the origin with %d pinned and %d cached block files (%d pinned before)", pk, ck, p0)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the origin did not start evicting within %v", offloadWait)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Restarted origins do not yet find their swarm again by themselves
	// (the origin has no seeds): give it the storage nodes' gossip
	// addresses.
	origin.d.setConfig(t, "seeds", fmt.Sprintf("[%q, %q]", storage[0].gossip, storage[1].gossip))
	restarted := startNode(t, origin.d, origin.id)
	r := origin.d.run(t, "fsck", "--remote")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "no problems found") {
		t.Errorf("fsck --remote after the kill: want exit 0 and no problems\n%s", r)
	}
	t.Logf("fsck --remote: %s", strings.TrimSpace(r.stderr))
	origin.d.checkFiles(t, entries)
	st := waitOffloaded(t, restarted, storage...)
	r = origin.d.run(t, "fsck", "--remote")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "proved") {
		t.Errorf("fsck --remote once offloaded again: want exit 0, no problems, storage nodes proving %d offloaded bytes\n%s", st.OffloadedBytes, r)
	}
}
