package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/tree"
)

// resolveRoot picks the tree to read: the latest root in the log, or
// --root given as a root record hash or a tree hash.
func resolveRoot(ctx context.Context, d *datadir.Dir, flagVal string) (blockstore.Hash, error) {
	if flagVal == "" {
		r, ok := d.Log.Latest()
		if !ok {
			return blockstore.Hash{}, errors.New("nothing imported yet: the root log is empty (run gritsd import, or pass --root)")
		}
		return r.Tree, nil
	}
	h, err := blockstore.ParseHash(flagVal)
	if err != nil {
		return blockstore.Hash{}, usagef("--root: %v", err)
	}
	if r, ok := d.Log.Find(h); ok {
		return r.Tree, nil
	}
	if ok, err := d.Store.Has(ctx, h); err != nil {
		return blockstore.Hash{}, err
	} else if !ok {
		return blockstore.Hash{}, fmt.Errorf("--root %s: neither a root in the log nor a tree in the store", h)
	}
	return h, nil
}

func openRead(ctx context.Context, c *cmdContext, minArgs int) (*datadir.Dir, blockstore.Hash, tree.Path, error) {
	rootFlag := c.flags.String("root", "", "read this root (a root or tree hash) instead of the latest")
	if err := c.parse(minArgs, 1); err != nil {
		return nil, blockstore.Hash{}, nil, err
	}
	ps := "/"
	if len(c.args) > 0 {
		ps = c.args[0]
	}
	p, err := tree.ParsePath(ps)
	if err != nil {
		return nil, blockstore.Hash{}, nil, usagef("%v", err)
	}
	d, err := c.open(ctx)
	if err != nil {
		return nil, blockstore.Hash{}, nil, err
	}
	root, err := resolveRoot(ctx, d, *rootFlag)
	if err != nil {
		d.Close()
		return nil, blockstore.Hash{}, nil, err
	}
	return d, root, p, nil
}

func modeString(e tree.Entry) string {
	m := fs.FileMode(e.Mode)
	switch e.Kind {
	case tree.KindDir:
		m |= fs.ModeDir
	case tree.KindSymlink:
		return "l" + m.String()[1:] // FileMode says "L", ls says "l"
	}
	return m.String()
}

func (c *cmdContext) printEntry(w *bufio.Writer, e tree.Entry) {
	name := e.Name
	hash := "-"
	switch e.Kind {
	case tree.KindDir:
		name += "/"
		hash = e.Hash.Short()
	case tree.KindSymlink:
		name += " -> " + e.Target
	default:
		hash = e.Hash.Short()
	}
	fmt.Fprintf(w, "%s %12d  %-15s  %s\n", modeString(e), e.Size, hash, name)
}

func runLs(ctx context.Context, c *cmdContext) error {
	d, root, p, err := openRead(ctx, c, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	r, err := tree.Lookup(ctx, d.Store, root, p)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(c.Stdout)
	defer w.Flush()
	if r.Entry.Kind != tree.KindDir {
		r.Entry.Name = p[len(p)-1]
		c.printEntry(w, r.Entry)
		return nil
	}
	entries, err := tree.ListDir(ctx, d.Store, r.Entry.Hash)
	if err != nil {
		return err
	}
	for _, e := range entries {
		c.printEntry(w, e)
	}
	return nil
}

func runCat(ctx context.Context, c *cmdContext) error {
	d, root, p, err := openRead(ctx, c, 1)
	if err != nil {
		return err
	}
	defer d.Close()
	r, err := tree.Lookup(ctx, d.Store, root, p)
	if err != nil {
		return err
	}
	switch r.Entry.Kind {
	case tree.KindDir:
		return fmt.Errorf("%s is a directory (use gritsd ls)", p)
	case tree.KindSymlink:
		return fmt.Errorf("%s is a symlink to %q; grits does not follow symlinks", p, r.Entry.Target)
	}
	g, done, err := reader(d)
	if err != nil {
		return err
	}
	defer done()
	w := bufio.NewWriterSize(c.Stdout, 1<<20)
	f := r.Node.(*tree.FileNode)
	if err := tree.ReadFile(ctx, g, f, 0, f.Size, w); err != nil {
		// What was written is verified; the rest is missing, and the
		// exit status says so.
		w.Flush()
		return explainUnavailable(d, fmt.Errorf("%s: %w", p, err))
	}
	return w.Flush()
}

func nodeType(raw []byte) string {
	n, err := tree.Decode(raw)
	if err != nil {
		return "?"
	}
	switch n := n.(type) {
	case *tree.DirNode:
		return fmt.Sprintf("dir (%d entries)", len(n.Entries))
	case *tree.ShardNode:
		return fmt.Sprintf("shard depth %d (%d children)", n.Depth, len(n.Children))
	case *tree.FileNode:
		return fmt.Sprintf("file level %d (%d hashes)", n.Level, len(n.Hashes))
	}
	return "?"
}

func runProof(ctx context.Context, c *cmdContext) error {
	out := c.flags.String("o", "", "also write the encoded proof to this file")
	d, root, p, err := openRead(ctx, c, 1)
	if err != nil {
		return err
	}
	defer d.Close()
	proof, _, err := tree.BuildProof(ctx, d.Store, root, p)
	if err != nil {
		return err
	}
	// Check it the way a remote client would: from the encoded bytes.
	enc := proof.Encode()
	dec, err := tree.DecodeProof(enc)
	if err != nil {
		return err
	}
	r, err := tree.Verify(root, p, dec)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(c.Stdout)
	defer w.Flush()
	switch r.Status {
	case tree.Found:
		if len(p) == 0 {
			fmt.Fprintf(w, "proof of the root directory of tree %s\n", root)
		} else {
			fmt.Fprintf(w, "proof that %s exists under tree %s: a %s of %d bytes\n", p, root, r.Entry.Kind, r.Entry.Size)
		}
	default:
		fmt.Fprintf(w, "proof that %s does not exist under tree %s: %v\n", p, root, r.Err(p))
	}
	fmt.Fprintf(w, "verified: %d nodes, %d bytes\n", len(dec.Nodes), len(enc))
	for i, raw := range dec.Nodes {
		fmt.Fprintf(w, "  %2d  %6d bytes  %s  %s\n", i, len(raw), blockstore.Sum(raw).Short(), nodeType(raw))
	}
	if *out != "" {
		if err := os.WriteFile(*out, enc, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func runLog(ctx context.Context, c *cmdContext) error {
	if err := c.parse(0, 0); err != nil {
		return err
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	roots := d.Log.Roots()
	if len(roots) == 0 {
		c.errorf("no roots yet\n")
		return nil
	}
	w := bufio.NewWriter(c.Stdout)
	defer w.Flush()
	now := timeNow()
	for i := len(roots) - 1; i >= 0; i-- {
		r := roots[i]
		state := ""
		if !now.Before(r.Expires) {
			state = " (expired)"
		}
		fmt.Fprintf(w, "seq %d\n  signed  %s\n  expires %s%s\n  tree    %s\n  root    %s\n",
			r.Seq, r.Time.UTC().Format("2006-01-02 15:04:05 MST"), r.Expires.UTC().Format("2006-01-02 15:04:05 MST"), state, r.Tree, r.Hash())
	}
	return nil
}
