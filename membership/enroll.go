package membership

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/transport"
	"github.com/grits-cdn/grits/tree"
)

// Enroller is the origin's side of gritsd join: it checks a token once
// and issues a node certificate.
type Enroller struct {
	site    ed25519.PrivateKey
	swarm   *Swarm
	certTTL time.Duration
	path    string // used nonces, one "hex expiry" line each
	log     *slog.Logger
	now     func() time.Time

	mu   sync.Mutex
	used map[[NonceSize]byte]time.Time
}

// NewEnroller loads the used-nonce record at path (created if missing).
func NewEnroller(site ed25519.PrivateKey, s *Swarm, path string, certTTL time.Duration, logger *slog.Logger) (*Enroller, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Enroller{site: site, swarm: s, certTTL: certTTL, path: path, log: logger, now: time.Now, used: map[[NonceSize]byte]time.Time{}}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return nil, fmt.Errorf("used tokens: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		hexNonce, exp, ok := strings.Cut(sc.Text(), " ")
		b, err := hex.DecodeString(hexNonce)
		t, terr := strconv.ParseInt(exp, 10, 64)
		if !ok || err != nil || terr != nil || len(b) != NonceSize {
			continue // a torn last line: the token it named was never answered
		}
		var n [NonceSize]byte
		copy(n[:], b)
		e.used[n] = time.Unix(t, 0)
	}
	return e, sc.Err()
}

// Enroll answers a joiner's Enroll request: the token must be the site's,
// unexpired and unused; the joiner's node key is the one it proved in the
// handshake. The nonce is recorded durably before the grant is sent, so
// a crash can never let a token be used twice.
func (e *Enroller) Enroll(ctx context.Context, p transport.Peer, raw []byte) ([]byte, error) {
	g, err := e.enroll(ctx, p, raw)
	if err != nil {
		e.log.Warn("join refused", "remote", p.Addr, "node", shortID(p.ID, p.HasID), "err", err)
		// The joiner sees why (over the wire as "unauthorized: ...").
		return nil, fmt.Errorf("%w: %w", proto.ErrUnauthorized, err)
	}
	e.log.Info("node joined", "node", p.ID.String()[:16], "role", g.Cert.Role, "remote", p.Addr)
	return g.Encode(), nil
}

func shortID(id NodeID, ok bool) string {
	if !ok {
		return "none"
	}
	return id.String()[:16]
}

func (e *Enroller) enroll(ctx context.Context, p transport.Peer, raw []byte) (Grant, error) {
	if !p.HasID {
		return Grant{}, fmt.Errorf("%w: the joiner presented no node key", ErrNotMember)
	}
	t, err := DecodeToken(raw)
	if err != nil {
		return Grant{}, err
	}
	now := e.now()
	if err := t.Verify(tree.PublicKeyOf(e.site), now); err != nil {
		return Grant{}, err
	}
	if e.swarm.Bans().Banned(p.ID) {
		return Grant{}, fmt.Errorf("node %s: %w", p.ID.String()[:16], ErrBanned)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, used := e.used[t.Nonce]; used {
		return Grant{}, ErrTokenUsed
	}
	cert, err := IssueCert(e.site, p.ID, t.Role, now, e.certTTL)
	if err != nil {
		return Grant{}, err
	}
	if err := e.record(t); err != nil {
		return Grant{}, err
	}
	e.used[t.Nonce] = t.Expires
	g := Grant{Cert: cert, Ring: e.swarm.Ring(), Seeds: []string{e.swarm.GossipAddr()}}
	for _, m := range e.swarm.Alive() {
		if len(g.Seeds) >= maxSeeds {
			break
		}
		if !m.Self {
			g.Seeds = append(g.Seeds, m.GossipAddr)
		}
	}
	if r, ok := e.swarm.cfg.Roots.Latest(); ok {
		g.Root = &r
	}
	return g, nil
}

func (e *Enroller) record(t Token) error {
	f, err := os.OpenFile(e.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record used token: %w", err)
	}
	_, werr := fmt.Fprintf(f, "%x %d\n", t.Nonce, t.Expires.Unix())
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("record used token: %w", err)
	}
	return nil
}

// Join enrolls this node with the origin the token names. client must
// present the node's key (transport.Certificate) and no credential yet.
// The origin must prove the key the token names, so a token cannot be
// redirected to an impostor.
func Join(ctx context.Context, client *transport.Client, t Token, self NodeID) (Grant, error) {
	id, err := client.PeerNodeID(ctx, t.OriginAddr)
	if err != nil {
		return Grant{}, fmt.Errorf("reach the origin at %s: %w", t.OriginAddr, err)
	}
	if id != t.Origin {
		return Grant{}, fmt.Errorf("the node at %s is %s, the token names origin %s: %w", t.OriginAddr, id.String()[:16], t.Origin.String()[:16], ErrNotMember)
	}
	raw, err := client.Enroll(ctx, t.OriginAddr, t.Encode())
	if err != nil {
		return Grant{}, fmt.Errorf("enroll with %s: %w", t.OriginAddr, err)
	}
	g, err := DecodeGrant(raw, t.Site)
	if err != nil {
		return Grant{}, fmt.Errorf("enroll with %s: %w", t.OriginAddr, err)
	}
	if g.Cert.Node != self || g.Cert.Role != t.Role {
		return Grant{}, fmt.Errorf("enroll with %s: the certificate is for node %s as %v, not this node as %v", t.OriginAddr, g.Cert.Node.String()[:16], g.Cert.Role, t.Role)
	}
	return g, nil
}
