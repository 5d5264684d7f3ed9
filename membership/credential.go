package membership

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/wire"
	"github.com/grits-cdn/grits/tree"
)

// NodeID names a node: its ed25519 public key.
type NodeID = tree.PublicKey

// Role is what a node does in the swarm.
type Role uint8

// Roles. The numbers are on the wire (certificates, tokens, metadata).
const (
	RoleOrigin    Role = 1
	RoleVolunteer Role = 2
	RoleStorage   Role = 3
)

func (r Role) String() string {
	switch r {
	case RoleOrigin:
		return "origin"
	case RoleVolunteer:
		return "volunteer"
	case RoleStorage:
		return "storage"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole parses the text form.
func ParseRole(s string) (Role, error) {
	switch s {
	case "origin":
		return RoleOrigin, nil
	case "volunteer":
		return RoleVolunteer, nil
	case "storage":
		return RoleStorage, nil
	}
	return 0, fmt.Errorf("role %q: want volunteer or storage", s)
}

func (r Role) valid() bool { return r >= RoleOrigin && r <= RoleStorage }

// Errors callers branch on.
var (
	// ErrMalformed: bytes that are not a well-formed credential, token,
	// ban list or metadata record.
	ErrMalformed = errors.New("membership: malformed")
	// ErrBadSignature: not signed by the site key.
	ErrBadSignature = errors.New("membership: bad signature")
	// ErrExpired: a token or certificate past its expiry.
	ErrExpired = errors.New("membership: expired")
	// ErrBanned: the node is on the site's ban list.
	ErrBanned = errors.New("membership: node is banned")
	// ErrNotMember: no valid certificate for the key it proved.
	ErrNotMember = errors.New("membership: not a member")
	// ErrTokenUsed: a join token presented a second time.
	ErrTokenUsed = errors.New("membership: join token already used")
)

// Wire tags and domain-separation strings. A signature over one kind of
// record can never be replayed as another: each signs its own prefix.
const (
	tagToken    = 'T'
	tagCert     = 'C'
	tagBans     = 'B'
	tagMeta     = 'M'
	tagGrant    = 'G'
	tagKeys     = 'K'
	formatV1    = 1
	domainToken = "grits-join-token-v1\x00"
	domainCert  = "grits-node-cert-v1\x00"
	domainBans  = "grits-ban-list-v1\x00"
	tokenPrefix = "grits-join-1."
)

// Limits.
const (
	MaxAddrLen  = 255   // host:port strings in tokens and metadata
	MaxBans     = 10000 // nodes on one ban list
	KeySize     = 32    // gossip keys are AES-256
	MaxKeys     = 4     // keys in a keyring
	NonceSize   = 16
	keyIDSize   = 8
	sigSize     = ed25519.SignatureSize
	nodeIDSize  = len(NodeID{})
	certBodyLen = 2 + nodeIDSize + 1 + 8 + 8
	// CertSize is the encoded size of a NodeCert.
	CertSize = certBodyLen + sigSize
)

func sign(key ed25519.PrivateKey, domain string, body []byte) []byte {
	return ed25519.Sign(key, append([]byte(domain), body...))
}

func verify(key tree.PublicKey, domain string, body, sig []byte) bool {
	return !key.IsZero() && key.Verify(append([]byte(domain), body...), sig)
}

func appendUnix(b []byte, t time.Time) []byte {
	u := uint64(t.Unix())
	return append(b, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
}

func readUnix(r *wire.Reader) time.Time {
	b := r.Bytes(8)
	if len(b) < 8 {
		return time.Time{}
	}
	var u uint64
	for _, c := range b {
		u = u<<8 | uint64(c)
	}
	return time.Unix(int64(u), 0).UTC()
}

func readHeader(r *wire.Reader, tag byte, what string) {
	if t := r.U8(); r.Err == nil && t != tag {
		r.Fail("not a %s (tag 0x%02x)", what, t)
	}
	if v := r.U8(); r.Err == nil && v != formatV1 {
		r.Fail("%s format version %d, this gritsd reads %d", what, v, formatV1)
	}
}

// NodeCert is the site key's statement that a node key belongs to the
// swarm in a role until an expiry. Nodes carry it in their TLS
// certificate and their gossip metadata; every other node checks it.
type NodeCert struct {
	Node    NodeID
	Role    Role
	Issued  time.Time
	Expires time.Time
	Sig     [sigSize]byte
}

func (c NodeCert) body() []byte {
	b := make([]byte, 0, CertSize)
	b = append(b, tagCert, formatV1)
	b = append(b, c.Node[:]...)
	b = append(b, byte(c.Role))
	b = appendUnix(b, c.Issued)
	return appendUnix(b, c.Expires)
}

// Encode returns the CertSize bytes of c.
func (c NodeCert) Encode() []byte { return append(c.body(), c.Sig[:]...) }

// IssueCert signs a certificate for node with the site key.
func IssueCert(site ed25519.PrivateKey, node NodeID, role Role, now time.Time, ttl time.Duration) (NodeCert, error) {
	if !role.valid() {
		return NodeCert{}, fmt.Errorf("issue certificate: invalid role %d", role)
	}
	c := NodeCert{Node: node, Role: role, Issued: now.Truncate(time.Second).UTC(), Expires: now.Add(ttl).Truncate(time.Second).UTC()}
	copy(c.Sig[:], sign(site, domainCert, c.body()))
	return c, nil
}

// DecodeCert parses a certificate without checking its signature.
func DecodeCert(b []byte) (NodeCert, error) {
	var c NodeCert
	r := wire.NewReader(b, ErrMalformed)
	readHeader(r, tagCert, "node certificate")
	copy(c.Node[:], r.Bytes(uint64(nodeIDSize)))
	c.Role = Role(r.U8())
	c.Issued = readUnix(r)
	c.Expires = readUnix(r)
	copy(c.Sig[:], r.Bytes(sigSize))
	if err := r.Done(); err != nil {
		return NodeCert{}, fmt.Errorf("node certificate: %w", err)
	}
	if !c.Role.valid() {
		return NodeCert{}, fmt.Errorf("node certificate: %w: role %d", ErrMalformed, c.Role)
	}
	return c, nil
}

// Verify checks the signature and the validity window.
func (c NodeCert) Verify(site tree.PublicKey, now time.Time) error {
	if !verify(site, domainCert, c.body(), c.Sig[:]) {
		return fmt.Errorf("certificate of %s: %w (not issued by site %s)", c.Node.String()[:16], ErrBadSignature, site.String()[:16])
	}
	return c.current(now)
}

// current checks the validity window only.
func (c NodeCert) current(now time.Time) error {
	if !now.Before(c.Expires) {
		return fmt.Errorf("certificate of %s expired at %s: %w", c.Node.String()[:16], c.Expires.Format(time.RFC3339), ErrExpired)
	}
	return nil
}

// Token is a one-time invitation to join the swarm. It tells the joiner
// where the origin is and which key it must prove (so a joiner cannot be
// talked into enrolling with an impostor), and the origin accepts each
// nonce once.
//
// It carries no gossip key: a token is a bearer secret that ends up in
// chat logs and shell histories, and once used it must be worthless. The
// gossip keys travel in the Grant, over the mutually authenticated
// connection, and always the current ones (a token can outlive a key
// rotation).
type Token struct {
	Role       Role
	Expires    time.Time
	Nonce      [NonceSize]byte
	Site       tree.PublicKey
	Origin     NodeID // the origin's node key, proven in the handshake
	OriginAddr string // grits/1 address (UDP host:port)
	Sig        [sigSize]byte
}

func (t Token) body() []byte {
	b := []byte{tagToken, formatV1, byte(t.Role)}
	b = appendUnix(b, t.Expires)
	b = append(b, t.Nonce[:]...)
	b = append(b, t.Site[:]...)
	b = append(b, t.Origin[:]...)
	b = append(b, byte(len(t.OriginAddr)))
	return append(b, t.OriginAddr...)
}

// NewToken makes and signs a token with a fresh nonce.
func NewToken(site ed25519.PrivateKey, origin NodeID, originAddr string, role Role, expires time.Time) (Token, error) {
	if role != RoleVolunteer && role != RoleStorage {
		return Token{}, fmt.Errorf("token: role %v: tokens admit volunteers and storage nodes", role)
	}
	if originAddr == "" || len(originAddr) > MaxAddrLen {
		return Token{}, fmt.Errorf("token: origin address %q: want 1..%d bytes", originAddr, MaxAddrLen)
	}
	t := Token{Role: role, Expires: expires.Truncate(time.Second).UTC(), Site: tree.PublicKeyOf(site), Origin: origin, OriginAddr: originAddr}
	if _, err := rand.Read(t.Nonce[:]); err != nil {
		return Token{}, fmt.Errorf("token nonce: %w", err)
	}
	copy(t.Sig[:], sign(site, domainToken, t.body()))
	return t, nil
}

// Encode returns the binary form; String the text a person copies.
func (t Token) Encode() []byte { return append(t.body(), t.Sig[:]...) }

func (t Token) String() string {
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(t.Encode())
}

// ParseToken parses the text form. It does not check the signature: the
// joiner cannot (it learns the site key from the token) and the origin
// does, with Verify.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("join token: %w: does not start with %q (copy the whole line gritsd token printed)", ErrMalformed, tokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return Token{}, fmt.Errorf("join token: %w: %v (truncated when copied?)", ErrMalformed, err)
	}
	return DecodeToken(raw)
}

// DecodeToken parses the binary form.
func DecodeToken(b []byte) (Token, error) {
	var t Token
	r := wire.NewReader(b, ErrMalformed)
	readHeader(r, tagToken, "join token")
	t.Role = Role(r.U8())
	t.Expires = readUnix(r)
	copy(t.Nonce[:], r.Bytes(NonceSize))
	copy(t.Site[:], r.Bytes(uint64(nodeIDSize)))
	copy(t.Origin[:], r.Bytes(uint64(nodeIDSize)))
	t.OriginAddr = string(r.Bytes(uint64(r.U8())))
	copy(t.Sig[:], r.Bytes(sigSize))
	if err := r.Done(); err != nil {
		return Token{}, fmt.Errorf("join token: %w", err)
	}
	if t.Role != RoleVolunteer && t.Role != RoleStorage {
		return Token{}, fmt.Errorf("join token: %w: role %d", ErrMalformed, t.Role)
	}
	if t.OriginAddr == "" {
		return Token{}, fmt.Errorf("join token: %w: no origin address", ErrMalformed)
	}
	return t, nil
}

// Verify checks the signature under site and the expiry.
func (t Token) Verify(site tree.PublicKey, now time.Time) error {
	if t.Site != site {
		return fmt.Errorf("join token is for site %s, this is %s: %w", t.Site.String()[:16], site.String()[:16], ErrBadSignature)
	}
	if !verify(site, domainToken, t.body(), t.Sig[:]) {
		return fmt.Errorf("join token: %w", ErrBadSignature)
	}
	if !now.Before(t.Expires) {
		return fmt.Errorf("join token expired at %s: %w (ask the operator for a new one)", t.Expires.Format(time.RFC3339), ErrExpired)
	}
	return nil
}

// BanList is the site's signed, versioned list of excluded nodes. Each
// version names the gossip key that replaced the one banned nodes knew,
// by a short hash, so a node handed keys by a peer can tell they are the
// origin's.
type BanList struct {
	Version uint64
	Time    time.Time
	KeyID   [keyIDSize]byte
	Nodes   []NodeID // sorted, unique
	Sig     [sigSize]byte
}

// KeyID is the short hash a BanList uses to name a gossip key.
func KeyID(key []byte) [keyIDSize]byte {
	h := blockstore.Sum(append([]byte("grits-gossip-key\x00"), key...))
	var id [keyIDSize]byte
	copy(id[:], h[:])
	return id
}

func (l *BanList) body() []byte {
	b := make([]byte, 0, 32+len(l.Nodes)*nodeIDSize)
	b = append(b, tagBans, formatV1)
	b = binary.AppendUvarint(b, l.Version)
	b = appendUnix(b, l.Time)
	b = append(b, l.KeyID[:]...)
	b = binary.AppendUvarint(b, uint64(len(l.Nodes)))
	for _, n := range l.Nodes {
		b = append(b, n[:]...)
	}
	return b
}

// Encode returns the signed list; nil for a nil list.
func (l *BanList) Encode() []byte {
	if l == nil {
		return nil
	}
	return append(l.body(), l.Sig[:]...)
}

// Banned reports whether id is on the list.
func (l *BanList) Banned(id NodeID) bool {
	if l == nil {
		return false
	}
	_, found := slices.BinarySearchFunc(l.Nodes, id, func(a, b NodeID) int { return bytes.Compare(a[:], b[:]) })
	return found
}

// SignBans makes the successor of prev (nil for the first list) that
// also bans add, naming newKey as the gossip key from now on.
func SignBans(site ed25519.PrivateKey, prev *BanList, add []NodeID, newKey []byte, now time.Time) (*BanList, error) {
	if len(newKey) != KeySize {
		return nil, fmt.Errorf("ban list: gossip key of %d bytes, want %d", len(newKey), KeySize)
	}
	l := &BanList{Version: 1, Time: now.Truncate(time.Second).UTC(), KeyID: KeyID(newKey)}
	if prev != nil {
		l.Version = prev.Version + 1
		l.Nodes = slices.Clone(prev.Nodes)
	}
	l.Nodes = append(l.Nodes, add...)
	slices.SortFunc(l.Nodes, func(a, b NodeID) int { return bytes.Compare(a[:], b[:]) })
	l.Nodes = slices.Compact(l.Nodes)
	if len(l.Nodes) > MaxBans {
		return nil, fmt.Errorf("ban list: %d nodes, at most %d", len(l.Nodes), MaxBans)
	}
	copy(l.Sig[:], sign(site, domainBans, l.body()))
	return l, nil
}

// DecodeBans parses a ban list without checking its signature.
func DecodeBans(b []byte) (*BanList, error) {
	l := &BanList{}
	r := wire.NewReader(b, ErrMalformed)
	readHeader(r, tagBans, "ban list")
	l.Version = r.Uvarint()
	l.Time = readUnix(r)
	copy(l.KeyID[:], r.Bytes(keyIDSize))
	n := r.Uvarint()
	if r.Err == nil && (n > MaxBans || n*uint64(nodeIDSize) > uint64(r.Remaining())) {
		r.Fail("%d banned nodes in %d bytes", n, r.Remaining())
	}
	if r.Err == nil {
		l.Nodes = make([]NodeID, n)
		for i := range l.Nodes {
			copy(l.Nodes[i][:], r.Bytes(uint64(nodeIDSize)))
			if i > 0 && bytes.Compare(l.Nodes[i-1][:], l.Nodes[i][:]) >= 0 {
				r.Fail("banned nodes not sorted and unique")
				break
			}
		}
	}
	copy(l.Sig[:], r.Bytes(sigSize))
	if err := r.Done(); err != nil {
		return nil, fmt.Errorf("ban list: %w", err)
	}
	if l.Version == 0 {
		return nil, fmt.Errorf("ban list: %w: version 0", ErrMalformed)
	}
	return l, nil
}

// Verify checks the site's signature.
func (l *BanList) Verify(site tree.PublicKey) error {
	if !verify(site, domainBans, l.body(), l.Sig[:]) {
		return fmt.Errorf("ban list version %d: %w", l.Version, ErrBadSignature)
	}
	return nil
}
