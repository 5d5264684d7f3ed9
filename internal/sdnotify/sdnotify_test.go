package sdnotify

import (
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	abstract := "@grits-sdnotify-test-" + filepath.Base(t.TempDir())
	for _, tt := range []struct{ env, listen string }{{path, path}, {abstract, "\x00" + abstract[1:]}} {
		c := listen(t, tt.listen)
		env := func(k string) string {
			if k == "NOTIFY_SOCKET" {
				return tt.env
			}
			return ""
		}
		for _, state := range []string{Ready, Reloading(), Stopping} {
			if err := Notify(env, state); err != nil {
				t.Fatalf("%s: %v", tt.env, err)
			}
			if got := read(t, c); got != state {
				t.Errorf("%s: got %q, want %q", tt.env, got, state)
			}
		}
	}
	if !strings.HasPrefix(Reloading(), "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("Reloading() = %q", Reloading())
	}
	if err := Notify(func(string) string { return "" }, Ready); !errors.Is(err, ErrNoSocket) {
		t.Errorf("without NOTIFY_SOCKET: %v", err)
	}
	if err := Notify(func(string) string { return "relative" }, Ready); err == nil {
		t.Errorf("relative NOTIFY_SOCKET: no error")
	}
}
