package fuse

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"
)

// stage is a file's content while it is written. A small file (most of
// what tar, rsync or an application write) is kept in memory, so that
// writing it costs no local file beside the blocks it becomes; a larger
// one, or any once memory staging is at its bound, lives in a staging
// file in the mount's state directory. Either way it is chunked into the
// store on close and fsync. The caller holds the node's cmu.
type stage struct {
	f     *os.File // nil while the content is in buf
	buf   []byte
	dirty bool // written since the last chunking
}

const (
	// memStageMax is the largest file staged in memory: one chunk.
	memStageMax = 256 << 10
	// memStageTotal bounds the memory of all in-memory stages.
	memStageTotal = 64 << 20
)

func (s *stage) readAt(p []byte, off int64) (int, error) {
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	if off >= int64(len(s.buf)) {
		return 0, io.EOF
	}
	n := copy(p, s.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *stage) writeAt(m *Mount, p []byte, off int64) (int, error) {
	s.dirty = true
	if s.f == nil && off+int64(len(p)) > memStageMax {
		if err := s.spill(m); err != nil {
			return 0, err
		}
	}
	if s.f != nil {
		return s.f.WriteAt(p, off)
	}
	if end := int(off) + len(p); end > len(s.buf) {
		s.buf = append(s.buf, make([]byte, end-len(s.buf))...)
	}
	return copy(s.buf[off:], p), nil
}

func (s *stage) truncate(m *Mount, size int64) error {
	s.dirty = true
	if s.f == nil && size > memStageMax {
		if err := s.spill(m); err != nil {
			return err
		}
	}
	if s.f != nil {
		return s.f.Truncate(size)
	}
	if size <= int64(len(s.buf)) {
		clear(s.buf[size:])
		s.buf = s.buf[:size]
	} else {
		s.buf = append(s.buf, make([]byte, int(size)-len(s.buf))...)
	}
	return nil
}

// reader returns the whole content for chunking.
func (s *stage) reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.buf), nil
	}
	fi, err := s.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("staging file: %w", err)
	}
	return io.NewSectionReader(s.f, 0, fi.Size()), nil
}

// spill moves an in-memory stage to a staging file.
func (s *stage) spill(m *Mount) error {
	f, err := os.CreateTemp(m.staging, "w-")
	if err != nil {
		return fmt.Errorf("staging file: %w", err)
	}
	if _, err := f.Write(s.buf); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("staging file: %w", err)
	}
	s.f, s.buf = f, nil
	m.memStaged.Add(-memStageMax)
	return nil
}

func (s *stage) release(m *Mount) {
	if s.f != nil {
		s.f.Close()
		os.Remove(s.f.Name())
		return
	}
	s.buf = nil
	m.memStaged.Add(-memStageMax)
}

// ensureStage gives n a stage holding its content; the caller holds
// n.cmu.
func (m *Mount) ensureStage(n *node) error {
	if n.stage != nil {
		return nil
	}
	s := &stage{}
	if n.hashSize <= memStageMax && m.memStaged.Add(memStageMax) <= memStageTotal {
		s.buf = make([]byte, 0, n.hashSize)
	} else {
		if n.hashSize <= memStageMax {
			m.memStaged.Add(-memStageMax)
		}
		f, err := os.CreateTemp(m.staging, "w-")
		if err != nil {
			return fmt.Errorf("staging file: %w", err)
		}
		s.f = f
	}
	if n.hashSize > 0 {
		r := newFileReader(m.origin.w.reader, n.hash, n.hashSize, n.direct, nil)
		buf := make([]byte, min(n.hashSize, 1<<20))
		for off := int64(0); off < int64(n.hashSize); {
			k, err := r.ReadAt(m.ctx, buf, off)
			if err == nil && k == 0 {
				err = io.ErrUnexpectedEOF
			}
			if err == nil {
				_, err = s.writeAt(m, buf[:k], off)
			}
			if err != nil {
				s.release(m)
				return fmt.Errorf("copy into staging: %w", err)
			}
			off += int64(k)
		}
		s.dirty = false
	}
	n.stage = s
	return nil
}

// dropStage lets n's stage go; the caller holds n.cmu and has chunked
// it.
func (m *Mount) dropStage(n *node) {
	if n.stage == nil || n.stage.dirty {
		return
	}
	n.stage.release(m)
	n.stage = nil
}

// chunk stores the stage's content as the file's new version; the
// caller holds n.cmu.
func (m *Mount) chunk(n *node) error {
	if n.stage == nil || !n.stage.dirty {
		return nil
	}
	w := m.origin.w
	r, err := n.stage.reader()
	if err != nil {
		return err
	}
	fe, err := w.builder.WriteFileEntry(m.ctx, r) // a one-chunk file is direct, as an import writes it
	if err != nil {
		return err
	}
	n.stage.dirty = false
	w.mu.Lock()
	n.hash, n.hashSize, n.size, n.direct = fe.Hash, fe.Size, fe.Size, fe.Direct
	w.changedEntry(n)
	w.mu.Unlock()
	return nil
}

// truncate sets n's size; without an open writer the new content is
// chunked at once (no close will come to do it).
func (m *Mount) truncate(n *node, size uint64) error {
	w := m.origin.w
	n.cmu.Lock()
	defer n.cmu.Unlock()
	if size == 0 && n.stage == nil {
		w.mu.Lock()
		n.hash, n.hashSize, n.size, n.direct, n.mtime = w.emptyFile, 0, 0, false, time.Now()
		w.changedEntry(n)
		w.mu.Unlock()
		return nil
	}
	if err := m.ensureStage(n); err != nil {
		return err
	}
	if err := n.stage.truncate(m, int64(size)); err != nil {
		return fmt.Errorf("truncate: %w", err)
	}
	w.mu.Lock()
	n.size, n.mtime = size, time.Now()
	w.mu.Unlock()
	if n.writers == 0 {
		if err := m.chunk(n); err != nil {
			return err
		}
		m.dropStage(n)
	}
	return nil
}
