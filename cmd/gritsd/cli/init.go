package cli

import (
	"context"
	"fmt"

	"github.com/grits-cdn/grits/gateway"
	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/tree"
)

func runInit(ctx context.Context, c *cmdContext) error {
	origin := c.flags.Bool("origin", false, "create an origin: also a site signing key and a swarm secret")
	if err := c.parse(0, 0); err != nil {
		return err
	}
	p, err := c.dir()
	if err != nil {
		return err
	}
	d, err := datadir.Init(ctx, p, *origin, c.logger)
	if err != nil {
		return err
	}
	defer d.Close()
	ca, err := gateway.CreateDevCA(d.Path, tree.PublicKeyOf(d.NodeKey).String()[:16])
	if err != nil {
		return fmt.Errorf("development CA: %w", err)
	}
	c.errorf("initialized %s data directory %s\n", d.Config.Role, d.Path)
	c.errorf("browsers reach this node over HTTPS with a certificate from its development CA %s\n  (for real use pass --tls-cert/--tls-key or --acme-domain to gritsd serve); to trust it on this machine: %s\n",
		d.FilePath("ca.pem"), ca.TrustHint(d.FilePath("ca.pem")))
	c.printf("node-id: %s\n", tree.PublicKeyOf(d.NodeKey))
	if *origin {
		c.printf("site-key: %s\n", d.Config.SiteKey)
		c.errorf("keep %s safe: whoever holds it can publish as this site\n", d.Path+"/site.key")
	}
	return nil
}
