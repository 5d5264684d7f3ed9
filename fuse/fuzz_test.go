package fuse

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadState: whatever is in a mount's state file (disk input: a
// crash, an editor, a bad disk), reading it either fails with an error
// or gives a state that writes back and reads again to the same value.
func FuzzReadState(f *testing.F) {
	f.Add([]byte(`{"version":1,"pub":"b3-0000000000000000000000000000000000000000000000000000000000000000","pub_size":0,"mode":493,"mtime":"2026-01-02T03:04:05Z","held_files":0,"held_bytes":0}`))
	f.Add([]byte(`{"version":1,"base":"b3-1111111111111111111111111111111111111111111111111111111111111111","pub":"b3-2222222222222222222222222222222222222222222222222222222222222222","pub_size":15,"hid":"b3-3333333333333333333333333333333333333333333333333333333333333333","hid_size":7,"mode":448,"mtime":"2026-12-02T04:06:50.919404102Z","held_files":1,"held_bytes":7}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"pub":"b3-zz"}`))
	f.Add([]byte(`nul`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, stateFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := readState(dir)
		if err != nil {
			return
		}
		if s == nil || s.Version != 1 {
			t.Fatalf("readState accepted %q as %+v", b, s)
		}
		if err := writeState(dir, s); err != nil {
			t.Fatal(err)
		}
		again, err := readState(dir)
		if err != nil {
			t.Fatalf("a state written back does not read: %v", err)
		}
		x, _ := json.Marshal(s)
		y, _ := json.Marshal(again)
		if string(x) != string(y) {
			t.Fatalf("state changed on a round trip:\n%s\n%s", x, y)
		}
	})
}

// FuzzUnescapeMount: mountinfo's escapes (from /proc) decode without
// panicking, and text without backslashes is left alone.
func FuzzUnescapeMount(f *testing.F) {
	for _, s := range []string{`/tmp/a\040b`, `/plain`, `\`, `\04`, `\777`, `\134\040\011`, `/x\0401`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u := unescapeMount(s)
		if !strings.Contains(s, `\`) && u != s {
			t.Fatalf("%q changed to %q", s, u)
		}
		if len(u) > len(s) {
			t.Fatalf("%q grew to %q", s, u)
		}
	})
}
