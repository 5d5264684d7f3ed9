package offload

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/grits-cdn/grits/tree"
)

func sampleLedger() Ledger {
	var l Ledger
	t0 := time.UnixMilli(1_750_000_000_123).UTC()
	l.Set(Record{Node: tree.PublicKey{9}, Addr: "10.0.0.9:7433", Verified: 12, LastSeen: t0, LastAudit: t0, LastPass: t0, Passed: 1440, Strikes: 0})
	l.Set(Record{Node: tree.PublicKey{1, 2}, Addr: "[::1]:7433", LastSeen: t0.Add(-time.Hour), LastAudit: t0, Passed: 3, Failed: 1,
		FailedAt: t0, Strikes: 3, Reason: "audit: block b3-0011 missing ✗"})
	return l
}

func TestLedgerRoundTrip(t *testing.T) {
	l := sampleLedger()
	if l.Records[0].Node != (tree.PublicKey{1, 2}) {
		t.Fatalf("Set does not keep records sorted: %v first", l.Records[0].Node)
	}
	b := l.Encode()
	got, err := DecodeLedger(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 2 {
		t.Fatalf("decoded %d records, want 2", len(got.Records))
	}
	for i := range got.Records {
		w, g := l.Records[i], got.Records[i]
		if g.Node != w.Node || g.Addr != w.Addr || g.Verified != w.Verified || !g.LastSeen.Equal(w.LastSeen) || !g.LastPass.Equal(w.LastPass) ||
			!g.FailedAt.Equal(w.FailedAt) || g.Passed != w.Passed || g.Failed != w.Failed || g.Strikes != w.Strikes || g.Reason != w.Reason {
			t.Errorf("record %d: got %+v, want %+v", i, g, w)
		}
	}
	if r, ok := got.Find(tree.PublicKey{9}); !ok || r.Verified != 12 {
		t.Errorf("Find: %+v, %v", r, ok)
	}
	if !bytes.Equal(got.Encode(), b) {
		t.Errorf("re-encoding differs")
	}

	path := filepath.Join(t.TempDir(), "offload.ledger")
	if l, err := ReadLedger(path); err != nil || len(l.Records) != 0 {
		t.Errorf("ReadLedger of a missing file: %v, %v; want an empty ledger", l, err)
	}
	if err := WriteLedger(path, l); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadLedger(path); err != nil || len(got.Records) != 2 {
		t.Errorf("ReadLedger after WriteLedger: %d records, %v", len(got.Records), err)
	}
}

// TestLedgerRefusesDamage: every truncation, a flipped bit anywhere, and
// each non-canonical or out-of-bounds form is refused.
func TestLedgerRefusesDamage(t *testing.T) {
	b := sampleLedger().Encode()
	for n := range len(b) {
		if _, err := DecodeLedger(b[:n]); !errors.Is(err, ErrLedger) {
			t.Fatalf("truncated to %d of %d bytes: want ErrLedger, got %v", n, len(b), err)
		}
	}
	for i := range len(b) {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		if _, err := DecodeLedger(c); !errors.Is(err, ErrLedger) {
			t.Fatalf("bit flipped in byte %d: want ErrLedger, got %v", i, err)
		}
	}
	withCRC := func(body []byte) []byte { return Ledger{}.withCRC(body) }
	cases := map[string][]byte{
		"unsorted":       withCRC(append(append([]byte(ledgerMagic), 2), append(rec(9), rec(1)...)...)),
		"duplicate":      withCRC(append(append([]byte(ledgerMagic), 2), append(rec(1), rec(1)...)...)),
		"count too big":  withCRC(append([]byte(ledgerMagic), 0x81, 0x40)),
		"overlong count": withCRC(append(append([]byte(ledgerMagic), 0x81, 0x00), rec(1)...)),
		"trailing byte":  withCRC(append(append(append([]byte(ledgerMagic), 1), rec(1)...), 0)),
	}
	for name, c := range cases {
		if _, err := DecodeLedger(c); !errors.Is(err, ErrLedger) {
			t.Errorf("%s: want ErrLedger, got %v", name, err)
		}
	}
	// The helper builds valid records: one alone decodes.
	if _, err := DecodeLedger(withCRC(append(append([]byte(ledgerMagic), 1), rec(1)...))); err != nil {
		t.Errorf("one hand-built record: %v", err)
	}
}

// rec is the smallest valid record of node {first}.
func rec(first byte) []byte {
	b := make([]byte, 32, 42)
	b[0] = first
	return append(b, 0 /*addr*/, 0 /*verified*/, 0, 0, 0, 0 /*times*/, 0, 0 /*counts*/, 0 /*strikes*/, 0 /*reason*/)
}

// FuzzDecodeLedger fuzzes the part behind the checksum: the input is a
// ledger without its CRC, which the target appends (a fuzzer would
// almost never guess one). Whatever decodes must re-encode to the same
// bytes. Seeds: testdata/fuzz/FuzzDecodeLedger.
func FuzzDecodeLedger(f *testing.F) {
	f.Add(Ledger{}.Encode()[:len(ledgerMagic)+1])
	l := sampleLedger().Encode()
	f.Add(l[:len(l)-4])
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, b := range [][]byte{body, Ledger{}.withCRC(body)} {
			l, err := DecodeLedger(b)
			if err != nil {
				if !errors.Is(err, ErrLedger) {
					t.Fatalf("error not matching ErrLedger: %v", err)
				}
				continue
			}
			if got := l.Encode(); !bytes.Equal(got, b) {
				t.Fatalf("decoded ledger re-encodes differently:\n in  %x\n out %x", b, got)
			}
		}
	})
}

// TestWriteLedgerSeeds writes the fuzz seeds when run with
// GRITS_WRITE_SEEDS=1 (the committed ones came from it).
func TestWriteLedgerSeeds(t *testing.T) {
	if os.Getenv("GRITS_WRITE_SEEDS") == "" {
		t.Skip("set GRITS_WRITE_SEEDS=1 to rewrite testdata/fuzz/FuzzDecodeLedger")
	}
	l := sampleLedger().Encode()
	var one Ledger
	one.Set(sampleLedger().Records[1])
	o := one.Encode()
	seeds := map[string][]byte{
		"empty":       Ledger{}.Encode()[:len(ledgerMagic)+1],
		"two-records": l[:len(l)-4],
		"one-record":  o[:len(o)-4],
		"with-crc":    l,
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeLedger")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
