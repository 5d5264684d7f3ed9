package tree

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/grits-cdn/grits/blockstore"
)

// Root log file format:
//
//	header  8 bytes  "GRITSRL1"
//	record  u32 BE length n, n record bytes, u32 BE CRC-32C of the n bytes
//
// Each record is one encoded Root today; the length field leaves room for
// other record kinds later without a new header.
const (
	logMagic = "GRITSRL1"

	// MaxLogRecord bounds a record's length field. A longer one is
	// corruption, not a record to allocate for.
	MaxLogRecord = 4096

	logFrameOverhead = 4 + 4
	maxLogFrame      = logFrameOverhead + MaxLogRecord
)

// ErrLogCorrupt is returned (wrapped) by OpenLog for a log damaged in a
// way a crash cannot explain. The file is left as it was, for a human to
// inspect.
var ErrLogCorrupt = errors.New("root log corrupt")

// ErrLogStale is returned by Append when the file grew or shrank since
// this Log read it: another process appended, and appending from a stale
// view could sign a second root with the same sequence number. Reopen
// the log (under the data directory lock) and try again.
var ErrLogStale = errors.New("root log changed on disk since it was opened")

// Log is an append-only, crash-safe file of every root this node has
// accepted, oldest first, each one's Prev the Hash of the one before.
//
// The log does not verify signatures or expiry. It stores what its caller
// has already verified, against a site key from a config the log does not
// know and at a time that has since passed: re-checking on open would
// need that key, and would throw away history just because old roots
// expire. It does keep its own invariants (seqs increase, each root
// chains to the one before), on Append and again on open.
//
// A Log is safe for concurrent use within one process. Two processes must
// not open the same log; the data directory lock sees to that.
type Log struct {
	path   string
	logger *slog.Logger

	// appendMu serialises Append and Close and is held across the write
	// and fsync; mu guards only the in-memory view, so Latest, called on
	// every response by the gateway, never waits for a disk.
	appendMu sync.Mutex
	f        *os.File // O_APPEND; nil once closed
	size     int64    // bytes of valid log on disk
	broken   error    // set when the file may no longer match size

	mu     sync.RWMutex
	roots  []Root
	hashes []blockstore.Hash // hashes[i] == roots[i].Hash()
}

// OpenLog opens the root log at path, creating it if it does not exist
// (the parent directory must). A record torn by a crash during Append is
// cut off, with a warning; any other damage is ErrLogCorrupt. A nil
// logger discards.
func OpenLog(ctx context.Context, path string, logger *slog.Logger) (*Log, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open root log %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := createLog(path); err != nil {
			return nil, fmt.Errorf("create root log %s: %w", path, err)
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open root log: %w", err)
	}
	l, err := loadLog(ctx, f, path, logger)
	if err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// createLog writes the header to a temporary file and renames it into
// place, so that after a crash path is either absent or a valid empty log,
// never a half-written header.
func createLog(path string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(logMagic))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a new directory entry durable; without it a crash can
// lose a file whose contents were synced.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func loadLog(ctx context.Context, f *os.File, path string, logger *slog.Logger) (*Log, error) {
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read root log %s: %w", path, err)
	}
	roots, hashes, end, err := parseLog(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLogCorrupt, path, err)
	}
	if end < len(data) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("open root log %s: %w", path, err)
		}
		if err := f.Truncate(int64(end)); err != nil {
			return nil, fmt.Errorf("root log %s: cut torn tail: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("root log %s: cut torn tail: %w", path, err)
		}
		logger.WarnContext(ctx, "root log: dropped an incomplete record at the end, left by a crash during append",
			"path", path, "dropped_bytes", len(data)-end, "kept_roots", len(roots))
	}
	return &Log{
		path:   path,
		logger: logger,
		f:      f,
		size:   int64(end),
		roots:  roots,
		hashes: hashes,
	}, nil
}

// parseLog reads a whole log. It returns the roots and the offset where
// the valid log ends; end < len(data) means a torn tail to cut off.
func parseLog(data []byte) (roots []Root, hashes []blockstore.Hash, end int, err error) {
	if len(data) < len(logMagic) || string(data[:len(logMagic)]) != logMagic {
		return nil, nil, 0, fmt.Errorf("at byte 0: bad header, want %q (file left unchanged)", logMagic)
	}
	off := len(logMagic)
	for off < len(data) {
		rec, bad, tearable := frameAt(data, off)
		if bad != "" {
			if !tearable {
				return nil, nil, 0, fmt.Errorf("at byte %d: %s (file left unchanged)", off, bad)
			}
			if after := afterTorn(data, off); after != "" {
				return nil, nil, 0, fmt.Errorf("at byte %d: %s, %s (file left unchanged)", off, bad, after)
			}
			return roots, hashes, off, nil
		}
		r, err := DecodeRoot(rec)
		if err == nil {
			err = checkAppend(roots, hashes, r)
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("at byte %d: %w (file left unchanged)", off, err)
		}
		roots = append(roots, r)
		hashes = append(hashes, r.Hash())
		off += logFrameOverhead + len(rec)
	}
	return roots, hashes, off, nil
}

// frameAt returns the record framed at off, or why there is none and
// whether a crash during Append could explain that.
func frameAt(data []byte, off int) (rec []byte, bad string, tearable bool) {
	rest := data[off:]
	if len(rest) < 4 {
		return nil, "incomplete record length", true
	}
	n := binary.BigEndian.Uint32(rest)
	switch {
	case n > MaxLogRecord:
		// Append never writes such a length, and a torn write leaves a
		// prefix of what was written (or zeros), not a different length.
		return nil, fmt.Sprintf("record length %d is above MaxLogRecord (%d)", n, MaxLogRecord), false
	case n == 0:
		// Never written by Append; but a crash can leave zeros where the
		// file grew before its data reached the disk, so this counts as
		// torn rather than as an (empty, validly checksummed) record.
		return nil, "zero record length", true
	case uint64(len(rest)) < logFrameOverhead+uint64(n):
		return nil, fmt.Sprintf("incomplete %d-byte record", n), true
	}
	rec = rest[4 : 4+n]
	if binary.BigEndian.Uint32(rest[4+n:]) != crc32c(rec) {
		return nil, "record CRC mismatch", true
	}
	return rec, "", false
}

// afterTorn says why the bad frame at off is not what a crash during one
// Append leaves, or "" if it is: a torn tail is at most one frame long and
// no valid frame starts anywhere after off. A damaged record with good
// ones after it is corruption, and cutting there would silently drop
// accepted roots.
func afterTorn(data []byte, off int) string {
	if n := len(data) - off; n > maxLogFrame {
		return fmt.Sprintf("with %d bytes from there to the end, more than one append writes", n)
	}
	for p := off + 1; p < len(data); p++ {
		if _, bad, _ := frameAt(data, p); bad == "" {
			return fmt.Sprintf("followed by a valid record at byte %d", p)
		}
	}
	return ""
}

func crc32c(b []byte) uint32 {
	// MakeTable returns the same shared table on every call for
	// Castagnoli, and lets the package keep no table variable of its own.
	return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
}

// checkAppend holds the log's invariants, for Append and for OpenLog
// alike, so that every log this code writes reopens.
func checkAppend(roots []Root, hashes []blockstore.Hash, r Root) error {
	if err := r.validate(); err != nil {
		return err
	}
	if len(roots) == 0 {
		return nil
	}
	last, lastHash := roots[len(roots)-1], hashes[len(hashes)-1]
	if err := r.CheckSuccessor(last); err != nil {
		return err
	}
	if r.Prev != lastHash {
		return fmt.Errorf("root seq %d follows %s, but the latest logged root is seq %d (%s): %w",
			r.Seq, r.Prev.Short(), last.Seq, lastHash.Short(), ErrBrokenChain)
	}
	return nil
}

// Append adds r after the latest root. It refuses r unless it is newer
// and its Prev is the latest root's Hash (ErrRollback, ErrSameRoot,
// ErrEquivocation, ErrBrokenChain), or malformed (ErrMalformedRoot). It
// returns once r is on disk; only then do Latest and the rest include it.
func (l *Log) Append(ctx context.Context, r Root) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("append to root log %s: %w", l.path, err)
	}
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.f == nil {
		return fmt.Errorf("append to root log %s: %w", l.path, os.ErrClosed)
	}
	if l.broken != nil {
		return fmt.Errorf("append to root log %s: unusable since an earlier write failed (reopen it): %w", l.path, l.broken)
	}

	if fi, err := l.f.Stat(); err != nil {
		return fmt.Errorf("append to root log %s: %w", l.path, err)
	} else if fi.Size() != l.size {
		return fmt.Errorf("append to root log %s: %w (%d bytes on disk, %d read)", l.path, ErrLogStale, fi.Size(), l.size)
	}

	// Only Append changes roots, and it holds appendMu, so reading
	// without mu is safe here.
	if err := checkAppend(l.roots, l.hashes, r); err != nil {
		return fmt.Errorf("append to root log %s: %w", l.path, err)
	}

	frame := make([]byte, 0, logFrameOverhead+RootSize)
	frame = binary.BigEndian.AppendUint32(frame, RootSize)
	frame = r.AppendEncode(frame)
	frame = binary.BigEndian.AppendUint32(frame, crc32c(frame[4:]))
	if err := l.writeFrame(frame); err != nil {
		return fmt.Errorf("append to root log %s: %w", l.path, err)
	}

	h := r.Hash()
	l.mu.Lock()
	l.roots = append(l.roots, r)
	l.hashes = append(l.hashes, h)
	l.mu.Unlock()
	return nil
}

// writeFrame writes and syncs one frame. On failure it cuts the file back
// to the last good record, because the next Append would otherwise land
// after a partial frame, which the next open calls corruption. If even
// that fails, the log refuses further appends until reopened.
func (l *Log) writeFrame(frame []byte) error {
	_, err := l.f.Write(frame)
	if err == nil {
		err = l.f.Sync()
	}
	if err == nil {
		l.size += int64(len(frame))
		return nil
	}
	if terr := l.f.Truncate(l.size); terr != nil {
		l.broken = terr
	} else if serr := l.f.Sync(); serr != nil {
		l.broken = serr
	}
	return err
}

// Latest returns the newest root, if any.
func (l *Log) Latest() (Root, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.roots) == 0 {
		return Root{}, false
	}
	return l.roots[len(l.roots)-1], true
}

// Roots returns a copy of every root, oldest first.
func (l *Log) Roots() []Root {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return append([]Root(nil), l.roots...)
}

// Len returns the number of roots.
func (l *Log) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.roots)
}

// Find returns the newest root whose Hash or whose Tree is h, so a user
// can name a version by either (`--root HASH`). The zero hash finds
// nothing.
func (l *Log) Find(h blockstore.Hash) (Root, bool) {
	if h.IsZero() {
		return Root{}, false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i := len(l.roots) - 1; i >= 0; i-- {
		if l.hashes[i] == h || l.roots[i].Tree == h {
			return l.roots[i], true
		}
	}
	return Root{}, false
}

// Close closes the file. The in-memory view stays readable; Append fails
// with os.ErrClosed. Closing twice is not an error.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("close root log %s: %w", l.path, err)
	}
	return nil
}

// ReadLog reads the log at path without opening it for writing: a torn
// tail is ignored, not cut off, because the process holding the log may
// be in the middle of that very append. Use it to follow a log another
// process writes (a daemon watching the roots an import commits). The
// returned Log refuses Append.
func ReadLog(ctx context.Context, path string) (*Log, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read root log %s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Log{path: path, logger: slog.New(slog.DiscardHandler)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read root log: %w", err)
	}
	roots, hashes, end, err := parseLog(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLogCorrupt, path, err)
	}
	return &Log{path: path, logger: slog.New(slog.DiscardHandler), size: int64(end), roots: roots, hashes: hashes}, nil
}
