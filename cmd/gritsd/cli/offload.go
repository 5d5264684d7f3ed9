package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/node"
	"github.com/grits-cdn/grits/offload"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// Commands on an origin that offloads (cat, fsck) run in their own
// process, with or without the daemon: they reach the storage nodes
// directly, over grits/1 with a certificate the origin issues itself, at
// the addresses the daemon last saw (its audit ledger, offload.ledger).

// offloading reports whether d is an origin whose content may be held
// only by storage nodes, and returns its ledger.
func offloading(d *datadir.Dir) (offload.Ledger, bool, error) {
	if d.Config.Role != datadir.RoleOrigin {
		return offload.Ledger{}, false, nil
	}
	l, err := offload.ReadLedger(d.FilePath(node.OffloadFile))
	if err != nil {
		return offload.Ledger{}, false, err
	}
	return l, d.Config.StoreMax > 0 || len(l.Records) > 0, nil
}

// storageClient is a grits/1 client that presents the origin's
// certificate (so storage nodes answer from their store only) and talks
// only to members.
func storageClient(d *datadir.Dir) (*transport.Client, error) {
	cert, err := membership.IssueCert(d.SiteKey, tree.PublicKeyOf(d.NodeKey), membership.RoleOrigin, time.Now(), time.Hour)
	if err != nil {
		return nil, err
	}
	ident, err := transport.CertificateWithCredential(d.NodeKey, cert.Encode())
	if err != nil {
		return nil, err
	}
	var bans *membership.BanList
	if ring, err := node.LoadRing(d); err == nil {
		bans = ring.Bans
	}
	site := d.Config.SiteKey
	return transport.NewClient(transport.ClientConfig{SiteKey: site, Identity: &ident, DialTimeout: 3 * time.Second, StallTimeout: 10 * time.Second,
		VerifyServer: func(id transport.NodeID, cred []byte) error {
			c, err := membership.DecodeCert(cred)
			switch {
			case err != nil:
				return fmt.Errorf("%w: %w", membership.ErrNotMember, err)
			case c.Node != id:
				return fmt.Errorf("%w: certificate of another node", membership.ErrNotMember)
			case bans.Banned(id):
				return membership.ErrBanned
			}
			return c.Verify(site, time.Now())
		}})
}

// reader is what cat reads through: the store, and on an origin that
// offloads, the storage nodes for what the store lacks. close releases
// the client.
func reader(d *datadir.Dir) (g tree.Getter, close func(), err error) {
	l, ok, err := offloading(d)
	if err != nil || !ok {
		return d.Store, func() {}, err
	}
	client, err := storageClient(d)
	if err != nil {
		return nil, nil, err
	}
	return &offload.Remote{Local: d.Store, Client: client, Peers: l.Addrs()}, func() { client.Close() }, nil
}

// explainUnavailable adds where the storage nodes' addresses come from
// to an error about a block none of them could return.
func explainUnavailable(d *datadir.Dir, err error) error {
	var ue *offload.UnavailableError
	if errors.As(err, &ue) {
		return fmt.Errorf("%w (storage node addresses come from %s, which the running daemon keeps current)", err, d.FilePath(node.OffloadFile))
	}
	return err
}

// proveRemote asks every known storage node for the blocks only they
// hold (fsck --remote) and reports the blocks fewer than the replicas
// setting proved. It prints a line per storage node on stderr.
func proveRemote(ctx context.Context, c *cmdContext, d *datadir.Dir, l offload.Ledger, elsewhere map[blockstore.Hash]string, report func(string, ...any)) error {
	want := d.Config.OffloadReplicas
	if want <= 0 {
		want = offload.DefaultReplicas
	}
	addrs := l.Addrs()
	if len(addrs) == 0 {
		for h, where := range elsewhere {
			report("block %s (%s) is not on this disk, and no storage node is known to ask", h, where)
		}
		return nil
	}
	client, err := storageClient(d)
	if err != nil {
		return err
	}
	defer client.Close()
	hashes := make([]blockstore.Hash, 0, len(elsewhere))
	for h := range elsewhere {
		hashes = append(hashes, h)
	}
	proofs := map[blockstore.Hash]int{}
	byPeer := map[string]int{}
	errs := offload.Prove(ctx, client, addrs, hashes, func(h blockstore.Hash, peer string) {
		proofs[h]++
		byPeer[peer]++
	})
	for _, a := range addrs {
		if err := errs[a]; err != nil {
			c.errorf("fsck: storage node %s: proved %d of %d blocks, then: %v\n", a, byPeer[a], len(hashes), err)
		} else {
			c.errorf("fsck: storage node %s proved %d of %d blocks\n", a, byPeer[a], len(hashes))
		}
	}
	for _, h := range hashes {
		switch n := proofs[h]; {
		case n == 0:
			report("block %s (%s) is not on this disk, and no storage node proved it holds it", h, elsewhere[h])
		case n < want:
			report("block %s (%s): %d storage node(s) proved it, offload_replicas is %d", h, elsewhere[h], n, want)
		}
	}
	return nil
}

// printOffload is the origin's part of gritsd status.
func printOffload(w io.Writer, o *offload.Stats) {
	if o == nil {
		return
	}
	switch {
	case o.StoreMax <= 0:
		fmt.Fprintf(w, "offload: off (no store_max): %s of content, %s on this disk\n", humanBytes(o.ContentBytes), humanBytes(o.LocalBytes))
	default:
		fmt.Fprintf(w, "offload: %s of %s content on this disk, %s offloaded (store_max %s, %s of content on disk in all; %d audited copies before a block leaves)\n",
			humanBytes(o.LocalBytes), humanBytes(o.ContentBytes), humanBytes(o.OffloadedBytes), humanBytes(o.StoreMax), humanBytes(o.StoreBytes), o.Replicas)
	}
	if o.Warning != "" {
		fmt.Fprintf(w, "WARNING: %s\n", o.Warning)
	}
	if o.FetchedBack > 0 || o.Unavailable > 0 {
		fmt.Fprintf(w, "fetched back %d blocks (%s); %d reads found no storage node to serve them\n", o.FetchedBack, humanBytes(o.FetchedBackBytes), o.Unavailable)
	}
	if len(o.Nodes) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STORAGE NODE\tSTATE\tCOMPLETE\tVERIFIED\tHELD\tVERIFIED BYTES\tLAST AUDIT\tPASSED\tFAILED\tADDR")
	for _, n := range o.Nodes {
		last := "-"
		if !n.LastAudit.IsZero() {
			last = n.LastAudit.Local().Format("15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%s\n", n.ID.String()[:16], n.State, n.Complete, n.Verified,
			humanBytes(n.HeldBytes), humanBytes(n.VerifiedBytes), last, n.Passed, n.Failed, n.Addr)
	}
	tw.Flush()
	for _, n := range o.Nodes {
		if n.Reason != "" {
			fmt.Fprintf(w, "FAILED %s at %s: %s\n", n.ID.String()[:16], n.FailedAt.Local().Format(time.RFC3339), n.Reason)
		}
	}
}
