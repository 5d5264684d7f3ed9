package main_test

// A rolling upgrade: a swarm of the previous release (an origin and two
// volunteers), a browser reading the site through the service worker the
// whole time, and each node in turn stopped and started again with this
// build, on the same ports and data directory, as an operator upgrades.
// No file the page asks for may fail or come back wrong, and afterwards
// the upgraded swarm publishes as before.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/chromium"
)

// previousRelease is the commit of the release before this one: the last
// commit that landed before this release's work. Move it forward when a
// release lands. The test builds gritsd from it, so it needs the
// repository's history (a full clone).
const previousRelease = "ceceb7267347d5d08facaba68093322ba7dab39b"

var previous struct {
	once sync.Once
	bin  string
	err  error
}

// previousBin builds gritsd as of previousRelease (once per test run).
func previousBin(t *testing.T) string {
	t.Helper()
	previous.once.Do(func() {
		top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			previous.err = fmt.Errorf("git rev-parse: %w (the upgrade test builds the previous release from the repository)", err)
			return
		}
		repo := strings.TrimSpace(string(top))
		if out, err := exec.Command("git", "-C", repo, "cat-file", "-e", previousRelease+"^{commit}").CombinedOutput(); err != nil {
			previous.err = fmt.Errorf("commit %s (the previous release) is not in %s: %v %s; the upgrade test needs the history (a full clone, not --depth)", previousRelease[:12], repo, err, out)
			return
		}
		dir := filepath.Join(filepath.Dir(gritsdBin), "previous")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			previous.err = err
			return
		}
		archive := exec.Command("git", "-C", repo, "archive", "--format=tar", previousRelease)
		untar := exec.Command("tar", "-x", "-C", dir)
		pipe, err := archive.StdoutPipe()
		if err != nil {
			previous.err = err
			return
		}
		untar.Stdin = pipe
		if err := untar.Start(); err != nil {
			previous.err = err
			return
		}
		if err := archive.Run(); err != nil {
			previous.err = fmt.Errorf("git archive %s: %w", previousRelease[:12], err)
			return
		}
		if err := untar.Wait(); err != nil {
			previous.err = fmt.Errorf("untar the previous release: %w", err)
			return
		}
		bin := filepath.Join(dir, "gritsd-previous")
		build := exec.Command("go", "build", "-o", bin, "./cmd/gritsd")
		build.Dir = dir
		if out, err := build.CombinedOutput(); err != nil {
			previous.err = fmt.Errorf("build the previous release: %v\n%s", err, out)
			return
		}
		previous.bin = bin
	})
	if previous.err != nil {
		t.Fatal(previous.err)
	}
	return previous.bin
}

// runBin runs another build of gritsd and fails the test unless it exits 0.
func runBin(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = baseEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// upgradeNode is one node of the upgraded swarm: its ports never change.
type upgradeNode struct {
	*swarmNode
	role  string
	flags []string // serve flags of both releases
	https string
}

func (n *upgradeNode) start(t *testing.T, bin string, extra ...string) {
	t.Helper()
	n.srv = startServeBin(t, bin, n.d, append(append([]string(nil), n.flags...), extra...)...)
}

func TestRollingUpgrade(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("%s: %v (apt-get install chromium; .ci/run does)", chromiumPath, err)
	}
	prev := previousBin(t)
	files := demoFiles(t)
	delete(files, "/media/testcard.webm") // 1.5 MB of video adds time, not coverage
	// The load reads files it has not read before, so that the worker
	// must go to the swarm for them (it keeps what it verified).
	const loadFiles = 800
	var loadPaths []string
	for i := range loadFiles {
		p := fmt.Sprintf("/load/%02d/%03d.bin", i%16, i)
		files[p] = randBytes(uint64(1000+i), 4<<10+i*97%(60<<10))
		loadPaths = append(loadPaths, p)
	}

	// One certificate for every node, from a CA of the test's own, so
	// that both releases serve the same one and Chromium pins it.
	ca, err := gateway.CreateDevCA(t.TempDir(), "upgrade-test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := writeLeaf(t, leaf)

	newNode := func(d dataDir, role string) *upgradeNode {
		n := &upgradeNode{swarmNode: &swarmNode{d: d}, role: role,
			https: fmt.Sprintf("127.0.0.1:%d", fixedPort(t))}
		n.gossip = fmt.Sprintf("127.0.0.1:%d", fixedPort(t))
		n.flags = []string{"--listen", fmt.Sprintf("127.0.0.1:%d", fixedPort(t)), "--gossip", n.gossip, "--gossip-profile", "local",
			"--https", n.https, "--tls-cert", certPath, "--tls-key", keyPath}
		return n
	}

	// The swarm of the previous release.
	src := t.TempDir()
	for p, b := range files {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(src, p), b, 0o644)
	}
	od := dataDir(filepath.Join(t.TempDir(), "origin"))
	runBin(t, prev, "--data", string(od), "init", "--origin")
	runBin(t, prev, "--data", string(od), "import", src)
	origin := newNode(od, "origin")
	origin.start(t, prev)
	origin.id = od.mustStatus(t).Node
	var vols []*upgradeNode
	for i := range 2 {
		tok := strings.TrimSpace(runBin(t, prev, "--data", string(od), "token", "--origin-addr", origin.srv.addr))
		vd := dataDir(filepath.Join(t.TempDir(), fmt.Sprint("volunteer", i)))
		out := runBin(t, prev, "--data", string(vd), "join", tok)
		m := nodeIDLineRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("join: want a node-id line, got %q", out)
		}
		v := newNode(vd, "volunteer")
		v.id = m[1]
		v.start(t, prev)
		vols = append(vols, v)
	}
	all := append([]*upgradeNode{origin}, vols...)
	whole := func() {
		t.Helper()
		var want []*swarmNode
		for _, n := range all {
			want = append(want, n.swarmNode)
		}
		for _, n := range want {
			waitAlive(t, n, want...)
		}
	}
	whole()

	// A browser on the site, its worker installed by the old origin.
	var quic []string
	for _, n := range all {
		quic = append(quic, n.https)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	b, err := chromium.Start(ctx, chromium.Options{Profile: t.TempDir(), SPKI: gateway.SPKIHash(leaf.Leaf), ForceQUIC: quic})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	s := &swSite{t: t, originURL: "https://" + origin.https}
	s.open(b, "/")

	// The load: round after round, the page fetches the next files it
	// has not read yet, through the worker, and checks every byte.
	const perRound = 8
	var rounds, failures, fetched atomic.Int64
	var loadErr sync.Mutex
	var firstErrs []string
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	// gate pauses the load between rounds while held (the files it has
	// not read yet are finite).
	var gate sync.Mutex
	go func() {
		defer close(loadDone)
		for next := 0; ; next += perRound {
			select {
			case <-stop:
				return
			default:
			}
			gate.Lock()
			gate.Unlock()
			var paths []string
			for i := range perRound {
				paths = append(paths, loadPaths[(next+i)%len(loadPaths)])
			}
			list, _ := json.Marshal(paths)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			got := map[string]string{}
			err := b.Eval(ctx, fmt.Sprintf(hashesJS, list), &got)
			cancel()
			bad := 0
			var why []string
			if err != nil {
				bad, why = len(paths), []string{err.Error()}
			}
			for _, p := range paths {
				sum := sha256.Sum256(files[p])
				if err == nil && got[p] != hex.EncodeToString(sum[:]) {
					bad++
					why = append(why, fmt.Sprintf("%s: %s", p, got[p]))
				}
			}
			if bad > 0 {
				failures.Add(int64(bad))
				loadErr.Lock()
				if len(firstErrs) < 10 {
					firstErrs = append(firstErrs, fmt.Sprintf("round %d: %s", rounds.Load()+1, strings.Join(why, "; ")))
				}
				loadErr.Unlock()
			}
			fetched.Add(int64(len(paths)))
			rounds.Add(1)
		}
	}()
	// waitRounds waits until n more rounds have finished.
	waitRounds := func(n int64) {
		t.Helper()
		target := rounds.Load() + n
		eventually(t, 3*time.Minute, 100*time.Millisecond, func() error {
			if r := rounds.Load(); r < target {
				return fmt.Errorf("%d load rounds, waiting for %d", r, target)
			}
			return nil
		})
	}
	waitRounds(2)

	// Volunteers first, then the origin: readers before the writer, as
	// docs/operator.md says (a new origin may write trees an old reader
	// cannot decode).
	for _, n := range append(vols, origin) {
		n.srv.stop(t, syscall.SIGTERM)
		n.start(t, gritsdBin, "--admin", "off")
		whole()
		if n.role == "volunteer" {
			// As an operator does (docs/operator.md, "Upgrades"): the
			// next node goes only once this one can serve again. The
			// worker benched it while it was away (1 s, doubling);
			// restarting the origin while every volunteer is still
			// benched would leave a worker of the previous release
			// nowhere to go. The load pauses meanwhile: the bench ends
			// with time, and the unread files are finite.
			waitRounds(2)
			gate.Lock()
			eventually(t, 2*time.Minute, 200*time.Millisecond, func() error {
				var st struct {
					Peers []struct {
						URL     string `json:"url"`
						Backoff bool   `json:"backoff"`
						Dropped bool   `json:"dropped"`
					} `json:"peers"`
				}
				eval(t, b, 10*time.Second, `new Promise((ok) => {
  const ch = new MessageChannel();
  ch.port1.onmessage = (e) => ok(e.data);
  navigator.serviceWorker.controller.postMessage({ type: 'grits-stats' }, [ch.port2]);
})`, &st)
				for _, p := range st.Peers {
					if p.URL == "https://"+n.https {
						if p.Backoff || p.Dropped {
							return fmt.Errorf("the worker still benches volunteer %s (%+v)", n.id[:16], p)
						}
						return nil
					}
				}
				return fmt.Errorf("the worker does not list volunteer %s at https://%s: %+v", n.id[:16], n.https, st.Peers)
			})
			gate.Unlock()
		}
		waitRounds(2)
		t.Logf("%s %s upgraded; %d load rounds so far, %d failed fetches; worker %+v", n.role, n.id[:16], rounds.Load(), failures.Load(), workerStats(t, b))
	}
	// Upgraded, the swarm signs what each node says about itself: every
	// node lists every member as signed (design.md, "Upgrades").
	for _, n := range all {
		for _, m := range all {
			eventually(t, swarmWait, 200*time.Millisecond, func() error {
				if _, signed, err := n.d.granted(t, m.id); err != nil || !signed {
					return fmt.Errorf("%s lists %s as signed %v (%v)", n.role, m.id[:16], signed, err)
				}
				return nil
			})
		}
	}
	close(stop)
	<-loadDone
	if f := failures.Load(); f > 0 {
		t.Errorf("%d of %d fetches through the worker failed or were wrong during the rolling upgrade:\n%s",
			f, fetched.Load(), strings.Join(firstErrs, "\n"))
	}

	// The upgraded swarm publishes: a new import reaches every volunteer,
	// and a page (its worker now the new release's) reads it.
	newCSS := append(append([]byte(nil), files["/css/site.css"]...), "\nbody { border-top: 3px solid rgb(7, 8, 9); }\n"...)
	files["/css/site.css"] = newCSS
	os.WriteFile(filepath.Join(src, "css", "site.css"), newCSS, 0o644)
	od.must(t, "import", src)
	var vnodes []*swarmNode
	for _, v := range vols {
		vnodes = append(vnodes, v.swarmNode)
	}
	waitSeq(t, 2, latestRoot(t, od), vnodes...)
	// The page comes from the origin or the worker (a static site's
	// default), which loads it again if it held the old root: either way
	// the navigation brings the new root.
	s.openUntil(b, "/about.html", fmt.Sprintf(rootSeqAtLeastJS, 2), 30*time.Second)
	checkThroughWorker(t, b, files)
}
