package proto

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	goldenDir = "testdata/golden"
	seedDir   = "testdata/fuzz/FuzzReadMessage"
)

// hexLines formats b as lower-case hex, 32 bytes to a line, so that a
// change shows up as a readable diff. Readers strip all white space.
func hexLines(b []byte) []byte {
	var out bytes.Buffer
	h := hex.EncodeToString(b)
	for len(h) > 64 {
		out.WriteString(h[:64] + "\n")
		h = h[64:]
	}
	out.WriteString(h + "\n")
	return out.Bytes()
}

func parseHexLines(b []byte) ([]byte, error) {
	return hex.DecodeString(strings.Join(strings.Fields(string(b)), ""))
}

// seedFile is the Go fuzzing corpus format for one []byte argument.
func seedFile(b []byte) []byte {
	return []byte("go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n")
}

// compressed reports whether m's encoding depends on the zstd library's
// output, which may change between versions without anything being
// wrong. Those golden files are compared by content instead.
func compressed(m Message) bool {
	switch m := m.(type) {
	case *Block:
		return m.Encoding() == Zstd
	case *LookupResult:
		return m.InlineEncoding() == Zstd
	}
	return false
}

// TestGolden: the exact bytes of one frame of each type, shared with the
// JavaScript implementation (see testdata/golden/README.md). The
// FuzzReadMessage seeds are the same frames.
func TestGolden(t *testing.T) {
	types := map[Type]bool{}
	for _, s := range samples(t) {
		if s.golden == "" {
			continue
		}
		types[s.msg.Type()] = true
		t.Run(s.golden, func(t *testing.T) {
			path := filepath.Join(goldenDir, s.golden+".hex")
			seed := filepath.Join(seedDir, s.golden)
			b := encode(t, s.msg)
			if *update {
				writeFile(t, path, hexLines(b))
				writeFile(t, seed, seedFile(b))
				return
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			want, err := parseHexLines(raw)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if compressed(s.msg) {
				m, err := read(want)
				if err != nil {
					t.Fatalf("%s does not decode: %v", path, err)
				}
				if re := encode(t, m); !bytes.Equal(re, want) {
					t.Fatalf("%s does not re-encode to itself", path)
				}
				checkSameContent(t, s.msg, m)
				b = want
			} else if !bytes.Equal(b, want) {
				t.Fatalf("encoding differs from %s:\n got %x\nwant %x", path, b, want)
			}
			if got, err := os.ReadFile(seed); err != nil || !bytes.Equal(got, seedFile(b)) {
				t.Errorf("fuzz seed %s is missing or stale (run with -update)", seed)
			}
		})
	}
	for _, typ := range []Type{TypeGetRoot, TypeGetBlock, TypeGetBlocks, TypeLookup, TypeGetRoots, TypeEnroll, TypeGetSwarmKeys, TypeGetTLSCert,
		TypeRoot, TypeBlock, TypeMissing, TypeLookupResult, TypeGrant, TypeSwarmKeys, TypeTLSCert, TypeError} {
		if !types[typ] {
			t.Errorf("no golden frame of type %v", typ)
		}
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", path)
}
