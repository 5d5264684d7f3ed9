package tree

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grits-cdn/grits/blockstore"
)

func logTestPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "roots.log")
}

func openTestLog(t *testing.T, path string) *Log {
	t.Helper()
	l, err := OpenLog(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("OpenLog: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// logFrame frames one record as Append writes it.
func logFrame(rec []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(rec)))
	b = append(b, rec...)
	return binary.BigEndian.AppendUint32(b, crc32c(rec))
}

// logBytes is a log file holding roots.
func logBytes(roots ...Root) []byte {
	b := []byte(logMagic)
	for _, r := range roots {
		b = append(b, logFrame(r.Encode())...)
	}
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameRoots(t *testing.T, got, want []Root) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d roots, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("root %d:\n got %v\nwant %v", i, got[i], want[i])
		}
	}
}

func TestLogRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := logTestPath(t)
	chain := rootTestChain(t, 5)

	l := openTestLog(t, path)
	if got := readFile(t, path); string(got) != logMagic {
		t.Fatalf("new log holds %q, want just the header", got)
	}
	if _, ok := l.Latest(); ok || l.Len() != 0 {
		t.Fatal("a new log is not empty")
	}
	for _, r := range chain[:3] {
		if err := l.Append(ctx, r); err != nil {
			t.Fatalf("Append seq %d: %v", r.Seq, err)
		}
	}
	if latest, ok := l.Latest(); !ok || latest != chain[2] {
		t.Fatalf("Latest = %v, %v", latest, ok)
	}
	if !bytes.Equal(readFile(t, path), logBytes(chain[:3]...)) {
		t.Fatal("the file does not hold the framed roots")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Append(ctx, chain[3]); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Append after Close: %v, want os.ErrClosed", err)
	}

	l = openTestLog(t, path)
	sameRoots(t, l.Roots(), chain[:3])
	for _, r := range chain[3:] {
		if err := l.Append(ctx, r); err != nil {
			t.Fatalf("Append seq %d after reopening: %v", r.Seq, err)
		}
	}
	l.Close()
	l = openTestLog(t, path)
	sameRoots(t, l.Roots(), chain)
	if l.Len() != len(chain) {
		t.Fatalf("Len = %d", l.Len())
	}

	// Roots is a copy.
	rs := l.Roots()
	rs[0].Seq = 42
	if l.Roots()[0].Seq != 1 {
		t.Fatal("Roots returned the log's own slice")
	}
}

func TestLogFind(t *testing.T) {
	ctx := context.Background()
	chain := rootTestChain(t, 3) // all of one tree
	l := openTestLog(t, logTestPath(t))
	for _, r := range chain {
		if err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range chain {
		if got, ok := l.Find(r.Hash()); !ok || got != r {
			t.Fatalf("Find(hash of root %d) = %v, %v", i, got, ok)
		}
	}
	if got, ok := l.Find(chain[0].Tree); !ok || got != chain[2] {
		t.Fatalf("Find(tree) = %v, %v; want the newest root of that tree", got, ok)
	}
	if _, ok := l.Find(blockstore.Sum([]byte("unknown"))); ok {
		t.Fatal("Find of an unknown hash succeeded")
	}
	if _, ok := l.Find(blockstore.Hash{}); ok {
		t.Fatal("Find of the zero hash succeeded")
	}
}

func TestLogAppendRefuses(t *testing.T) {
	ctx := context.Background()
	chain := rootTestChain(t, 3)
	priv := rootTestKey()
	sign := func(r Root) Root {
		s, err := SignRoot(priv, r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	gap := chain[2]
	gap.Seq = 7
	gap.Prev = blockstore.Sum([]byte("seq 6, never seen"))
	gap = sign(gap)
	gapFromLatest := chain[2] // follows seq 2 but claims seq 5: allowed
	gapFromLatest.Seq = 5
	gapFromLatest = sign(gapFromLatest)
	sameSeq := chain[1]
	sameSeq.Tree = blockstore.Sum([]byte("other tree"))
	sameSeq = sign(sameSeq)
	wrongPrev := chain[2]
	wrongPrev.Prev = chain[0].Hash()
	wrongPrev = sign(wrongPrev)

	for _, tc := range []struct {
		name   string
		r      Root
		target error
	}{
		{"rollback", chain[0], ErrRollback},
		{"same root", chain[1], ErrSameRoot},
		{"equivocation", sameSeq, ErrEquivocation},
		{"next seq, wrong prev", wrongPrev, ErrEquivocation},
		{"gap", gap, ErrBrokenChain},
		{"malformed", Root{Seq: 3}, ErrMalformedRoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := logTestPath(t)
			l := openTestLog(t, path)
			for _, r := range chain[:2] {
				if err := l.Append(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			before := readFile(t, path)
			err := l.Append(ctx, tc.r)
			if !errors.Is(err, tc.target) {
				t.Fatalf("Append = %v, want %v", err, tc.target)
			}
			if l.Len() != 2 || !bytes.Equal(readFile(t, path), before) {
				t.Fatal("a refused Append changed the log")
			}
			if err := l.Append(ctx, gapFromLatest); err != nil {
				t.Fatalf("Append of a good root after a refusal: %v", err)
			}
		})
	}

	t.Run("cancelled", func(t *testing.T) {
		l := openTestLog(t, logTestPath(t))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := l.Append(cctx, chain[0]); !errors.Is(err, context.Canceled) || l.Len() != 0 {
			t.Fatalf("Append with a cancelled context = %v", err)
		}
	})

	t.Run("first root may be any seq", func(t *testing.T) {
		l := openTestLog(t, logTestPath(t))
		if err := l.Append(ctx, gap); err != nil {
			t.Fatalf("Append of seq 7 to an empty log: %v", err)
		}
	})
}

// TestLogTornTail cuts the last record at every length, as a crash in the
// middle of Append can: the torn part goes, earlier roots stay, and the
// log takes appends again.
func TestLogTornTail(t *testing.T) {
	ctx := context.Background()
	chain := rootTestChain(t, 3)
	base := logBytes(chain[:2]...)
	frame := logFrame(chain[2].Encode())

	badCRC := bytes.Clone(frame)
	badCRC[len(badCRC)-1] ^= 1
	badData := bytes.Clone(frame)
	badData[100] ^= 1
	tails := map[string][]byte{
		"zeros":          make([]byte, len(frame)),
		"zero length":    make([]byte, 4),
		"bad CRC":        badCRC,
		"corrupted data": badData,
		"frame then zeros": append(bytes.Clone(frame[:50]),
			make([]byte, len(frame)-50)...),
	}
	for n := 1; n < len(frame); n++ {
		tails["prefix "+strconv.Itoa(n)] = frame[:n]
	}

	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			path := logTestPath(t)
			if err := os.WriteFile(path, append(bytes.Clone(base), tail...), 0o644); err != nil {
				t.Fatal(err)
			}
			var logged bytes.Buffer
			l, err := OpenLog(ctx, path, slog.New(slog.NewTextHandler(&logged, nil)))
			if err != nil {
				t.Fatalf("OpenLog: %v", err)
			}
			defer l.Close()
			sameRoots(t, l.Roots(), chain[:2])
			if !bytes.Equal(readFile(t, path), base) {
				t.Fatal("the torn tail was not cut off the file")
			}
			if want := "dropped_bytes=" + strconv.Itoa(len(tail)); !strings.Contains(logged.String(), want) || !strings.Contains(logged.String(), "WARN") {
				t.Fatalf("logged %q, want a warning with %s", logged.String(), want)
			}
			if err := l.Append(ctx, chain[2]); err != nil {
				t.Fatalf("Append after cutting: %v", err)
			}
			l.Close()
			sameRoots(t, openTestLog(t, path).Roots(), chain)
		})
	}
}

// TestLogCorrupt damages a log in ways a crash cannot: OpenLog must
// refuse it, name the offset, and leave the file alone.
func TestLogCorrupt(t *testing.T) {
	chain := rootTestChain(t, 3)
	good := logBytes(chain...)
	frameLen := logFrameOverhead + RootSize
	middle := len(logMagic) + frameLen // offset of the second frame

	type corruptCase struct {
		name string
		data []byte
		at   int // the offset the message must name
	}
	var cases []corruptCase
	for i := range frameLen {
		b := bytes.Clone(good)
		b[middle+i] ^= 0x40
		cases = append(cases, corruptCase{"middle record byte " + strconv.Itoa(i), b, middle})
	}
	withTail := func(tail []byte) []byte { return append(bytes.Clone(good), tail...) }
	badRecord := chain[0].Encode()[:RootSize-1] // frames fine, does not decode
	seqDown := chain[1]                         // seq 2 after seq 3, chained to it
	seqDown.Prev = chain[2].Hash()
	seqDown, err := SignRoot(rootTestKey(), seqDown)
	if err != nil {
		t.Fatal(err)
	}
	cases = append(cases,
		corruptCase{"empty file", nil, 0},
		corruptCase{"short header", []byte("GRITS"), 0},
		corruptCase{"bad header", append([]byte("GRITSRL2"), good[8:]...), 0},
		corruptCase{"record that does not decode", withTail(logFrame(badRecord)), len(good)},
		corruptCase{"seq not increasing", logBytes(chain[2], seqDown), middle},
		corruptCase{"repeated root", logBytes(chain[0], chain[0]), middle},
		corruptCase{"prev not chained", logBytes(chain[0], chain[2]), middle},
		corruptCase{"length above MaxLogRecord at the end", withTail([]byte{0, 0, 0x10, 0x01}), len(good)},
		corruptCase{"more than one frame of garbage", withTail(bytes.Repeat([]byte{0xff, 0, 0, 0}, maxLogFrame)), len(good)},
		corruptCase{"zeros longer than a frame", withTail(make([]byte, maxLogFrame+1)), len(good)},
	)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := logTestPath(t)
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := OpenLog(context.Background(), path, nil)
			if err == nil {
				l.Close()
				t.Fatal("OpenLog accepted a corrupt log")
			}
			if !errors.Is(err, ErrLogCorrupt) {
				t.Fatalf("OpenLog = %v, want ErrLogCorrupt", err)
			}
			if want := "at byte " + strconv.Itoa(tc.at) + ":"; !strings.Contains(err.Error(), want) {
				t.Fatalf("message %q does not name %q", err, want)
			}
			if !bytes.Equal(readFile(t, path), tc.data) {
				t.Fatal("OpenLog modified a corrupt log")
			}
		})
	}
}

func TestLogCreate(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenLog(context.Background(), filepath.Join(dir, "missing", "roots.log"), nil); err == nil {
		t.Fatal("OpenLog created a log in a missing directory")
	}
	path := filepath.Join(dir, "roots.log")
	openTestLog(t, path).Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o644 != 0 || perm&0o600 != 0o600 {
		t.Fatalf("mode %v, want 0644 less the umask", perm)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary file was left behind: %v", err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := OpenLog(cctx, filepath.Join(dir, "other.log"), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("OpenLog with a cancelled context = %v", err)
	}
}

// TestLogWriteFailure makes the file refuse writes: the failed root must
// not enter the view, and the log must refuse further appends rather than
// write after bytes it could not clean up.
func TestLogWriteFailure(t *testing.T) {
	ctx := context.Background()
	chain := rootTestChain(t, 3)
	path := logTestPath(t)
	l := openTestLog(t, path)
	if err := l.Append(ctx, chain[0]); err != nil {
		t.Fatal(err)
	}
	ro, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	l.appendMu.Lock()
	rw := l.f
	l.f = ro // writes and truncates now fail
	l.appendMu.Unlock()
	defer rw.Close()

	if err := l.Append(ctx, chain[1]); err == nil {
		t.Fatal("Append to a read-only file succeeded")
	}
	if l.Len() != 1 {
		t.Fatal("a failed Append entered the view")
	}
	if err := l.Append(ctx, chain[1]); err == nil || !strings.Contains(err.Error(), "reopen") {
		t.Fatalf("Append after an unrecoverable failure = %v, want a refusal", err)
	}
}

func TestLogConcurrentAppend(t *testing.T) {
	ctx := context.Background()
	chain := rootTestChain(t, 40)
	path := logTestPath(t)
	l := openTestLog(t, path)

	// Every writer offers every root in order; exactly one Append of each
	// must win, the rest see ErrSameRoot or ErrRollback.
	var writers, readers sync.WaitGroup
	done := make(chan struct{})
	var mu sync.Mutex
	wins := make(map[uint64]int)
	for range 8 {
		writers.Go(func() {
			for _, r := range chain {
				err := l.Append(ctx, r)
				switch {
				case err == nil:
					mu.Lock()
					wins[r.Seq]++
					mu.Unlock()
				case errors.Is(err, ErrSameRoot), errors.Is(err, ErrRollback):
				default:
					t.Errorf("Append seq %d: %v", r.Seq, err)
				}
			}
		})
	}
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if latest, ok := l.Latest(); ok {
					if _, found := l.Find(latest.Hash()); !found {
						t.Error("Find does not see the latest root")
						return
					}
				}
				if rs := l.Roots(); len(rs) > 0 && rs[len(rs)-1].Seq != uint64(len(rs)) {
					t.Error("Roots returned a torn view")
					return
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	for _, r := range chain {
		if wins[r.Seq] != 1 {
			t.Fatalf("seq %d appended %d times", r.Seq, wins[r.Seq])
		}
	}
	l.Close()
	sameRoots(t, openTestLog(t, path).Roots(), chain)
}

func TestReadLogLeavesTornTail(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "roots.log")
	l, err := OpenLog(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	now := time.Now()
	r, err := SignRoot(key, Root{Seq: 1, Time: now, Expires: now.Add(time.Hour), Tree: blockstore.Sum([]byte("t"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, r); err != nil {
		t.Fatal(err)
	}
	l.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 186, 0x52}) // an append in progress
	f.Close()
	before, _ := os.ReadFile(path)
	ro, err := ReadLog(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := ro.Latest(); !ok || got.Hash() != r.Hash() {
		t.Fatalf("ReadLog latest = %v, %v", got, ok)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("ReadLog modified the file")
	}
	if err := ro.Append(ctx, r); err == nil {
		t.Fatal("a read-only log accepted an append")
	}
	missing, err := ReadLog(ctx, filepath.Join(t.TempDir(), "none.log"))
	if err != nil || missing.Len() != 0 {
		t.Fatalf("missing log: %v, %d roots", err, missing.Len())
	}
}
