package tree

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// openLogCorpus is the committed FuzzOpenLog corpus: good logs, a torn
// one, and damaged ones.
func openLogCorpus(t testing.TB) map[string][]byte {
	chain := rootTestChain(t, 3)
	good := logBytes(chain...)
	torn := append(bytes.Clone(good), logFrame(chain[0].Encode())[:100]...)
	flipped := bytes.Clone(good)
	flipped[len(logMagic)+logFrameOverhead+RootSize+50] ^= 1
	return map[string][]byte{
		"empty-log":    []byte(logMagic),
		"one-root":     logBytes(chain[0]),
		"three-roots":  good,
		"torn-tail":    torn,
		"zero-tail":    append(bytes.Clone(good), make([]byte, 20)...),
		"flipped-byte": flipped,
		"bad-header":   append([]byte("GRITSRL0"), good[len(logMagic):]...),
		"short-record": append([]byte(logMagic), logFrame([]byte{TagRoot, RootVersion})...),
	}
}

func TestFuzzCorpusOpenLog(t *testing.T) {
	checkFuzzCorpus(t, "FuzzOpenLog", openLogCorpus(t))
}

// FuzzOpenLog opens arbitrary files as logs. OpenLog must not panic; a
// refusal must be ErrLogCorrupt and leave the file alone; an accepted log
// must hold exactly its roots' encodings, and may only have lost a tail
// no longer than one frame.
func FuzzOpenLog(f *testing.F) {
	for _, b := range openLogCorpus(f) {
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "roots.log")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := OpenLog(context.Background(), path, nil)
		after, rerr := os.ReadFile(path)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			if !errors.Is(err, ErrLogCorrupt) {
				t.Fatalf("OpenLog = %v, want ErrLogCorrupt", err)
			}
			if !bytes.Equal(after, data) {
				t.Fatal("OpenLog modified a log it refused")
			}
			return
		}
		defer l.Close()
		if want := logBytes(l.Roots()...); !bytes.Equal(after, want) {
			t.Fatalf("the file is not exactly the roots' encodings:\nfile %x\nroots %x", after, want)
		}
		if !bytes.HasPrefix(data, after) || len(data)-len(after) > maxLogFrame {
			t.Fatalf("OpenLog cut %d bytes, more than a torn tail", len(data)-len(after))
		}
		if latest, ok := l.Latest(); ok {
			if found, ok := l.Find(latest.Hash()); !ok || found != latest {
				t.Fatal("Find does not find the latest root")
			}
		}
	})
}
