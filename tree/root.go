package tree

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

// Root wire constants. Explicit numbers, never iota (see node.go).
const (
	// TagRoot is the first byte of an encoded Root. It lies outside the
	// node tag range 0x01..0x0F, so a root can never be mistaken for a
	// tree node or the other way round.
	TagRoot = 0x52 // 'R'
	// RootVersion is the second byte of an encoded Root.
	RootVersion = 0x01

	// RootSize is the length of every encoded Root.
	RootSize = 186

	// MaxClockSkew is how far in the future a root's signing time may lie
	// before Verify refuses it. Clocks on volunteer machines drift; a root
	// from further ahead than this means the origin's clock, or ours, is
	// wrong, and accepting it would let it outrank every honest root.
	MaxClockSkew = 5 * time.Minute
)

// Field offsets in the encoding.
const (
	rootOffKey     = 2
	rootOffSeq     = 34
	rootOffTime    = 42
	rootOffExpires = 50
	rootOffTree    = 58
	rootOffPrev    = 90
	rootOffSig     = 122 // also the length of the signed part
)

// rootSigContext is prefixed to the signed bytes. The site key will also
// sign node certificates, ban lists and join tokens; each gets its own
// context string, so no signature over one of those can ever pass as a
// root, whatever bytes it covers.
const rootSigContext = "grits-root-v1\x00"

// Errors returned (wrapped) by the Root functions and by Log. Callers
// branch on them with errors.Is.
var (
	ErrMalformedRoot = errors.New("malformed root")
	ErrWrongKey      = errors.New("signed by the wrong key")
	ErrBadSignature  = errors.New("bad signature")
	ErrExpired       = errors.New("root expired")
	ErrFromFuture    = errors.New("root signed in the future (check the clocks)")
	ErrRollback      = errors.New("refusing a rollback")
	// ErrEquivocation means the site key signed two histories: two
	// different roots with one seq, or a root whose predecessor is not the
	// accepted root of the seq just before it. Either the origin is
	// broken or the key has leaked; it is worth an alarm, not just a log
	// line.
	ErrEquivocation = errors.New("the site key signed conflicting roots")
	// ErrSameRoot is returned for a root identical to the accepted one,
	// which callers usually treat as a no-op.
	ErrSameRoot = errors.New("root already accepted")
	// ErrBrokenChain is returned by Log.Append for a root whose Prev is
	// not the latest logged root, typically because roots in between
	// were missed: the log keeps an unbroken chain.
	ErrBrokenChain = errors.New("root does not follow the latest logged root")
)

// Root is one signed version of a site: the hash of its tree, numbered
// and chained to the previous version, with an expiry so that a stale
// version cannot be replayed forever.
//
// Times have one-second resolution: Encode stores unix seconds and drops
// the rest, and SignRoot returns the root with its times truncated, so a
// signed Root equals its own decoding.
type Root struct {
	SiteKey PublicKey
	Seq     uint64          // 1, 2, 3...; newer wins, older is refused
	Time    time.Time       // when signed
	Expires time.Time       // the root is refused at or after this instant
	Tree    blockstore.Hash // the tree's root directory node
	Prev    blockstore.Hash // Hash() of the previous root; zero when Seq == 1
	Sig     [ed25519.SignatureSize]byte
}

// Encode returns the RootSize-byte encoding. It never fails: every Root,
// signed or not, has an encoding.
func (r Root) Encode() []byte {
	return r.AppendEncode(make([]byte, 0, RootSize))
}

// AppendEncode appends the encoding of r to dst.
func (r Root) AppendEncode(dst []byte) []byte {
	dst = append(dst, TagRoot, RootVersion)
	dst = append(dst, r.SiteKey[:]...)
	dst = binary.BigEndian.AppendUint64(dst, r.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Time.Unix()))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Expires.Unix()))
	dst = append(dst, r.Tree[:]...)
	dst = append(dst, r.Prev[:]...)
	dst = append(dst, r.Sig[:]...)
	return dst
}

// DecodeRoot parses an encoded Root. It checks the framing only (length,
// tag, version); it does not check the signature or the fields, which is
// Verify's job, so that tools can show a root they would refuse.
func DecodeRoot(b []byte) (Root, error) {
	var r Root
	if len(b) != RootSize {
		return r, fmt.Errorf("%w: %d bytes, want %d", ErrMalformedRoot, len(b), RootSize)
	}
	if b[0] != TagRoot {
		return r, fmt.Errorf("%w: type tag 0x%02x, want 0x%02x", ErrMalformedRoot, b[0], TagRoot)
	}
	if b[1] != RootVersion {
		return r, fmt.Errorf("%w: unknown format version %d (this build reads version %d)", ErrMalformedRoot, b[1], RootVersion)
	}
	copy(r.SiteKey[:], b[rootOffKey:])
	r.Seq = binary.BigEndian.Uint64(b[rootOffSeq:])
	r.Time = unixTime(b[rootOffTime:])
	r.Expires = unixTime(b[rootOffExpires:])
	copy(r.Tree[:], b[rootOffTree:])
	copy(r.Prev[:], b[rootOffPrev:])
	copy(r.Sig[:], b[rootOffSig:])
	return r, nil
}

// unixTime reads big-endian unix seconds. UTC keeps decoded roots
// printing the same on every machine.
func unixTime(b []byte) time.Time {
	return time.Unix(int64(binary.BigEndian.Uint64(b)), 0).UTC()
}

// Hash returns the hash of r's encoding, signature included. It names
// this exact signed root: the next root's Prev, and `--root HASH`.
func (r Root) Hash() blockstore.Hash {
	var buf [RootSize]byte
	return blockstore.Sum(r.AppendEncode(buf[:0]))
}

// String describes r for logs.
func (r Root) String() string {
	return fmt.Sprintf("root seq %d tree %s expires %s", r.Seq, r.Tree.Short(), r.Expires.UTC().Format(time.RFC3339))
}

// signedMessage returns what the signature covers: the context string and
// every byte of the encoding before the signature.
func signedMessage(enc []byte) []byte {
	msg := make([]byte, 0, len(rootSigContext)+rootOffSig)
	msg = append(msg, rootSigContext...)
	return append(msg, enc[:rootOffSig]...)
}

// validate checks the fields a signer must get right; a signature does
// not make a nonsensical root acceptable. Times are compared as the unix
// seconds that are actually encoded, so that decoded extreme values,
// which time.Time cannot order correctly, are still judged by what was
// signed.
func (r Root) validate() error {
	switch {
	case r.Seq == 0:
		return fmt.Errorf("root seq 0: seq starts at 1: %w", ErrMalformedRoot)
	case r.Tree.IsZero():
		return fmt.Errorf("root seq %d has no tree hash: %w", r.Seq, ErrMalformedRoot)
	case r.Expires.Unix() <= r.Time.Unix():
		return fmt.Errorf("root seq %d expires (%s) no later than it was signed (%s): %w",
			r.Seq, fmtUnix(r.Expires), fmtUnix(r.Time), ErrMalformedRoot)
	case r.Seq == 1 && !r.Prev.IsZero():
		return fmt.Errorf("root seq 1 names a previous root %s, but it is the first: %w", r.Prev.Short(), ErrMalformedRoot)
	case r.Seq > 1 && r.Prev.IsZero():
		return fmt.Errorf("root seq %d names no previous root: %w", r.Seq, ErrMalformedRoot)
	}
	return nil
}

func fmtUnix(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

// SignRoot returns r signed with priv: SiteKey is set from priv, Time and
// Expires are truncated to whole seconds, and Sig is filled in. It refuses
// a root Verify would call malformed, so an origin cannot publish one.
func SignRoot(priv ed25519.PrivateKey, r Root) (Root, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return Root{}, fmt.Errorf("sign root: %w: private key is %d bytes, want %d", ErrInvalidKey, len(priv), ed25519.PrivateKeySize)
	}
	r.SiteKey = PublicKeyOf(priv)
	r.Time = time.Unix(r.Time.Unix(), 0).UTC()
	r.Expires = time.Unix(r.Expires.Unix(), 0).UTC()
	if err := r.validate(); err != nil {
		return Root{}, fmt.Errorf("sign root: %w", err)
	}
	var buf [RootSize]byte
	enc := r.AppendEncode(buf[:0])
	copy(r.Sig[:], ed25519.Sign(priv, signedMessage(enc)))
	// A private key whose stored public half does not match its seed
	// signs garbage without complaint; find out here rather than from
	// every volunteer refusing the root.
	if !r.SiteKey.Verify(signedMessage(enc), r.Sig[:]) {
		return Root{}, fmt.Errorf("sign root: %w: the signature does not verify under the key's own public half", ErrInvalidKey)
	}
	return r, nil
}

// Verify checks that r is a well-formed root signed by key and valid at
// now. It does not compare r with earlier roots; see CheckSuccessor.
func (r Root) Verify(key PublicKey, now time.Time) error {
	if key.IsZero() {
		return fmt.Errorf("verify root seq %d: no site key to verify against: %w", r.Seq, ErrWrongKey)
	}
	if r.SiteKey != key {
		return fmt.Errorf("root seq %d names site key %s, want %s: %w", r.Seq, r.SiteKey, key, ErrWrongKey)
	}
	var buf [RootSize]byte
	if !key.Verify(signedMessage(r.AppendEncode(buf[:0])), r.Sig[:]) {
		return fmt.Errorf("root seq %d: signature does not verify under %s: %w", r.Seq, key, ErrBadSignature)
	}
	// Fields are judged only once the signature shows who wrote them.
	if err := r.validate(); err != nil {
		return err
	}
	// Whole seconds on both sides: Expires and Time are whole seconds, so
	// comparing with now's floor gives exactly !now.Before(Expires) and
	// Time.After(now+MaxClockSkew), without time.Time overflowing on a
	// hostile far-future value.
	nowSec := now.Unix()
	if nowSec >= r.Expires.Unix() {
		return fmt.Errorf("root seq %d expired at %s (now %s): %w", r.Seq, fmtUnix(r.Expires), fmtUnix(now), ErrExpired)
	}
	if r.Time.Unix() > nowSec+int64(MaxClockSkew/time.Second) {
		return fmt.Errorf("root seq %d was signed at %s, more than %v after now (%s): %w",
			r.Seq, fmtUnix(r.Time), MaxClockSkew, fmtUnix(now), ErrFromFuture)
	}
	return nil
}

// CheckSuccessor reports whether r may replace last, the latest accepted
// root. Both should already have passed Verify. It returns ErrSameRoot for
// r identical to last, ErrRollback for an older seq, and ErrEquivocation
// for a different root with last's seq or a root with the next seq that
// does not follow last. A root more than one seq ahead is accepted: a node
// that was away may have missed the roots in between.
func (r Root) CheckSuccessor(last Root) error {
	switch {
	case r.Seq < last.Seq:
		return fmt.Errorf("root seq %d is older than the accepted seq %d: %w", r.Seq, last.Seq, ErrRollback)
	case r.Seq == last.Seq:
		h, lh := r.Hash(), last.Hash()
		if h == lh {
			return fmt.Errorf("root seq %d (%s): %w", r.Seq, h.Short(), ErrSameRoot)
		}
		return fmt.Errorf("root seq %d (%s) differs from the accepted root with the same seq (%s): %w",
			r.Seq, h.Short(), lh.Short(), ErrEquivocation)
	case r.Seq == last.Seq+1 && r.Prev != last.Hash():
		return fmt.Errorf("root seq %d follows %s, not the accepted seq %d (%s): %w",
			r.Seq, r.Prev.Short(), last.Seq, last.Hash().Short(), ErrEquivocation)
	}
	return nil
}
