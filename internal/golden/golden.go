// Package golden holds the one "rewrite with -update, else compare"
// mechanism of the golden files and committed fuzz corpora that tests
// across the repository check against.
package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// File returns the committed content of path for the caller to compare
// with produced, what the code produces now. With update it first
// rewrites path with produced (creating directories), so a deliberate
// format change is one `go test -update` away.
func File(t testing.TB, path string, produced []byte, update bool) []byte {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, produced, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	return got
}

// FuzzSeed is a seed file in the `go test fuzz v1` format for the given
// arguments, each a []byte or a string.
func FuzzSeed(args ...any) []byte {
	b := []byte("go test fuzz v1\n")
	for _, a := range args {
		switch a := a.(type) {
		case []byte:
			b = fmt.Appendf(b, "[]byte(%q)\n", a)
		case string:
			b = fmt.Appendf(b, "string(%q)\n", a)
		default:
			panic(fmt.Sprintf("golden.FuzzSeed: %T is not a fuzz argument this repository uses", a))
		}
	}
	return b
}
