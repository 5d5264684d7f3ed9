package node

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/grits-cdn/grits/internal/datadir"
	"github.com/grits-cdn/grits/membership"
)

// Files of the data directory that belong to the running node and the
// swarm.
const (
	RingFile = "swarm.keys" // membership.Keyring: gossip keys and ban list
	CertFile = "node.cert"  // membership.NodeCert, written by gritsd join
	UsedFile = "tokens.used"
	SyncFile = "sync.json"
	// MembersFile is the swarm members this node has seen
	// (membership.Snapshot), re-joined after a restart.
	MembersFile = "members.json"
	SockFile    = "gritsd.sock" // the admin socket
)

// LoadRing returns the swarm keyring; an origin that has none yet makes
// it from the secret gritsd init wrote.
func LoadRing(d *datadir.Dir) (membership.Keyring, error) {
	raw, err := d.ReadFile(RingFile)
	if err == nil {
		k, err := membership.DecodeKeyring(raw, d.Config.SiteKey)
		if err != nil {
			return membership.Keyring{}, fmt.Errorf("%s: %w", d.FilePath(RingFile), err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return membership.Keyring{}, err
	}
	if d.Config.Role != datadir.RoleOrigin {
		return membership.Keyring{}, ErrNotJoined(d)
	}
	b, err := d.ReadFile("swarm.key")
	if err != nil {
		return membership.Keyring{}, fmt.Errorf("swarm secret: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(key) != membership.KeySize {
		return membership.Keyring{}, fmt.Errorf("%s: not a base64 %d-byte key", d.FilePath("swarm.key"), membership.KeySize)
	}
	k := membership.Keyring{Keys: [][]byte{key}}
	return k, d.WriteFile(RingFile, k.Encode(), 0o600)
}

// ErrNotJoined is the error for a volunteer's data directory that has no
// certificate yet.
func ErrNotJoined(d *datadir.Dir) error {
	return fmt.Errorf("%s has not joined a swarm: run gritsd join TOKEN (ask the site operator for a token)", d.Path)
}

// LoadCert reads and verifies the node certificate gritsd join wrote.
func LoadCert(d *datadir.Dir) (membership.NodeCert, error) {
	raw, err := d.ReadFile(CertFile)
	if errors.Is(err, os.ErrNotExist) {
		return membership.NodeCert{}, ErrNotJoined(d)
	}
	if err != nil {
		return membership.NodeCert{}, err
	}
	c, err := membership.DecodeCert(raw)
	if err != nil {
		return membership.NodeCert{}, fmt.Errorf("%s: %w", d.FilePath(CertFile), err)
	}
	if err := c.Verify(d.Config.SiteKey, time.Now()); err != nil {
		return membership.NodeCert{}, fmt.Errorf("%s: %w (join again with a new token)", d.FilePath(CertFile), err)
	}
	return c, nil
}

// CertTTL is how long the certificates an origin issues last.
func CertTTL(d *datadir.Dir) time.Duration {
	if d.Config.CertTTL.Duration > 0 {
		return d.Config.CertTTL.Duration
	}
	return 365 * 24 * time.Hour
}
