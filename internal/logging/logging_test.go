package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) lines() []string {
	return strings.Split(strings.TrimSuffix(s.String(), "\n"), "\n")
}

func TestFormatAuto(t *testing.T) {
	for _, tt := range []struct {
		terminal bool
		json     bool
	}{{false, true}, {true, false}} {
		var b syncBuffer
		c := New(&b, Options{Terminal: tt.terminal})
		c.Logger().Warn("hello", "n", 1)
		line := b.String()
		if isJSON := json.Valid([]byte(line)); isJSON != tt.json {
			t.Errorf("terminal %v: JSON %v, want %v: %q", tt.terminal, isJSON, tt.json, line)
		}
	}
}

// TestSwitchFollowsDerived: loggers derived (With, WithGroup) before a
// format or level change follow it, keeping their attributes.
func TestSwitchFollowsDerived(t *testing.T) {
	var b syncBuffer
	c := New(&b, Options{Terminal: true})
	l := c.Logger().With("component", "swarm").WithGroup("g")
	l.Info("dropped: below warn")
	if b.String() != "" {
		t.Fatalf("info at level warn was written: %q", b.String())
	}
	l.Warn("as text", "k", "v")
	if err := c.SetFormat(FormatJSON); err != nil {
		t.Fatal(err)
	}
	c.SetLevel(slog.LevelDebug)
	l.Debug("as json", "k", "w")
	lines := b.lines()
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", lines)
	}
	if !strings.Contains(lines[0], "component=swarm") || !strings.Contains(lines[0], "g.k=v") {
		t.Errorf("text line: %q", lines[0])
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatalf("second line is not JSON: %q", lines[1])
	}
	if m["component"] != "swarm" || m["g"].(map[string]any)["k"] != "w" || m["level"] != "DEBUG" {
		t.Errorf("JSON line: %v", m)
	}
	if err := c.SetFormat("xml"); err == nil {
		t.Errorf("SetFormat(xml): no error")
	}
}

// TestRateLimit: one repeated warning or error per window; the next one
// after the window says how many were dropped. Other messages, and info,
// are not held back.
func TestRateLimit(t *testing.T) {
	var b syncBuffer
	now := time.Unix(1000, 0)
	c := New(&b, Options{Every: 10 * time.Second, Now: func() time.Time { return now }})
	c.SetLevel(slog.LevelInfo)
	l := c.Logger().With("component", "fetch")
	for i := range 100 {
		l.Error("peer unreachable", "peer", fmt.Sprint(i))
		l.Info("progress", "i", i)
		now = now.Add(time.Millisecond)
	}
	l.Warn("another problem")
	lines := b.lines()
	var errs, infos, others int
	for _, line := range lines {
		switch {
		case strings.Contains(line, "peer unreachable"):
			errs++
		case strings.Contains(line, "progress"):
			infos++
		case strings.Contains(line, "another problem"):
			others++
		}
	}
	if errs != 1 || infos != 100 || others != 1 {
		t.Fatalf("errors %d (want 1), infos %d (want 100), others %d (want 1)", errs, infos, others)
	}
	now = now.Add(10 * time.Second)
	l.Error("peer unreachable", "peer", "x")
	last := b.lines()[len(b.lines())-1]
	var m map[string]any
	if err := json.Unmarshal([]byte(last), &m); err != nil {
		t.Fatal(err)
	}
	if m["msg"] != "peer unreachable" || m["suppressed"] != float64(99) || m["component"] != "fetch" {
		t.Errorf("after the window: %v, want suppressed=99", m)
	}
}

// TestRateLimitBounded: many distinct messages do not grow the limiter
// without bound, and none is lost for it.
func TestRateLimitBounded(t *testing.T) {
	var b syncBuffer
	c := New(&b, Options{})
	l := c.Logger()
	n := 3 * maxLimitKeys
	for i := range n {
		l.Warn(fmt.Sprintf("distinct %d", i))
	}
	if got := len(b.lines()); got != n {
		t.Errorf("%d lines, want %d", got, n)
	}
	if got := len(c.limiter.seen); got > maxLimitKeys {
		t.Errorf("limiter holds %d keys, at most %d", got, maxLimitKeys)
	}
}

// TestRedact: a join token or a PEM private key never reaches the log,
// whether in the message, an attribute or an error.
func TestRedact(t *testing.T) {
	var b syncBuffer
	c := New(&b, Options{})
	l := c.Logger()
	tok := "grits-join-1.c2VjcmV0LXRva2Vu"
	key := "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIOZ\n-----END PRIVATE KEY-----"
	l.Warn("joining", "token", tok)
	l.Warn("join failed", "err", fmt.Errorf("parse %s: %w", tok, errors.New("bad")))
	l.Warn("key " + key)
	l.With("k", key).Error("x")
	out := b.String()
	if strings.Contains(out, "c2VjcmV0LXRva2Vu") || strings.Contains(out, "MC4CAQAwBQYDK2VwBCIEIOZ") {
		t.Errorf("a secret reached the log:\n%s", out)
	}
	if strings.Count(out, "[redacted") != 4 {
		t.Errorf("want 4 redactions:\n%s", out)
	}
}

// TestConcurrentSwitch: logging while the level and format change is
// race-free (run with -race).
func TestConcurrentSwitch(t *testing.T) {
	var b syncBuffer
	c := New(&b, Options{})
	l := c.Logger().With("a", 1)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				l.Warn("concurrent", "g", g, "i", i)
			}
		})
	}
	for i := range 50 {
		c.SetLevel(slog.Level(i % 8))
		c.SetFormat([]string{FormatText, FormatJSON}[i%2])
	}
	wg.Wait()
}
