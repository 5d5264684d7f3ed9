package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
	"github.com/grits-cdn/grits/node"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

func runToken(ctx context.Context, c *cmdContext) error {
	ttl := c.flags.Duration("ttl", 24*time.Hour, "how long the token may be used (once)")
	role := c.flags.String("role", "volunteer", "role of the node that joins: volunteer (caches) or storage (pins)")
	originAddr := c.flags.String("origin-addr", "", "HOST:PORT where joining nodes reach this origin's grits/1 port (default: advertise and listen from gritsd.toml)")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	r, err := membership.ParseRole(*role)
	if err != nil || r == membership.RoleOrigin {
		return usagef("--role %q: want volunteer or storage", *role)
	}
	if *ttl <= 0 {
		return usagef("--ttl %v: must be positive", *ttl)
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.RequireOrigin("token"); err != nil {
		return err
	}
	addr := *originAddr
	if addr == "" {
		addr = defaultAdvertised(d)
		if addr == "" {
			return usagef("--origin-addr: say where joining nodes reach this origin (for example origin.example.org:7433), or set advertise in %s", d.FilePath(datadir.ConfigFile))
		}
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return usagef("--origin-addr %q: want HOST:PORT", addr)
	}
	expires := time.Now().Add(*ttl)
	tok, err := membership.NewToken(d.SiteKey, tree.PublicKeyOf(d.NodeKey), addr, r, expires)
	if err != nil {
		return err
	}
	c.printf("%s\n", tok)
	c.errorf("token for one %s node, valid until %s; on the new node run: gritsd join TOKEN\n", r, expires.Format(time.RFC3339))
	return nil
}

// defaultAdvertised is HOST:PORT of this node's grits/1 port from its
// config, or "" if the config does not say which host.
func defaultAdvertised(d *datadir.Dir) string {
	listen := d.Config.Listen
	if listen == "" {
		listen = DefaultListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	if d.Config.Advertise != "" {
		host = d.Config.Advertise
	}
	if host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified() {
		return ""
	}
	return net.JoinHostPort(host, port)
}

func runJoin(ctx context.Context, c *cmdContext) error {
	timeout := c.flags.Duration("timeout", 30*time.Second, "how long to try reaching the origin")
	if err := c.parse(1, 1); err != nil {
		return err
	}
	tok, err := membership.ParseToken(c.args[0])
	if err != nil {
		return usagef("%v", err)
	}
	if !time.Now().Before(tok.Expires) {
		return fmt.Errorf("the token expired at %s; ask the operator for a new one", tok.Expires.Format(time.RFC3339))
	}
	p, err := c.dir()
	if err != nil {
		return err
	}
	d, err := datadir.Open(ctx, p, c.logger)
	if errors.Is(err, datadir.ErrNotInitialized) {
		d, err = datadir.Init(ctx, p, false, c.logger)
		if err == nil {
			c.errorf("initialized data directory %s\n", p)
		}
	}
	if err != nil {
		return err
	}
	defer d.Close()
	if d.Config.Role == datadir.RoleOrigin {
		return fmt.Errorf("%s is an origin's data directory; join from a volunteer's (gritsd --data DIR join TOKEN)", d.Path)
	}
	if _, err := d.ReadFile(node.CertFile); err == nil {
		return fmt.Errorf("%s already joined site %s; to join another swarm use a new data directory", d.Path, d.Config.SiteKey)
	}
	if err := d.Lock(); err != nil {
		return err
	}
	defer d.Unlock()
	ident, err := transport.Certificate(d.NodeKey)
	if err != nil {
		return err
	}
	client, err := transport.NewClient(transport.ClientConfig{SiteKey: tok.Site, Identity: &ident, DialTimeout: 5 * time.Second, Logger: c.logger})
	if err != nil {
		return err
	}
	defer client.Close()
	jctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	self := tree.PublicKeyOf(d.NodeKey)
	g, err := membership.Join(jctx, client, tok, self)
	if err != nil {
		return err
	}
	// Everything the grant says goes to disk before the certificate,
	// whose presence marks a joined node.
	if err := d.WriteFile(node.RingFile, g.Ring.Encode(), 0o600); err != nil {
		return err
	}
	d.Config.SiteKey = tok.Site
	d.Config.Role = g.Cert.Role.String()
	d.Config.OriginAddr = tok.OriginAddr
	d.Config.Seeds = g.Seeds
	if g.Cert.Role == membership.RoleStorage && len(d.Config.Pins) == 0 {
		d.Config.Pins = []string{"/"}
	}
	if err := d.SaveConfig(); err != nil {
		return err
	}
	if g.Root != nil {
		if _, ok := d.Log.Latest(); !ok {
			if err := d.Log.Append(ctx, *g.Root); err != nil {
				return fmt.Errorf("record the current root: %w", err)
			}
		}
	}
	if err := d.WriteFile(node.CertFile, g.Cert.Encode(), 0o644); err != nil {
		return err
	}
	c.printf("node-id: %s\n", self)
	c.errorf("joined site %s as a %s node (certificate valid until %s); start it with: gritsd serve\n",
		tok.Site, g.Cert.Role, g.Cert.Expires.Format(time.RFC3339))
	return nil
}

func runBan(ctx context.Context, c *cmdContext) error {
	if err := c.parse(1, 1); err != nil {
		return err
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.RequireOrigin("ban"); err != nil {
		return err
	}
	id, err := resolveNode(ctx, d, c.args[0])
	if err != nil {
		return err
	}
	if id == tree.PublicKeyOf(d.NodeKey) {
		return usagef("%s is this origin itself", id)
	}
	if err := d.Lock(); err != nil {
		return err
	}
	defer d.Unlock()
	ring, err := node.LoadRing(d)
	if err != nil {
		return err
	}
	if ring.Bans.Banned(id) {
		c.errorf("%s is already banned (ban list version %d)\n", id, ring.Bans.Version)
		return nil
	}
	key := make([]byte, membership.KeySize)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	bans, err := membership.SignBans(d.SiteKey, ring.Bans, []membership.NodeID{id}, key, time.Now())
	if err != nil {
		return err
	}
	next := membership.Keyring{Bans: bans, Keys: [][]byte{key}}
	if err := d.WriteFile(node.RingFile, next.Encode(), 0o600); err != nil {
		return err
	}
	c.errorf("banned %s (ban list version %d); the gossip key is rotated. A running gritsd serve spreads the ban within seconds.\n", id, bans.Version)
	return nil
}

// resolveNode parses a full node ID, or finds the one member whose ID
// starts with the given prefix (asking the running daemon), or the one
// banned node (which the daemon no longer lists as a member).
func resolveNode(ctx context.Context, d *datadir.Dir, s string) (membership.NodeID, error) {
	if id, err := tree.ParsePublicKey(s); err == nil {
		return id, nil
	}
	prefix := strings.TrimPrefix(s, "ed25519-")
	if len(prefix) < 8 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return membership.NodeID{}, usagef("%q: want a node ID (ed25519-<64 hex>) or at least 8 of its hex digits", s)
	}
	st, err := fetchStatus(ctx, d)
	if err != nil {
		return membership.NodeID{}, fmt.Errorf("%q is not a full node ID, and the member list to complete it needs the running daemon: %w", s, err)
	}
	matches := func(id membership.NodeID) bool {
		return strings.HasPrefix(strings.TrimPrefix(id.String(), "ed25519-"), prefix)
	}
	var found []membership.NodeID
	if raw, err := d.ReadFile(node.RingFile); err == nil {
		if k, err := membership.DecodeKeyring(raw, d.Config.SiteKey); err == nil && k.Bans != nil {
			for _, id := range k.Bans.Nodes {
				if matches(id) {
					found = append(found, id)
				}
			}
		}
	}
	for _, m := range st.Members {
		if matches(m.ID) && !slices.Contains(found, m.ID) {
			found = append(found, m.ID)
		}
	}
	switch len(found) {
	case 0:
		return membership.NodeID{}, fmt.Errorf("no member's ID starts with %s", prefix)
	case 1:
		return found[0], nil
	}
	return membership.NodeID{}, usagef("%s matches %d members; give more digits", prefix, len(found))
}

func runGrant(ctx context.Context, c *cmdContext) error {
	capacity := c.flags.String("capacity", "", "the most capacity placement counts for the node: bytes, or with a unit (200GB, 1.5TiB), or \"default\"")
	if err := c.parse(1, 1); err != nil {
		return err
	}
	if *capacity == "" {
		return usagef("--capacity: say how much (for example --capacity 200GB, or --capacity default for %s)", humanBytes(membership.DefaultGrant))
	}
	n, err := parseCapacity(*capacity)
	if err != nil {
		return usagef("--capacity %q: %v", *capacity, err)
	}
	d, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.RequireOrigin("grant"); err != nil {
		return err
	}
	id, err := resolveNode(ctx, d, c.args[0])
	if err != nil {
		return err
	}
	if err := d.Lock(); err != nil {
		return err
	}
	defer d.Unlock()
	g := membership.IssueGrant(d.SiteKey, id, n, time.Now())
	if gs, err := node.LoadGrants(d); err == nil {
		for _, old := range gs {
			if old.Node == id && !g.Issued.After(old.Issued) {
				// The newest grant wins everywhere: make this one newer.
				g = membership.IssueGrant(d.SiteKey, id, n, old.Issued.Add(time.Second))
			}
		}
	}
	if err := node.SaveGrant(d, g); err != nil {
		return err
	}
	c.errorf("granted %s %s of placement weight; a running gritsd serve spreads it within seconds.\n", id, humanBytes(int64(min(n, 1<<62))))
	return nil
}

// parseCapacity reads a size: bytes, or a number with a decimal (KB, MB,
// GB, TB) or binary (KiB, MiB, GiB, TiB) unit, or "default".
func parseCapacity(s string) (uint64, error) {
	if s == "default" {
		return membership.DefaultGrant, nil
	}
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	num, mult := strings.TrimSpace(s), 1.0
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) || v*mult >= 1<<63 {
		return 0, errors.New("want a size such as 200GB, 1.5TiB or 10737418240")
	}
	return uint64(v * mult), nil
}
