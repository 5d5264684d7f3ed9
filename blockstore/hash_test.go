package blockstore_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
)

// emptyHash is the BLAKE3-256 of no bytes, from the BLAKE3 test vectors.
const emptyHash = "b3-af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"

func TestParseHash(t *testing.T) {
	hex64 := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"empty block", emptyHash, true},
		{"all digits", "b3-" + hex64, true},
		{"zero", "b3-" + strings.Repeat("0", 64), true},
		{"upper-case hex", "b3-" + strings.ToUpper(hex64), false},
		{"one upper-case digit", emptyHash[:10] + "F" + emptyHash[11:], false},
		{"upper-case prefix", "B3-" + hex64, false},
		{"no prefix", hex64, false},
		{"other prefix", "sha256-" + hex64, false},
		{"prefix only", "b3-", false},
		{"empty string", "", false},
		{"too short", emptyHash[:len(emptyHash)-1], false},
		{"too long", emptyHash + "0", false},
		{"non-hex", "b3-" + strings.Repeat("g", 64), false},
		{"space", " " + emptyHash, false},
		{"trailing newline", emptyHash + "\n", false},
		{"multi-byte rune", "b3-" + hex64[:62] + "é", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := blockstore.ParseHash(tc.in)
			if tc.ok {
				if err != nil {
					t.Fatalf("ParseHash(%q): %v", tc.in, err)
				}
				if got := h.String(); got != tc.in {
					t.Errorf("ParseHash(%q).String() = %q", tc.in, got)
				}
				return
			}
			if !errors.Is(err, blockstore.ErrInvalidHash) {
				t.Fatalf("ParseHash(%q): err = %v, want ErrInvalidHash", tc.in, err)
			}
			if !h.IsZero() {
				t.Errorf("ParseHash(%q) returned %s with its error", tc.in, h)
			}
		})
	}
}

func TestHashForms(t *testing.T) {
	h := blockstore.Sum(nil)
	if got := h.String(); got != emptyHash {
		t.Errorf("Sum(nil) = %s, want %s", got, emptyHash)
	}
	if got, want := h.Hex(), emptyHash[3:]; got != want {
		t.Errorf("Hex() = %s, want %s", got, want)
	}
	if got, want := h.Short(), emptyHash[:15]; got != want {
		t.Errorf("Short() = %s, want %s", got, want)
	}
	if h.IsZero() || !(blockstore.Hash{}).IsZero() {
		t.Error("IsZero is wrong")
	}

	text, err := h.MarshalText()
	if err != nil || string(text) != emptyHash {
		t.Fatalf("MarshalText = %q, %v", text, err)
	}
	var back blockstore.Hash
	if err := back.UnmarshalText(text); err != nil || back != h {
		t.Fatalf("UnmarshalText(%q) = %s, %v", text, back, err)
	}
	if err := back.UnmarshalText([]byte("b3-nope")); !errors.Is(err, blockstore.ErrInvalidHash) {
		t.Errorf("UnmarshalText of garbage: err = %v", err)
	}

	// Hashes travel in JSON (manifests, APIs) as their text form.
	type doc struct {
		Root blockstore.Hash            `json:"root"`
		Refs map[blockstore.Hash]string `json:"refs"`
	}
	in := doc{Root: h, Refs: map[blockstore.Hash]string{blockstore.Sum([]byte("x")): "x"}}
	js, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"root":"`+emptyHash+`"`) {
		t.Errorf("JSON %s does not hold the text form", js)
	}
	var out doc
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	if out.Root != in.Root || len(out.Refs) != 1 || out.Refs[blockstore.Sum([]byte("x"))] != "x" {
		t.Errorf("JSON round trip: %+v, want %+v", out, in)
	}
}

// FuzzParseHash checks that each hash has exactly one spelling: whatever
// ParseHash accepts prints back as the same string, and what it refuses it
// refuses with ErrInvalidHash.
func FuzzParseHash(f *testing.F) {
	f.Add(emptyHash)
	f.Add(blockstore.Sum([]byte("grits")).String())
	f.Add("b3-" + strings.Repeat("F", 64))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := blockstore.ParseHash(s)
		if err != nil {
			if !errors.Is(err, blockstore.ErrInvalidHash) {
				t.Fatalf("ParseHash(%q): error %v is not ErrInvalidHash", s, err)
			}
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("ParseHash(%q).String() = %q", s, got)
		}
		again, err := blockstore.ParseHash(h.String())
		if err != nil || again != h {
			t.Fatalf("reparsing %s: %s, %v", h, again, err)
		}
	})
}
