package node

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
)

// GrantsFile is the origin's capacity grants (gritsd grant), one
// base64 membership.CapacityGrant a line, the newest of each node last.
const GrantsFile = "capacity.grants"

// LoadGrants reads the origin's grants (none if the file is missing).
func LoadGrants(d *datadir.Dir) ([]membership.CapacityGrant, error) {
	raw, err := d.ReadFile(GrantsFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []membership.CapacityGrant
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", d.FilePath(GrantsFile), i+1, err)
		}
		g, err := membership.DecodeGrantCap(b)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", d.FilePath(GrantsFile), i+1, err)
		}
		if err := g.Verify(d.Config.SiteKey); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", d.FilePath(GrantsFile), i+1, err)
		}
		out = append(out, g)
	}
	return out, nil
}

// SaveGrant records g, replacing any grant of its node.
func SaveGrant(d *datadir.Dir, g membership.CapacityGrant) error {
	gs, err := LoadGrants(d)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, old := range gs {
		if old.Node != g.Node {
			b.WriteString(base64.StdEncoding.EncodeToString(old.Encode()) + "\n")
		}
	}
	b.WriteString(base64.StdEncoding.EncodeToString(g.Encode()) + "\n")
	return d.WriteFile(GrantsFile, []byte(b.String()), 0o644)
}

// watchGrants puts the operator's capacity grants (gritsd grant rewrites
// the file) into force on the origin.
func (n *Node) watchGrants(ctx context.Context) {
	var lastMod time.Time
	var lastSize int64 = -1
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := os.Stat(n.dir.FilePath(GrantsFile))
		if err == nil && (!st.ModTime().Equal(lastMod) || st.Size() != lastSize) {
			lastMod, lastSize = st.ModTime(), st.Size()
			gs, err := LoadGrants(n.dir)
			if err == nil {
				err = n.swarm.SetGrants(gs)
			}
			if err != nil {
				n.log.Error("cannot put the capacity grants into force", "err", err)
			} else {
				n.log.Info("capacity grants in force", "grants", len(gs))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
