package membership

import (
	"encoding/binary"
	"fmt"

	"github.com/grits-cdn/grits/internal/wire"
	"github.com/grits-cdn/grits/tree"
)

// Keyring is the swarm's gossip keys, primary first, with the ban list
// that introduced the primary. Nodes hand it only to members (GetSwarmKeys
// over a mutually authenticated connection), never through gossip: a
// banned node still reads the gossip until the old key is dropped.
type Keyring struct {
	Bans *BanList // nil before the first ban
	Keys [][]byte
}

// Validate checks the shape, and that the primary key is the one the
// ban list names (a peer cannot slip in a key of its own).
func (k Keyring) Validate() error {
	if len(k.Keys) == 0 || len(k.Keys) > MaxKeys {
		return fmt.Errorf("keyring: %d keys, want 1..%d: %w", len(k.Keys), MaxKeys, ErrMalformed)
	}
	for i, key := range k.Keys {
		if len(key) != KeySize {
			return fmt.Errorf("keyring: key %d has %d bytes, want %d: %w", i, len(key), KeySize, ErrMalformed)
		}
	}
	if k.Bans != nil && KeyID(k.Keys[0]) != k.Bans.KeyID {
		return fmt.Errorf("keyring: primary key is not the one ban list %d names: %w", k.Bans.Version, ErrBadSignature)
	}
	return nil
}

// BanVersion is the version of the ban list, 0 for none.
func (k Keyring) BanVersion() uint64 {
	if k.Bans == nil {
		return 0
	}
	return k.Bans.Version
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func readBytes(r *wire.Reader, max int) []byte {
	n := r.Uvarint()
	if r.Err == nil && n > uint64(max) {
		r.Fail("field of %d bytes, at most %d", n, max)
		return nil
	}
	return r.Bytes(n)
}

// Encode returns the binary form.
func (k Keyring) Encode() []byte {
	b := []byte{tagKeys, formatV1}
	b = appendBytes(b, k.Bans.Encode())
	b = append(b, byte(len(k.Keys)))
	for _, key := range k.Keys {
		b = append(b, key...)
	}
	return b
}

// DecodeKeyring parses and validates a keyring; the ban list's signature
// is checked against site.
func DecodeKeyring(b []byte, site tree.PublicKey) (Keyring, error) {
	r := wire.NewReader(b, ErrMalformed)
	k, err := readKeyring(r, site)
	if err == nil {
		err = r.Done()
	}
	if err != nil {
		return Keyring{}, fmt.Errorf("keyring: %w", err)
	}
	return k, nil
}

func readKeyring(r *wire.Reader, site tree.PublicKey) (Keyring, error) {
	var k Keyring
	readHeader(r, tagKeys, "keyring")
	bans := readBytes(r, 2+10+8+8+10+MaxBans*nodeIDSize+sigSize)
	n := r.U8()
	if r.Err == nil && (n == 0 || n > MaxKeys) {
		r.Fail("%d keys, want 1..%d", n, MaxKeys)
	}
	for i := 0; i < int(n) && r.Err == nil; i++ {
		k.Keys = append(k.Keys, append([]byte(nil), r.Bytes(KeySize)...))
	}
	if r.Err != nil {
		return Keyring{}, r.Err
	}
	if len(bans) > 0 {
		l, err := DecodeBans(bans)
		if err != nil {
			return Keyring{}, err
		}
		if err := l.Verify(site); err != nil {
			return Keyring{}, err
		}
		k.Bans = l
	}
	return k, k.Validate()
}

// Grant is the origin's answer to an accepted join token: everything a
// new node needs to take part.
type Grant struct {
	Cert  NodeCert
	Ring  Keyring
	Seeds []string   // gossip addresses of current members, origin first
	Root  *tree.Root // the latest root, if any
}

const (
	maxSeeds = 16
)

// Encode returns the binary form.
func (g Grant) Encode() []byte {
	b := []byte{tagGrant, formatV1}
	b = appendBytes(b, g.Cert.Encode())
	b = appendBytes(b, g.Ring.Encode())
	b = append(b, byte(len(g.Seeds)))
	for _, s := range g.Seeds {
		b = appendString(b, s)
	}
	if g.Root != nil {
		b = appendBytes(b, g.Root.Encode())
	} else {
		b = appendBytes(b, nil)
	}
	return b
}

// DecodeGrant parses a grant and checks every signature in it against
// site: the certificate, the ban list, the root.
func DecodeGrant(b []byte, site tree.PublicKey) (Grant, error) {
	var g Grant
	r := wire.NewReader(b, ErrMalformed)
	readHeader(r, tagGrant, "grant")
	cert := readBytes(r, CertSize)
	ring := readBytes(r, 1<<20)
	n := r.U8()
	if r.Err == nil && n > maxSeeds {
		r.Fail("%d seeds, at most %d", n, maxSeeds)
	}
	for i := 0; i < int(n) && r.Err == nil; i++ {
		g.Seeds = append(g.Seeds, string(readBytes(r, MaxAddrLen)))
	}
	root := readBytes(r, tree.RootSize)
	if err := r.Done(); err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	var err error
	if g.Cert, err = DecodeCert(cert); err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	if err := g.Cert.Verify(site, g.Cert.Issued); err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	if g.Ring, err = DecodeKeyring(ring, site); err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	if len(root) > 0 {
		rt, err := tree.DecodeRoot(root)
		if err != nil {
			return Grant{}, fmt.Errorf("grant: %w", err)
		}
		if err := rt.Verify(site, rt.Time); err != nil {
			return Grant{}, fmt.Errorf("grant: %w", err)
		}
		g.Root = &rt
	}
	return g, nil
}

// Meta is what a node tells the swarm about itself in memberlist's node
// metadata, which gossip spreads with every state change. It must fit
// memberlist's 512-byte limit (MetaMaxSize), checked by Encode.
type Meta struct {
	Cert      []byte // the encoded NodeCert, checked by everyone
	ProtoAddr string // grits/1 address (UDP host:port)
	URL       string // public HTTPS/HTTP3 base URL for browsers, if any
	Capacity  uint64 // bytes of disk it offers (placement weight)
	Load      uint8  // 0..100
	RootSeq   uint64 // latest root it has accepted
	// Complete is the latest root seq whose pinned part it holds
	// entirely (pinning nodes; 0 for caches); Lacking is how many bytes
	// it still misses of the latest root's pinned part.
	Complete uint64
	Lacking  uint64
	Bans     uint64   // version of the ban list it enforces
	Pins     []string // pinned subtrees ("/" for all); empty for caches
	// Ext are extension records after the fields above. The fields
	// above must never change: nodes before this format rule refuse any
	// byte after the pins, so a node that sends extensions is invisible
	// to them. New facts about a node go into extension records, sent
	// only once the swarm no longer has such nodes (docs/design.md,
	// "Upgrades"); a node skips extension types it does not know.
	Ext []MetaExt
}

// MetaExt is one extension record of node metadata: type uvarint,
// length uvarint, data. Types are at least 1 and strictly ascending.
type MetaExt struct {
	Type uint64
	Data []byte
}

// MetaMaxSize is memberlist's limit on node metadata.
const MetaMaxSize = 512

// Encode returns the binary form or an error if it exceeds MetaMaxSize.
func (m Meta) Encode() ([]byte, error) {
	// Refuse what DecodeMeta refuses, or peers could not read it.
	if len(m.Cert) > CertSize || len(m.ProtoAddr) > MaxAddrLen || len(m.Pins) > 255 {
		return nil, fmt.Errorf("node metadata: certificate of %d bytes, address of %d, %d pins: at most %d, %d, 255", len(m.Cert), len(m.ProtoAddr), len(m.Pins), CertSize, MaxAddrLen)
	}
	b := make([]byte, 0, 256)
	b = append(b, tagMeta, formatV1)
	b = appendBytes(b, m.Cert)
	b = appendString(b, m.ProtoAddr)
	b = appendString(b, m.URL)
	b = binary.AppendUvarint(b, m.Capacity)
	b = append(b, min(m.Load, 100))
	b = binary.AppendUvarint(b, m.RootSeq)
	b = binary.AppendUvarint(b, m.Complete)
	b = binary.AppendUvarint(b, m.Lacking)
	b = binary.AppendUvarint(b, m.Bans)
	b = append(b, byte(len(m.Pins)))
	for _, p := range m.Pins {
		b = appendString(b, p)
	}
	var last uint64
	for _, e := range m.Ext {
		if e.Type <= last {
			return nil, fmt.Errorf("node metadata: extension type %d after %d: types must ascend from 1", e.Type, last)
		}
		last = e.Type
		b = binary.AppendUvarint(b, e.Type)
		b = appendBytes(b, e.Data)
	}
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("node metadata is %d bytes, memberlist allows %d (shorten the URL or the pinned paths)", len(b), MetaMaxSize)
	}
	return b, nil
}

// DecodeMeta parses metadata; the certificate inside is not checked here.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > MetaMaxSize {
		return m, fmt.Errorf("node metadata: %w: %d bytes", ErrMalformed, len(b))
	}
	r := wire.NewReader(b, ErrMalformed)
	readHeader(r, tagMeta, "node metadata")
	m.Cert = readBytes(r, CertSize)
	m.ProtoAddr = string(readBytes(r, MaxAddrLen))
	m.URL = string(readBytes(r, MetaMaxSize))
	m.Capacity = r.Uvarint()
	m.Load = r.U8()
	m.RootSeq = r.Uvarint()
	m.Complete = r.Uvarint()
	m.Lacking = r.Uvarint()
	m.Bans = r.Uvarint()
	n := r.U8()
	for i := 0; i < int(n) && r.Err == nil; i++ {
		m.Pins = append(m.Pins, string(readBytes(r, MetaMaxSize)))
	}
	var last uint64
	for r.Err == nil && r.Remaining() > 0 {
		e := MetaExt{Type: r.Uvarint()}
		e.Data = readBytes(r, MetaMaxSize)
		if r.Err == nil && e.Type <= last {
			return Meta{}, fmt.Errorf("node metadata: %w: extension type %d after %d", ErrMalformed, e.Type, last)
		}
		last = e.Type
		m.Ext = append(m.Ext, e)
	}
	if err := r.Done(); err != nil {
		return Meta{}, fmt.Errorf("node metadata: %w", err)
	}
	if m.Load > 100 {
		return Meta{}, fmt.Errorf("node metadata: %w: load %d", ErrMalformed, m.Load)
	}
	return m, nil
}
