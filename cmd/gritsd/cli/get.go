package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runGet(ctx context.Context, c *cmdContext) error {
	var peers stringList
	c.flags.Var(&peers, "peer", "a node to fetch from, HOST:PORT (repeat for more)")
	out := c.flags.String("o", "", "write to this file (default: the path's base name; - for stdout)")
	siteKeyFlag := c.flags.String("site-key", "", "the site's public key (default: from the data directory)")
	stall := c.flags.Duration("stall-timeout", 10*time.Second, "give up on a peer that sends nothing for this long")
	if err := c.parse(1, 1); err != nil {
		return err
	}
	if len(peers) == 0 {
		return usagef("at least one --peer HOST:PORT is needed")
	}
	p, err := tree.ParsePath(c.args[0])
	if err != nil {
		return usagef("%v", err)
	}
	if len(p) == 0 {
		return usagef("%s is the root directory; name a file", c.args[0])
	}
	dest := *out
	if dest == "" {
		dest = p[len(p)-1]
	}

	// The site key, and the newest root this node already trusts, come
	// from the data directory when there is one.
	var siteKey tree.PublicKey
	var known *tree.Root
	if *siteKeyFlag != "" {
		if siteKey, err = tree.ParsePublicKey(*siteKeyFlag); err != nil {
			return usagef("--site-key: %v", err)
		}
	}
	if d, err := c.open(ctx); err == nil {
		if siteKey.IsZero() {
			siteKey = d.Config.SiteKey
		}
		if r, ok := d.Log.Latest(); ok && r.SiteKey == siteKey {
			known = &r
		}
		d.Close()
	} else if siteKey.IsZero() && !errors.Is(err, datadir.ErrNotInitialized) {
		return err
	}
	if siteKey.IsZero() {
		return usagef("no site key: pass --site-key ed25519-... or use a data directory that has one")
	}

	client, err := transport.NewClient(transport.ClientConfig{SiteKey: siteKey, StallTimeout: *stall, Logger: c.logger})
	if err != nil {
		return err
	}
	defer client.Close()
	if known != nil {
		if err := client.AcceptRoot(*known); err != nil {
			c.logger.Warn("the local root does not verify; ignoring it", "err", err)
		}
	}
	start := time.Now()
	res, good, err := lookupAcross(ctx, c, client, peers, p)
	if err != nil {
		return err
	}
	switch {
	case res.Status != tree.Found:
		return &exitError{code: ExitFailure, msg: fmt.Sprintf("%v (root seq %d)", res.Err(p), res.Root.Seq)}
	case res.Entry.Kind == tree.KindDir:
		return fmt.Errorf("%s is a directory; gritsd get fetches files", p)
	case res.Entry.Kind == tree.KindSymlink:
		return fmt.Errorf("%s is a symlink to %q; grits does not follow symlinks", p, res.Entry.Target)
	}
	f := res.Node.(*tree.FileNode)
	var stats transport.FetchStats
	err = writeAtomically(dest, c.Stdout, func(w io.WriterAt) error {
		if res.HasInline {
			_, err := w.WriteAt(res.Inline, 0)
			return err
		}
		stats, err = client.FetchFile(ctx, good, f, w, transport.FetchOptions{
			OnBadPeer: func(peer string, err error) { c.errorf("gritsd get: %v (not used again)\n", err) },
		})
		return err
	})
	if errors.Is(err, transport.ErrUnavailable) {
		return fmt.Errorf("%s: %w", p, err)
	}
	if err != nil {
		return err
	}
	from := "inline in the lookup"
	if !res.HasInline {
		var parts []string
		for peer, n := range stats.BytesFrom {
			parts = append(parts, fmt.Sprintf("%s %s", peer, humanBytes(n)))
		}
		sort.Strings(parts)
		from = "from " + strings.Join(parts, ", ")
	}
	c.errorf("get: %s (%s, root seq %d) %s in %v\n", p, humanBytes(int64(f.Size)), res.Root.Seq, from, time.Since(start).Round(time.Millisecond))
	return nil
}

// rootGrace is how long get waits, after a successful lookup, for the
// other peers' roots (one of them could be newer).
const rootGrace = 500 * time.Millisecond

// lookupAcross asks the first peer for the path under its latest root
// (root, proof and a small file in one round trip) while asking the
// others for their roots; if another peer has a newer root, the lookup
// is repeated there. A peer that fails or lies is skipped with a message.
// It returns the verified result and the peers that answered.
func lookupAcross(ctx context.Context, c *cmdContext, client *transport.Client, peers []string, p tree.Path) (*transport.LookupResult, []string, error) {
	var (
		mu      sync.Mutex
		bad     = map[string]bool{} // failed or lied: not used for blocks
		errs    []string
		newest  *tree.Root
		holder  string
		skipped = func(peer string, err error) {
			mu.Lock()
			defer mu.Unlock()
			// Bad data or no answer at all: either way the blocks are
			// better asked of the peers that did answer.
			bad[peer] = true
			errs = append(errs, err.Error())
			c.errorf("gritsd get: %v (skipped)\n", err)
		}
		offer = func(peer string, r tree.Root) {
			mu.Lock()
			defer mu.Unlock()
			if newest == nil || r.Seq > newest.Seq {
				newest, holder = &r, peer
			}
		}
	)
	// The root requests belong to this function: cancelled and waited
	// for before it returns, so none writes to stderr afterwards.
	rctx, cancelRoots := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancelRoots()
	for _, peer := range peers[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := client.Root(rctx, peer)
			if rctx.Err() != nil && ctx.Err() == nil {
				// Given up on after the grace period: not known to be
				// alive, so not asked for blocks either.
				skipped(peer, fmt.Errorf("peer %s: no answer within %v", peer, rootGrace))
				return
			}
			if err != nil {
				skipped(peer, err)
				return
			}
			offer(peer, r)
		}()
	}
	var res *transport.LookupResult
	for i, peer := range peers {
		var root *tree.Root
		if i > 0 {
			// The first answer failed: use the newest root seen so far.
			wg.Wait()
			if bad[peer] {
				continue // its root request failed already: no second dial
			}
			root = newest
		}
		r, err := client.Lookup(ctx, peer, root, p, proto.InlineMax)
		if err != nil {
			skipped(peer, err)
			continue
		}
		offer(peer, r.Root)
		res = r
		break
	}
	// Other peers' roots only matter if one is newer; once the lookup
	// has an answer, a dead peer must not hold it up for a dial timeout.
	rootsDone := make(chan struct{})
	go func() { wg.Wait(); close(rootsDone) }()
	if res != nil {
		select {
		case <-rootsDone:
		case <-time.After(rootGrace):
		case <-ctx.Done():
		}
	} else {
		<-rootsDone
	}
	cancelRoots()
	mu.Lock()
	if res == nil {
		defer mu.Unlock()
		return nil, nil, fmt.Errorf("%w: no peer could answer the lookup of %s:\n  %s", transport.ErrUnavailable, p, strings.Join(errs, "\n  "))
	}
	latest, from := newest, holder
	var candidates []string
	if latest != nil && latest.Seq > res.Root.Seq {
		candidates = append(candidates, from)
		for _, peer := range peers {
			if peer != from && !bad[peer] {
				candidates = append(candidates, peer)
			}
		}
	}
	mu.Unlock()
	// A newer root was offered: look the path up under it, at the peer
	// that offered it first, then at the others. If none can, the answer
	// under the older root still stands (it is verified).
	for _, peer := range candidates {
		r, err := client.Lookup(ctx, peer, latest, p, proto.InlineMax)
		if err != nil {
			skipped(peer, fmt.Errorf("lookup under root seq %d: %w", latest.Seq, err))
			continue
		}
		res = r
		break
	}
	mu.Lock()
	defer mu.Unlock()
	var good []string
	for _, peer := range peers {
		if !bad[peer] {
			good = append(good, peer)
		}
	}
	return res, good, nil
}

// writeAtomically writes a file through a temporary file in the same
// directory, synced and renamed into place, so dest is either the old
// file or the whole new one. dest "-" streams the finished file to
// stdout instead.
func writeAtomically(dest string, stdout io.Writer, fill func(io.WriterAt) error) error {
	dir := filepath.Dir(dest)
	// Where the bytes go once they are all there and verified: a regular
	// file is replaced by a rename (through a symlink, its target is);
	// anything else (a device such as /dev/null, a pipe) is written to,
	// never renamed over.
	var through io.Writer
	switch st, err := os.Stat(dest); {
	case dest == "-":
		dir, through = os.TempDir(), stdout
	case err == nil && st.IsDir():
		return fmt.Errorf("%s is a directory; give the file's name with -o", dest)
	case err == nil && !st.Mode().IsRegular():
		f, err := os.OpenFile(dest, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		dir, through = os.TempDir(), f
	case err == nil:
		if real, err := filepath.EvalSymlinks(dest); err == nil {
			dest, dir = real, filepath.Dir(real)
		}
	}
	tmp, err := os.CreateTemp(dir, ".gritsd-get-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := fill(tmp); err != nil {
		return err
	}
	if through != nil {
		if _, err := tmp.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := io.Copy(through, tmp)
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
