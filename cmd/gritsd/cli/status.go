package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/node"
)

// Status is what the daemon reports on its admin socket.
type Status = node.Status

func fetchStatus(ctx context.Context, d *datadir.Dir) (Status, error) {
	return node.DialAdmin(d.Path, 10*time.Second).Status(ctx)
}

// pokeDaemon tells a daemon serving d, if one runs, to read the root log
// now.
func pokeDaemon(ctx context.Context, d *datadir.Dir) error {
	return node.DialAdmin(d.Path, 5*time.Second).RereadRoots(ctx)
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
			if err == nil && st.Role != datadir.RoleOrigin {
				// Elsewhere a replica is only a node's claim.
				return fmt.Errorf("--wait-replicas counts the nodes the origin's audits verified: run it on the origin (this %s node only hears what nodes claim: %d say they hold the whole root)", st.Role, st.ClaimedReplicas)
			}
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
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else {
		printStatus(c.Stdout, st)
	}
	if !st.Ready {
		// Scripts and service managers tell "not running" (1) from
		// "running but not ready" by the code.
		return &exitError{code: ExitNotReady, msg: "not ready: " + strings.Join(st.NotReady, "; ")}
	}
	return nil
}

func printStatus(w io.Writer, st Status) {
	fmt.Fprintf(w, "node %s (%s), site %s\n", st.Node, st.Role, st.Site)
	if st.Ready {
		fmt.Fprintf(w, "ready")
	} else {
		fmt.Fprintf(w, "NOT READY: %s", strings.Join(st.NotReady, "; "))
	}
	if st.Admin != "" {
		fmt.Fprintf(w, "; metrics and dashboard on http://%s/", st.Admin)
	}
	fmt.Fprintln(w)
	switch {
	case st.Root != nil && st.Role == datadir.RoleOrigin:
		fmt.Fprintf(w, "root seq %d (%s), expires %s; %d complete replicas besides the origin (verified by its audits)\n",
			st.Root.Seq, st.Root.Tree, st.Root.Expires.Format(time.RFC3339), st.Replicas)
	case st.Root != nil:
		fmt.Fprintf(w, "root seq %d (%s), expires %s; %d nodes claim the whole root (only the origin's audits count: ask it)\n",
			st.Root.Seq, st.Root.Tree, st.Root.Expires.Format(time.RFC3339), st.ClaimedReplicas)
	default:
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
	printOffload(w, st.Offload)
	for _, r := range st.Reports {
		fmt.Fprintf(w, "REPORTED %s: %d times by browsers, last %s: %s %s\n", r.Peer, r.Count, r.Last.Format("15:04:05"), r.Reason, r.Hash)
	}
	if h := st.HeldBack; h != nil && h.Files > 0 {
		fmt.Fprintf(w, "held back: %d files (%s) are kept but not published: others may not read them (chmod o+r, or o+rx for directories, publishes them)\n", h.Files, humanBytes(h.Bytes))
	}
	fmt.Fprintf(w, "served %d grits/1 requests (%s) and %d HTTP requests (%s); fetched %d blocks (%s) from the swarm\n",
		st.Served.Requests, humanBytes(st.Served.Bytes), st.Served.HTTPRequests, humanBytes(st.Served.HTTPBytes), st.Upstream.Fetched, humanBytes(st.Upstream.Bytes))
}
