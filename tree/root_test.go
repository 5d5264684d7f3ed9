package tree

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/internal/golden"
)

// rootTestSeed is the fixed signing seed of the tests and the golden
// vectors: the bytes 0x01..0x20.
func rootTestSeed() []byte {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i + 1)
	}
	return seed
}

func rootTestKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(rootTestSeed())
}

// rootTestTime is when test roots are signed; they expire 30 days later,
// one day apart per seq.
var rootTestTime = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const rootTestLife = 30 * 24 * time.Hour

// rootTestChain returns n signed roots, seq 1..n, each chained to the one
// before, all of the same tree (an origin re-signing to extend expiry).
func rootTestChain(t testing.TB, n int) []Root {
	t.Helper()
	priv := rootTestKey()
	var roots []Root
	var prev blockstore.Hash
	for i := range n {
		signed := rootTestTime.Add(time.Duration(i) * 24 * time.Hour)
		r, err := SignRoot(priv, Root{
			Seq:     uint64(i + 1),
			Time:    signed,
			Expires: signed.Add(rootTestLife),
			Tree:    blockstore.Sum([]byte("grits test tree")),
			Prev:    prev,
		})
		if err != nil {
			t.Fatalf("SignRoot seq %d: %v", i+1, err)
		}
		roots = append(roots, r)
		prev = r.Hash()
	}
	return roots
}

// signUnchecked signs r as SignRoot would but without refusing malformed
// fields, to check that Verify refuses them even when signed.
func signUnchecked(priv ed25519.PrivateKey, r Root) Root {
	r.SiteKey = PublicKeyOf(priv)
	copy(r.Sig[:], ed25519.Sign(priv, signedMessage(r.Encode())))
	return r
}

func TestPublicKeyText(t *testing.T) {
	k := PublicKeyOf(rootTestKey())
	s := k.String()
	if !strings.HasPrefix(s, "ed25519-") || len(s) != len("ed25519-")+64 {
		t.Fatalf("String() = %q", s)
	}
	got, err := ParsePublicKey(s)
	if err != nil || got != k {
		t.Fatalf("ParsePublicKey(%q) = %v, %v; want %v", s, got, err, k)
	}

	// Through JSON, as in a config file.
	type config struct{ Key PublicKey }
	b, err := json.Marshal(config{k})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Key":"` + s + `"}`; string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
	var c config
	if err := json.Unmarshal(b, &c); err != nil || c.Key != k {
		t.Fatalf("json round trip: %v, %v", c.Key, err)
	}
	if err := json.Unmarshal([]byte(`{"Key":"ed25519-00"}`), &c); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("json with a short key: err = %v, want ErrInvalidKey", err)
	}

	hexPart := strings.TrimPrefix(s, "ed25519-")
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"no prefix", hexPart},
		{"upper-case prefix", "ED25519-" + hexPart},
		{"other prefix", "b3-" + hexPart},
		{"upper-case hex", "ed25519-" + strings.ToUpper(hexPart)},
		{"short", s[:len(s)-2]},
		{"long", s + "00"},
		{"odd length", s[:len(s)-1]},
		{"not hex", s[:len(s)-1] + "g"},
		{"space", " " + s},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParsePublicKey(tc.in); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("ParsePublicKey(%q) err = %v, want ErrInvalidKey", tc.in, err)
			}
		})
	}
}

func TestPublicKeyVerify(t *testing.T) {
	priv := rootTestKey()
	k := PublicKeyOf(priv)
	msg := []byte("hello")
	sig := ed25519.Sign(priv, msg)
	if !k.Verify(msg, sig) {
		t.Fatal("a good signature does not verify")
	}
	if k.Verify([]byte("hellO"), sig) {
		t.Fatal("a signature verifies for another message")
	}
	if k.Verify(msg, sig[:63]) {
		t.Fatal("a short signature verifies")
	}
	var zero PublicKey
	if zero.Verify(msg, sig) {
		t.Fatal("the zero key verifies something")
	}
	// The zero key is a point of order 4, so the identity point as R and
	// s = 0 passes crypto/ed25519 for about one message in four. Find
	// one, and check that PublicKey.Verify still refuses it.
	forgery := make([]byte, ed25519.SignatureSize)
	forgery[0] = 1 // R = the identity point (y = 1), s = 0
	forged := false
	for i := range 200 {
		m := []byte("forged " + strconv.Itoa(i))
		if !ed25519.Verify(ed25519.PublicKey(zero[:]), m, forgery) {
			continue
		}
		forged = true
		if zero.Verify(m, forgery) {
			t.Fatalf("PublicKey.Verify accepted a forgery for the zero key")
		}
	}
	if !forged {
		t.Fatal("found no zero-key forgery for crypto/ed25519 to test against")
	}
	if got := PublicKeyOf(priv[:10]); !got.IsZero() {
		t.Fatalf("PublicKeyOf(short key) = %v, want zero", got)
	}
}

func TestRootRoundTrip(t *testing.T) {
	for _, r := range rootTestChain(t, 3) {
		enc := r.Encode()
		if len(enc) != RootSize {
			t.Fatalf("len(Encode()) = %d, want %d", len(enc), RootSize)
		}
		got, err := DecodeRoot(enc)
		if err != nil {
			t.Fatalf("DecodeRoot: %v", err)
		}
		// == rather than field by field: SignRoot and DecodeRoot must
		// normalise times identically for a signed root to equal its
		// decoding.
		if got != r {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
		if got.Hash() != blockstore.Sum(enc) {
			t.Fatal("Hash() is not the Sum of the encoding")
		}
		if err := got.Verify(r.SiteKey, r.Time); err != nil {
			t.Fatalf("Verify after round trip: %v", err)
		}
		prefix := []byte("prefix")
		if app := r.AppendEncode(prefix); !bytes.Equal(app[:6], prefix) || !bytes.Equal(app[6:], enc) {
			t.Fatal("AppendEncode does not append the encoding")
		}
	}
}

func TestDecodeRootRefuses(t *testing.T) {
	enc := rootTestChain(t, 1)[0].Encode()
	for n := range len(enc) {
		if _, err := DecodeRoot(enc[:n]); !errors.Is(err, ErrMalformedRoot) {
			t.Fatalf("DecodeRoot(%d-byte prefix) err = %v, want ErrMalformedRoot", n, err)
		}
	}
	if _, err := DecodeRoot(append(enc, 0)); !errors.Is(err, ErrMalformedRoot) {
		t.Fatalf("DecodeRoot(one byte too long) err = %v, want ErrMalformedRoot", err)
	}
	for _, tc := range []struct {
		name string
		off  int
		b    byte
	}{
		{"node tag", 0, TagDir},
		{"zero tag", 0, 0},
		{"version 0", 1, 0},
		{"version 2", 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(enc)
			b[tc.off] = tc.b
			if _, err := DecodeRoot(b); !errors.Is(err, ErrMalformedRoot) {
				t.Fatalf("err = %v, want ErrMalformedRoot", err)
			}
		})
	}
}

func TestSignRootRefuses(t *testing.T) {
	priv := rootTestKey()
	tree := blockstore.Sum([]byte("grits test tree"))
	prev := blockstore.Sum([]byte("previous"))
	good := Root{Seq: 2, Time: rootTestTime, Expires: rootTestTime.Add(time.Hour), Tree: tree, Prev: prev}
	if _, err := SignRoot(priv, good); err != nil {
		t.Fatalf("SignRoot(good) = %v", err)
	}
	for _, tc := range []struct {
		name   string
		priv   ed25519.PrivateKey
		edit   func(*Root)
		target error
	}{
		{"seq 0", priv, func(r *Root) { r.Seq = 0 }, ErrMalformedRoot},
		{"no tree", priv, func(r *Root) { r.Tree = blockstore.Hash{} }, ErrMalformedRoot},
		{"expires when signed", priv, func(r *Root) { r.Expires = r.Time }, ErrMalformedRoot},
		{"expires before signed", priv, func(r *Root) { r.Expires = r.Time.Add(-time.Second) }, ErrMalformedRoot},
		// Expires is stored in whole seconds: half a second later is the
		// same second.
		{"expires in the same second", priv, func(r *Root) { r.Expires = r.Time.Add(500 * time.Millisecond) }, ErrMalformedRoot},
		{"seq 1 with prev", priv, func(r *Root) { r.Seq = 1 }, ErrMalformedRoot},
		{"seq 2 without prev", priv, func(r *Root) { r.Prev = blockstore.Hash{} }, ErrMalformedRoot},
		{"short private key", priv[:32], func(*Root) {}, ErrInvalidKey},
		{"private key with a foreign public half", append(bytes.Clone(priv[:32]), make([]byte, 32)...), func(*Root) {}, ErrInvalidKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.edit(&r)
			got, err := SignRoot(tc.priv, r)
			if !errors.Is(err, tc.target) {
				t.Fatalf("err = %v, want %v", err, tc.target)
			}
			if got != (Root{}) {
				t.Fatalf("a refused SignRoot returned %v", got)
			}
		})
	}
}

func TestSignRootTruncatesTimes(t *testing.T) {
	r, err := SignRoot(rootTestKey(), Root{
		Seq:     1,
		Time:    rootTestTime.Add(700 * time.Millisecond).In(time.FixedZone("X", 3600)),
		Expires: rootTestTime.Add(time.Hour + 300*time.Millisecond),
		Tree:    blockstore.Sum([]byte("t")),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Time.Equal(rootTestTime) || !r.Expires.Equal(rootTestTime.Add(time.Hour)) {
		t.Fatalf("times not truncated to seconds: %v, %v", r.Time, r.Expires)
	}
	if err := r.Verify(r.SiteKey, rootTestTime); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got, _ := DecodeRoot(r.Encode()); got != r {
		t.Fatal("the root SignRoot returns differs from its decoding")
	}
}

func TestRootVerify(t *testing.T) {
	priv := rootTestKey()
	key := PublicKeyOf(priv)
	other := PublicKeyOf(ed25519.NewKeyFromSeed(make([]byte, 32)))
	r := rootTestChain(t, 1)[0] // signed rootTestTime, expires 30 days on
	exp := r.Expires

	tampered := r
	tampered.Seq = 99
	badSig := r
	badSig.Sig[10] ^= 1
	// A zero signature, and a root claiming the zero key.
	noSig := r
	noSig.Sig = [64]byte{}
	zeroKeyRoot := r
	zeroKeyRoot.SiteKey = PublicKey{}

	malformed := func(edit func(*Root)) Root {
		m := r
		edit(&m)
		return signUnchecked(priv, m)
	}

	for _, tc := range []struct {
		name   string
		r      Root
		key    PublicKey
		now    time.Time
		target error // nil: accepted
	}{
		{"good", r, key, rootTestTime, nil},
		{"good just before expiry", r, key, exp.Add(-time.Nanosecond), nil},
		{"good at max skew", r, key, rootTestTime.Add(-MaxClockSkew), nil},
		{"wrong key", r, other, rootTestTime, ErrWrongKey},
		{"no key configured", zeroKeyRoot, PublicKey{}, rootTestTime, ErrWrongKey},
		{"tampered field", tampered, key, rootTestTime, ErrBadSignature},
		{"flipped signature bit", badSig, key, rootTestTime, ErrBadSignature},
		{"zero signature", noSig, key, rootTestTime, ErrBadSignature},
		{"expired at the instant", r, key, exp, ErrExpired},
		{"expired later", r, key, exp.Add(time.Hour), ErrExpired},
		{"from the future", r, key, rootTestTime.Add(-MaxClockSkew - time.Second), ErrFromFuture},
		{"from the future by a fraction", r, key, rootTestTime.Add(-MaxClockSkew - time.Nanosecond), ErrFromFuture},
		{"signed seq 0", malformed(func(m *Root) { m.Seq = 0 }), key, rootTestTime, ErrMalformedRoot},
		{"signed without tree", malformed(func(m *Root) { m.Tree = blockstore.Hash{} }), key, rootTestTime, ErrMalformedRoot},
		{"signed expiring when signed", malformed(func(m *Root) { m.Expires = m.Time }), key, rootTestTime, ErrMalformedRoot},
		{"signed seq 1 with prev", malformed(func(m *Root) { m.Prev = blockstore.Sum([]byte("x")) }), key, rootTestTime, ErrMalformedRoot},
		{"signed seq 2 without prev", malformed(func(m *Root) { m.Seq = 2 }), key, rootTestTime, ErrMalformedRoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Verify(tc.key, tc.now)
			if tc.target == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.target) {
				t.Fatalf("Verify = %v, want %v", err, tc.target)
			}
		})
	}
}

// TestRootVerifyBitFlips flips every bit of a signed root's encoding: each
// flip must be caught by DecodeRoot or by Verify.
func TestRootVerifyBitFlips(t *testing.T) {
	r := rootTestChain(t, 2)[1]
	enc := r.Encode()
	for i := range len(enc) * 8 {
		b := bytes.Clone(enc)
		b[i/8] ^= 1 << (i % 8)
		got, err := DecodeRoot(b)
		if err != nil {
			continue
		}
		if err := got.Verify(r.SiteKey, r.Time); err == nil {
			t.Fatalf("bit %d (byte %d) flipped: Verify accepted", i, i/8)
		}
	}
}

func TestRootCheckSuccessor(t *testing.T) {
	chain := rootTestChain(t, 3)
	r1, r2, r3 := chain[0], chain[1], chain[2]
	priv := rootTestKey()
	sign := func(r Root) Root {
		s, err := SignRoot(priv, r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherTree := r2
	otherTree.Tree = blockstore.Sum([]byte("another tree"))
	otherTree = sign(otherTree)
	fork := r3 // seq 3, but after a seq 2 that is not r2
	fork.Prev = otherTree.Hash()
	fork = sign(fork)
	ahead := r3
	ahead.Seq = 9
	ahead.Prev = blockstore.Sum([]byte("some seq 8"))
	ahead = sign(ahead)

	for _, tc := range []struct {
		name     string
		r, last  Root
		target   error // nil: accepted
		exactMsg string
	}{
		{"next", r2, r1, nil, ""},
		{"next again", r3, r2, nil, ""},
		{"ahead with a gap", ahead, r1, nil, ""},
		{"same", r2, r2, ErrSameRoot, ""},
		{"rollback", r1, r3, ErrRollback, "root seq 1 is older than the accepted seq 3: refusing a rollback"},
		{"same seq, other tree", otherTree, r2, ErrEquivocation, ""},
		{"next seq, other prev", fork, r2, ErrEquivocation, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.CheckSuccessor(tc.last)
			if tc.target == nil {
				if err != nil {
					t.Fatalf("CheckSuccessor = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.target) {
				t.Fatalf("CheckSuccessor = %v, want %v", err, tc.target)
			}
			if tc.exactMsg != "" && err.Error() != tc.exactMsg {
				t.Fatalf("message %q, want %q", err, tc.exactMsg)
			}
		})
	}
}

func TestRootString(t *testing.T) {
	r := rootTestChain(t, 1)[0]
	want := "root seq 1 tree " + r.Tree.Short() + " expires 2025-01-31T00:00:00Z"
	if got := r.String(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

// goldenRoots is the layout of testdata/root.golden.json, which the
// JavaScript tests read too: plain JSON, bytes as hex, times as unix
// seconds.
type goldenRoots struct {
	Comment          string       `json:"comment"`
	Seed             string       `json:"seed"`
	PublicKey        string       `json:"public_key"`
	SignatureContext string       `json:"signature_context"`
	Roots            []goldenRoot `json:"roots"`
}

type goldenRoot struct {
	Seq           uint64 `json:"seq"`
	Time          int64  `json:"time"`
	Expires       int64  `json:"expires"`
	Tree          string `json:"tree"`
	Prev          string `json:"prev"`
	Signature     string `json:"signature"`
	SignedMessage string `json:"signed_message"`
	Encoding      string `json:"encoding"`
	Hash          string `json:"hash"`
}

const rootGoldenPath = "testdata/root.golden.json"

func TestRootGolden(t *testing.T) {
	g := goldenRoots{
		Comment: "Signed root test vectors, generated by TestRootGolden (go test ./tree -run Golden -update). " +
			"Key: ed25519.NewKeyFromSeed(seed). Encoding: see tree/root.go. The signature covers " +
			"signature_context followed by the first 122 bytes of the encoding (signed_message). Times are unix seconds.",
		Seed:             hex.EncodeToString(rootTestSeed()),
		PublicKey:        PublicKeyOf(rootTestKey()).String(),
		SignatureContext: hex.EncodeToString([]byte(rootSigContext)),
	}
	for _, r := range rootTestChain(t, 2) {
		enc := r.Encode()
		g.Roots = append(g.Roots, goldenRoot{
			Seq:           r.Seq,
			Time:          r.Time.Unix(),
			Expires:       r.Expires.Unix(),
			Tree:          r.Tree.String(),
			Prev:          r.Prev.String(),
			Signature:     hex.EncodeToString(r.Sig[:]),
			SignedMessage: hex.EncodeToString(signedMessage(enc)),
			Encoding:      hex.EncodeToString(enc),
			Hash:          r.Hash().String(),
		})
	}
	want, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')

	got := golden.File(t, rootGoldenPath, want, *updateGolden)
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what this code produces: the root format or signing changed; "+
			"if that is intended, run with -update and update the JavaScript side\n got: %s\nwant: %s", rootGoldenPath, got, want)
	}

	// Read the file the way another implementation would, from the hex
	// alone, so the vectors are checked to be self-consistent too.
	var file goldenRoots
	if err := json.Unmarshal(got, &file); err != nil {
		t.Fatal(err)
	}
	seed, err := hex.DecodeString(file.Seed)
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("seed: %v", err)
	}
	key, err := ParsePublicKey(file.PublicKey)
	if err != nil || key != PublicKeyOf(ed25519.NewKeyFromSeed(seed)) {
		t.Fatalf("public key %s does not belong to the seed (%v)", file.PublicKey, err)
	}
	var prev blockstore.Hash
	for _, v := range file.Roots {
		enc, err := hex.DecodeString(v.Encoding)
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeRoot(enc)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Verify(key, time.Unix(v.Time, 0)); err != nil {
			t.Fatalf("seq %d: %v", v.Seq, err)
		}
		if r.Seq != v.Seq || r.Time.Unix() != v.Time || r.Expires.Unix() != v.Expires ||
			r.Tree.String() != v.Tree || r.Prev.String() != v.Prev || hex.EncodeToString(r.Sig[:]) != v.Signature {
			t.Fatalf("seq %d: the fields do not match the encoding", v.Seq)
		}
		if r.Hash().String() != v.Hash || r.Prev != prev {
			t.Fatalf("seq %d: hash or chain does not match", v.Seq)
		}
		if !key.Verify(mustHex(t, v.SignedMessage), r.Sig[:]) {
			t.Fatalf("seq %d: signed_message is not what was signed", v.Seq)
		}
		prev = r.Hash()
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
