package tree

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// publicKeyPrefix makes the text form self-describing, like the "b3-" of a
// blockstore.Hash, so a key pasted into a config file says what it is and
// a future key type can get its own prefix.
const publicKeyPrefix = "ed25519-"

// PublicKey is a site's (or later a node's) ed25519 public key. It is a
// comparable array, usable as a map key, unlike ed25519.PublicKey which is
// a slice. The zero PublicKey names no key and verifies nothing.
type PublicKey [ed25519.PublicKeySize]byte

// ErrInvalidKey is returned (wrapped) for malformed key text and for a
// private key of the wrong length.
var ErrInvalidKey = errors.New("invalid key")

// PublicKeyOf returns the public half of priv. A priv of the wrong length
// yields the zero PublicKey rather than a panic, and the zero key verifies
// nothing, so the mistake surfaces as a refused signature.
func PublicKeyOf(priv ed25519.PrivateKey) PublicKey {
	var k PublicKey
	if len(priv) != ed25519.PrivateKeySize {
		return k
	}
	// The standard library stores the public key in the second half of
	// the private key; Public() returns that copy.
	copy(k[:], priv.Public().(ed25519.PublicKey))
	return k
}

// ParsePublicKey parses the text form produced by PublicKey.String:
// "ed25519-" followed by 64 lower-case hex digits. Anything else is
// refused, so one key has exactly one spelling and configs can be compared
// as strings.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	rest, ok := strings.CutPrefix(s, publicKeyPrefix)
	if !ok {
		return k, fmt.Errorf("%w %q: missing %q prefix", ErrInvalidKey, clipKey(s), publicKeyPrefix)
	}
	if len(rest) != 2*len(k) {
		return k, fmt.Errorf("%w %q: want %d hex digits, got %d", ErrInvalidKey, clipKey(s), 2*len(k), len(rest))
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return k, fmt.Errorf("%w %q: not lower-case hex at offset %d", ErrInvalidKey, clipKey(s), len(publicKeyPrefix)+i)
		}
	}
	if _, err := hex.Decode(k[:], []byte(rest)); err != nil {
		return k, fmt.Errorf("%w %q: %v", ErrInvalidKey, clipKey(s), err)
	}
	return k, nil
}

func clipKey(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// String returns the full text form, "ed25519-" and 64 hex digits.
func (k PublicKey) String() string {
	return publicKeyPrefix + hex.EncodeToString(k[:])
}

// IsZero reports whether k is the zero PublicKey (no key configured).
func (k PublicKey) IsZero() bool {
	return k == PublicKey{}
}

// MarshalText implements encoding.TextMarshaler.
func (k PublicKey) MarshalText() ([]byte, error) {
	return []byte(k.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *PublicKey) UnmarshalText(b []byte) error {
	p, err := ParsePublicKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

// Verify reports whether sig is k's ed25519 signature of msg. Callers add
// their own domain-separation prefix to msg (see rootSigContext).
//
// The zero key is refused outright: it is what an unset config field
// holds, and it encodes a small-order point, for which a forger can
// produce an accepted signature with useful probability.
func (k PublicKey) Verify(msg, sig []byte) bool {
	if k.IsZero() || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(k[:]), msg, sig)
}
