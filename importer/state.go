package importer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/grits-cdn/grits/blockstore"
)

// stateVersion is bumped when the State file format changes; an old
// State is ignored (the import just reads every file again).
const stateVersion = 4

// FileState is what the last import learned about one file.
type FileState struct {
	Size  int64           `json:"size"`
	MTime int64           `json:"mtime_ns"`
	Inode uint64          `json:"inode"`
	CTime int64           `json:"ctime_ns"`
	Hash  blockstore.Hash `json:"hash"`
	// Direct: Hash is the file's one chunk (tree.Entry.Direct).
	Direct bool `json:"direct,omitempty"`
	// Type is the media type the file got (kept for a type that came
	// from its content, which an unchanged file is not read again for).
	Type string `json:"type,omitempty"`
}

// State remembers a source's files between imports.
type State struct {
	Version int                  `json:"version"`
	Files   map[string]FileState `json:"files"`
}

func newState() *State { return &State{Version: stateVersion, Files: map[string]FileState{}} }

func (s *State) lookup(rel string) (FileState, bool) {
	if s == nil {
		return FileState{}, false
	}
	fs, ok := s.Files[rel]
	return fs, ok
}

func (f FileState) matches(fi fs.FileInfo) bool {
	return f.Size == fi.Size() && f.MTime == fi.ModTime().UnixNano() && f.Inode == inode(fi) && f.CTime == ctime(fi)
}

// LoadState reads a State file. A missing, unreadable or outdated file is
// not an error: it returns nil, and the import reads everything. The
// state is only an optimisation; the store and the log are the truth.
func LoadState(path string) *State {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil || s.Version != stateVersion || s.Files == nil {
		return nil
	}
	return &s
}

// Save writes the State atomically.
func (s *State) Save(path string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("import state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("import state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return fmt.Errorf("import state: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(b)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("import state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("import state: %w", err)
	}
	return nil
}
