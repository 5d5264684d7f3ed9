package membership

import (
	"bytes"
	"errors"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grits-cdn/grits/internal/golden"
	"github.com/grits-cdn/grits/tree"
)

// The fuzzers check that the decoders never panic, that every error
// wraps the package's sentinels, and that whatever they accept is
// canonical: it re-encodes to exactly the input, so a record has one
// spelling (and a signature over it one meaning). Signed records are
// also checked against forgery: the fuzzer cannot make ed25519
// signatures, so whatever verifies must be one of the seeds that were
// really signed.
//
// Every format here is canonical: fixed-size fields, minimal varints
// (wire.Reader refuses overlong ones), length-prefixed strings, ban
// lists sorted and unique, nested records decoded by their own canonical
// decoders. Meta clamps Load to 100 on Encode, but DecodeMeta refuses
// anything above 100, so decoded metadata re-encodes unchanged too. The
// one exception is the token's text form (see FuzzParseToken).
//
// The committed seed corpora in testdata/fuzz are generated from the
// fixtures in records_test.go; TestFuzzCorpus keeps them in step
// (go test ./membership -run Corpus -update rewrites them).

// fuzzSite is the site key of the fixtures, which the fuzzers check
// signatures against.
var fuzzSite = tree.PublicKeyOf(recSite)

// fuzzNow is when the fixtures are valid.
var fuzzNow = recTime

func addSeeds(f *testing.F, seeds map[string][]byte) {
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
}

func signedSet(seeds map[string][]byte) map[string]bool {
	s := map[string]bool{}
	for _, b := range seeds {
		s[string(b)] = true
	}
	return s
}

// wantErr fails t unless err wraps one of the sentinels.
func wantErr(t *testing.T, what string, err error, sentinels ...error) {
	t.Helper()
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("%s: error %v wraps none of %v", what, err, sentinels)
}

// truncAndTrail adds the near misses every corpus has.
func truncAndTrail(c map[string][]byte, good []byte) {
	c["truncated"] = slices.Clone(good[:len(good)-1])
	c["trailing"] = append(slices.Clone(good), 0)
	c["empty"] = []byte{}
	v2 := slices.Clone(good)
	v2[1] = 2
	c["version2"] = v2
}

func certCorpus(t testing.TB) map[string][]byte {
	v := recFixture(t)
	c := map[string][]byte{"valid": v.Cert.Encode()}
	origin, err := IssueCert(recSite, recID(recOriginSeed), RoleOrigin, recTime, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c["origin"] = origin.Encode()
	expired, err := IssueCert(recSite, recID(recNodeSeed), RoleStorage, recTime, -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c["expired"] = expired.Encode()
	other, err := IssueCert(recOther, recID(recNodeSeed), RoleVolunteer, recTime, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c["other-site"] = other.Encode()
	c["role0"] = signedCert(recSite, NodeCert{Node: recID(recNodeSeed), Issued: recTime, Expires: recTime.Add(time.Hour)}).Encode()
	truncAndTrail(c, v.Cert.Encode())
	return c
}

func FuzzDecodeCert(f *testing.F) {
	seeds := certCorpus(f)
	addSeeds(f, seeds)
	signed := signedSet(seeds)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCert(data)
		if err != nil {
			wantErr(t, "DecodeCert", err, ErrMalformed)
			return
		}
		if re := c.Encode(); !bytes.Equal(re, data) {
			t.Fatalf("accepted a non-canonical certificate:\n in %x\nout %x", data, re)
		}
		if !c.Role.valid() {
			t.Fatalf("accepted role %d", c.Role)
		}
		if err := c.Verify(fuzzSite, fuzzNow); err == nil && !signed[string(data)] {
			t.Fatalf("Verify accepted a certificate that was never signed: %x", data)
		} else if err != nil {
			wantErr(t, "Verify", err, ErrBadSignature, ErrExpired)
		}
	})
}

func tokenCorpus(t testing.TB) map[string][]byte {
	v := recFixture(t)
	c := map[string][]byte{"valid": v.Token.Encode()}
	tk := v.Token
	tk.Role, tk.OriginAddr = RoleVolunteer, strings.Repeat("a", MaxAddrLen-5)+":4433"
	c["volunteer-long-addr"] = signedToken(recSite, tk).Encode()
	tk = v.Token
	tk.Site = tree.PublicKeyOf(recOther)
	c["other-site"] = signedToken(recOther, tk).Encode()
	tk = v.Token
	tk.OriginAddr = ""
	c["no-addr"] = signedToken(recSite, tk).Encode()
	tk = v.Token
	tk.Role = RoleOrigin
	c["origin-role"] = signedToken(recSite, tk).Encode()
	tk = v.Token
	tk.Expires = recTime.Add(-time.Second)
	c["expired"] = signedToken(recSite, tk).Encode()
	truncAndTrail(c, v.Token.Encode())
	return c
}

func checkToken(t *testing.T, tk Token, data []byte, signed map[string]bool) {
	t.Helper()
	if re := tk.Encode(); !bytes.Equal(re, data) {
		t.Fatalf("accepted a non-canonical token:\n in %x\nout %x", data, re)
	}
	if tk.OriginAddr == "" || tk.Role != RoleVolunteer && tk.Role != RoleStorage {
		t.Fatalf("accepted token %+v", tk)
	}
	again, err := ParseToken(tk.String())
	if err != nil || again != tk {
		t.Fatalf("text form does not parse back: %v", err)
	}
	if err := tk.Verify(fuzzSite, fuzzNow); err == nil && !signed[string(data)] {
		t.Fatalf("Verify accepted a token that was never signed: %x", data)
	} else if err != nil {
		wantErr(t, "Verify", err, ErrBadSignature, ErrExpired)
	}
}

func FuzzDecodeToken(f *testing.F) {
	seeds := tokenCorpus(f)
	addSeeds(f, seeds)
	signed := signedSet(seeds)
	f.Fuzz(func(t *testing.T, data []byte) {
		tk, err := DecodeToken(data)
		if err != nil {
			wantErr(t, "DecodeToken", err, ErrMalformed)
			return
		}
		checkToken(t, tk, data, signed)
	})
}

func tokenTextCorpus(t testing.TB) map[string]string {
	text := recFixture(t).Token.String()
	rest := strings.TrimPrefix(text, tokenPrefix)
	return map[string]string{
		"valid":      text,
		"whitespace": "  " + text + "\r\n",
		"wrapped":    tokenPrefix + rest[:60] + "\n" + rest[60:],
		"no-prefix":  rest,
		"truncated":  text[:len(text)-3],
		"padded":     text + "==",
		"std-base64": strings.NewReplacer("-", "+", "_", "/").Replace(text),
		"empty":      "",
	}
}

// FuzzParseToken: the text form is the binary form in unpadded base64url
// after a prefix. It is not canonical, by design of the decoder it uses:
// ParseToken trims surrounding white space, base64 decoding skips \r and
// \n anywhere (a token wrapped when pasted still parses), and it ignores
// the unused low bits of the last character. None of this matters: the
// origin refuses a second use by nonce, not by text. The fuzzer checks
// that these are the only differences from String().
func FuzzParseToken(f *testing.F) {
	texts := tokenTextCorpus(f)
	for _, name := range slices.Sorted(maps.Keys(texts)) {
		f.Add(texts[name])
	}
	signed := signedSet(tokenCorpus(f))
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := ParseToken(s)
		if err != nil {
			wantErr(t, "ParseToken", err, ErrMalformed)
			return
		}
		checkToken(t, tk, tk.Encode(), signed)
		want := tk.String()
		got := strings.NewReplacer("\r", "", "\n", "").Replace(strings.TrimSpace(s))
		if got != want && (len(got) != len(want) || got[:len(got)-1] != want[:len(want)-1]) {
			t.Fatalf("ParseToken accepted %q for %q", s, want)
		}
	})
}

func bansCorpus(t testing.TB) map[string][]byte {
	v := recFixture(t)
	c := map[string][]byte{"two": v.Bans.Encode()}
	empty, err := SignBans(recSite, nil, nil, recSeed(recOldKeySeed), recTime)
	if err != nil {
		t.Fatal(err)
	}
	c["empty-list"] = empty.Encode()
	next, err := SignBans(recSite, v.Bans, []NodeID{recID(recOriginSeed)}, recSeed(recOldKeySeed), recTime.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	c["successor"] = next.Encode()
	other, err := SignBans(recOther, nil, v.Bans.Nodes, recSeed(recNewKeySeed), recTime)
	if err != nil {
		t.Fatal(err)
	}
	c["other-site"] = other.Encode()
	l := *v.Bans
	l.Nodes = []NodeID{l.Nodes[1], l.Nodes[0]}
	c["unsorted"] = signedBans(recSite, l).Encode()
	l = *v.Bans
	l.Nodes = []NodeID{l.Nodes[0], l.Nodes[0]}
	c["duplicate"] = signedBans(recSite, l).Encode()
	l = *v.Bans
	l.Version = 0
	c["version0"] = signedBans(recSite, l).Encode()
	l = *v.Bans
	l.Version = 1 << 40
	c["big-version"] = signedBans(recSite, l).Encode()
	truncAndTrail(c, v.Bans.Encode())
	return c
}

func FuzzDecodeBans(f *testing.F) {
	seeds := bansCorpus(f)
	addSeeds(f, seeds)
	signed := signedSet(seeds)
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := DecodeBans(data)
		if err != nil {
			wantErr(t, "DecodeBans", err, ErrMalformed)
			return
		}
		if re := l.Encode(); !bytes.Equal(re, data) {
			t.Fatalf("accepted a non-canonical ban list:\n in %x\nout %x", data, re)
		}
		if l.Version == 0 || len(l.Nodes) > MaxBans {
			t.Fatalf("accepted version %d with %d nodes", l.Version, len(l.Nodes))
		}
		for i, n := range l.Nodes {
			if i > 0 && bytes.Compare(l.Nodes[i-1][:], n[:]) >= 0 {
				t.Fatal("accepted an unsorted list")
			}
			if !l.Banned(n) {
				t.Fatalf("node %d on the list is not Banned", i)
			}
		}
		if err := l.Verify(fuzzSite); err == nil && !signed[string(data)] {
			t.Fatalf("Verify accepted a ban list that was never signed: %x", data)
		} else if err != nil {
			wantErr(t, "Verify", err, ErrBadSignature)
		}
	})
}

func keyringCorpus(t testing.TB) map[string][]byte {
	v := recFixture(t)
	k1, k2 := recSeed(recNewKeySeed), recSeed(recOldKeySeed)
	c := map[string][]byte{
		"with-bans":   v.Ring.Encode(),
		"no-bans":     Keyring{Keys: [][]byte{k2}}.Encode(),
		"four-keys":   Keyring{Bans: v.Bans, Keys: [][]byte{k1, k2, k2, k1}}.Encode(),
		"five-keys":   Keyring{Keys: [][]byte{k1, k2, k2, k1, k1}}.Encode(),
		"zero-keys":   Keyring{Bans: v.Bans}.Encode(),
		"bad-primary": Keyring{Bans: v.Bans, Keys: [][]byte{k2, k1}}.Encode(),
		"short-key":   Keyring{Keys: [][]byte{k1[:31]}}.Encode(),
	}
	other, err := SignBans(recOther, nil, v.Bans.Nodes, k1, recTime)
	if err != nil {
		t.Fatal(err)
	}
	c["foreign-bans"] = Keyring{Bans: other, Keys: [][]byte{k1}}.Encode()
	truncAndTrail(c, v.Ring.Encode())
	return c
}

func FuzzDecodeKeyring(f *testing.F) {
	addSeeds(f, keyringCorpus(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := DecodeKeyring(data, fuzzSite)
		if err != nil {
			wantErr(t, "DecodeKeyring", err, ErrMalformed, ErrBadSignature)
			return
		}
		if re := k.Encode(); !bytes.Equal(re, data) {
			t.Fatalf("accepted a non-canonical keyring:\n in %x\nout %x", data, re)
		}
		if err := k.Validate(); err != nil {
			t.Fatalf("accepted an invalid keyring: %v", err)
		}
		if k.Bans != nil && k.Bans.Verify(fuzzSite) != nil {
			t.Fatal("accepted a ban list the site did not sign")
		}
	})
}

func grantCorpus(t testing.TB) map[string][]byte {
	v := recFixture(t)
	c := map[string][]byte{
		"full":    v.Grant.Encode(),
		"minimal": Grant{Cert: v.Cert, Ring: Keyring{Keys: [][]byte{recSeed(recOldKeySeed)}}}.Encode(),
	}
	g := v.Grant
	g.Cert.Sig[0] ^= 1
	c["bad-cert-sig"] = g.Encode()
	g = v.Grant
	root := v.Root
	root.Sig[0] ^= 1
	g.Root = &root
	c["bad-root-sig"] = g.Encode()
	g = v.Grant
	g.Seeds = slices.Repeat([]string{"192.0.2.1:7946"}, maxSeeds)
	c["max-seeds"] = g.Encode()
	g = v.Grant
	g.Ring = Keyring{Bans: v.Bans, Keys: [][]byte{recSeed(recOldKeySeed)}}
	c["bad-primary"] = g.Encode()
	truncAndTrail(c, v.Grant.Encode())
	return c
}

func FuzzDecodeGrant(f *testing.F) {
	addSeeds(f, grantCorpus(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := DecodeGrant(data, fuzzSite)
		if err != nil {
			wantErr(t, "DecodeGrant", err, ErrMalformed, ErrBadSignature, ErrExpired,
				tree.ErrMalformedRoot, tree.ErrWrongKey, tree.ErrBadSignature)
			return
		}
		if re := g.Encode(); !bytes.Equal(re, data) {
			t.Fatalf("accepted a non-canonical grant:\n in %x\nout %x", data, re)
		}
		if len(g.Seeds) > maxSeeds || g.Ring.Validate() != nil || g.Cert.Verify(fuzzSite, g.Cert.Issued) != nil {
			t.Fatalf("accepted an invalid grant %+v", g)
		}
		if g.Root != nil && g.Root.Verify(fuzzSite, g.Root.Time) != nil {
			t.Fatal("accepted a root the site did not sign")
		}
	})
}

func metaCorpus(t testing.TB) map[string][]byte {
	v := recFixture(t)
	c := map[string][]byte{
		"realistic": mustMeta(t, v.Meta),
		"zero":      mustMeta(t, Meta{}),
		"cache":     mustMeta(t, Meta{Cert: v.Cert.Encode(), ProtoAddr: "192.0.2.1:4433", Capacity: 1 << 30, Load: 100, RootSeq: 1}),
	}
	m := v.Meta
	m.URL = ""
	m.URL = strings.Repeat("u", MetaMaxSize-len(mustMeta(t, m))-1)
	c["max-size"] = mustMeta(t, m)
	load := mustMeta(t, Meta{Load: 100})
	load[6] = 101 // tag, version, three empty fields, capacity 0, load
	c["load101"] = load
	truncAndTrail(c, mustMeta(t, v.Meta))
	ext := v.Meta
	ext.Ext = []MetaExt{{Type: 1, Data: []byte("a")}, {Type: 9, Data: nil}}
	c["extensions"] = mustMeta(t, ext)
	desc := mustMeta(t, Meta{Ext: []MetaExt{{Type: 2}}})
	c["ext-descending"] = append(desc, 1, 0) // type 1 after type 2
	return c
}

func FuzzDecodeMeta(f *testing.F) {
	addSeeds(f, metaCorpus(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMeta(data)
		if err != nil {
			wantErr(t, "DecodeMeta", err, ErrMalformed)
			return
		}
		if m.Load > 100 {
			t.Fatalf("accepted load %d", m.Load)
		}
		re, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded metadata does not encode: %v", err)
		}
		if !bytes.Equal(re, data) {
			t.Fatalf("accepted non-canonical metadata:\n in %x\nout %x", data, re)
		}
	})
}

func TestFuzzCorpus(t *testing.T) {
	checkFuzzCorpus(t, "FuzzDecodeCert", certCorpus(t))
	checkFuzzCorpus(t, "FuzzDecodeToken", tokenCorpus(t))
	checkFuzzCorpus(t, "FuzzParseToken", tokenTextCorpus(t))
	checkFuzzCorpus(t, "FuzzDecodeBans", bansCorpus(t))
	checkFuzzCorpus(t, "FuzzDecodeKeyring", keyringCorpus(t))
	checkFuzzCorpus(t, "FuzzDecodeGrant", grantCorpus(t))
	checkFuzzCorpus(t, "FuzzDecodeMeta", metaCorpus(t))
	checkFuzzCorpus(t, "FuzzDecodeSnapshot", snapshotCorpus(t))
	checkFuzzCorpus(t, "FuzzDecodeHere", hereCorpus(t))
	checkFuzzCorpus(t, "FuzzDecodeClaim", claimCorpus(t))
	checkFuzzCorpus(t, "FuzzDecodeGrantCap", grantCapCorpus(t))
}

// checkFuzzCorpus compares the committed seed files of a fuzzer with the
// seeds the code generates (or rewrites them with -update), so the corpus
// cannot silently drift from the formats.
func checkFuzzCorpus[V []byte | string](t *testing.T, fuzzer string, seeds map[string]V) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzzer)
	for name, v := range seeds {
		path := filepath.Join(dir, name)
		want := golden.FuzzSeed(any(v))
		if got := golden.File(t, path, want, *updateGolden); !bytes.Equal(got, want) {
			t.Errorf("%s differs from the generated seed; run with -update", path)
		}
	}
}

func claimCorpus(t testing.TB) map[string][]byte {
	v := recFixture(t)
	signed, err := SignClaim(recKey(recNodeSeed), v.Meta, net.ParseIP("192.0.2.1"), 7946, recTime)
	if err != nil {
		t.Fatal(err)
	}
	good := signed.Ext[0].Data
	c := map[string][]byte{"valid": good}
	c["truncated"] = slices.Clone(good[:len(good)-1])
	c["trailing"] = append(slices.Clone(good), 0)
	c["empty"] = []byte{}
	far := slices.Clone(good)
	far[0] = 0xff // a time past 2^62 ms
	c["far-future"] = far
	return c
}

// FuzzDecodeClaim decodes a claim record, and checks it as the claim of
// metadata, as admission does with what gossip brings.
func FuzzDecodeClaim(f *testing.F) {
	addSeeds(f, claimCorpus(f))
	v := recFixture(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m := v.Meta
		m.Ext = []MetaExt{{Type: ExtClaim, Data: data}}
		_, verr := VerifyClaim(m, recID(recNodeSeed), net.ParseIP("192.0.2.1"), 7946)
		c, err := DecodeClaim(data)
		if err != nil {
			wantErr(t, "DecodeClaim", err, ErrMalformed)
			wantErr(t, "VerifyClaim", verr, ErrMalformed)
			return
		}
		if !bytes.Equal(c.Encode(), data) {
			t.Fatalf("claim does not round-trip:\n in %x\nout %x", data, c.Encode())
		}
		if verr != nil {
			wantErr(t, "VerifyClaim", verr, ErrBadSignature)
		}
	})
}

func grantCapCorpus(t testing.TB) map[string][]byte {
	g := IssueGrant(recSite, recID(recNodeSeed), 200e9, recTime)
	c := map[string][]byte{"valid": g.Encode(), "zero": IssueGrant(recSite, recID(recNodeSeed), 0, recTime).Encode(),
		"max": IssueGrant(recSite, recID(recNodeSeed), 1<<64-1, recTime).Encode()}
	truncAndTrail(c, g.Encode())
	return c
}

// FuzzDecodeGrantCap decodes a capacity grant as gossip brings it.
func FuzzDecodeGrantCap(f *testing.F) {
	addSeeds(f, grantCapCorpus(f))
	signed := signedSet(grantCapCorpus(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := DecodeGrantCap(data)
		if err != nil {
			wantErr(t, "DecodeGrantCap", err, ErrMalformed)
			return
		}
		if !bytes.Equal(g.Encode(), data) {
			t.Fatalf("grant does not round-trip:\n in %x\nout %x", data, g.Encode())
		}
		if err := g.Verify(tree.PublicKeyOf(recSite)); err == nil && !signed[string(data)] {
			t.Fatalf("a grant the site never signed verifies: %x", data)
		}
	})
}
