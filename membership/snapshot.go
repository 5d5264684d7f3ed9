package membership

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grits-cdn/grits/tree"
)

// The snapshot is a node's address book of the swarm: every member it
// has seen, with where to reach it and when it was last seen alive. The
// node writes it (Config.SnapshotPath, members.json in the data
// directory) a few seconds after the membership changes, every
// snapshotRefresh, and when it stops; it reads it at start to re-join
// the members it knew, so a restart does not leave it alone (serf keeps
// such a snapshot for the same reason). It is only a list of addresses
// to try: a member enters the view only through gossip, with its
// certificate checked, never from the file.

// Snapshot limits, checked when one is read.
const (
	snapshotVersion = 1
	// MaxSnapshotMembers is the most members a snapshot may list (as
	// many as a ban list may name).
	MaxSnapshotMembers = 10_000
	// MaxSnapshotSize bounds the file: 10,000 members of about 300
	// bytes each.
	MaxSnapshotSize = 4 << 20
)

// How often the snapshot is written: snapshotDelay after a change (so a
// burst of joins costs one write), and every snapshotRefresh regardless,
// so that the last-seen times of members that stay alive are never much
// older than they should be after a crash.
const (
	snapshotDelay   = 2 * time.Second
	snapshotRefresh = 10 * time.Minute
)

// DefaultForgetAfter is how long a member that is not seen alive is
// still re-joined and kept in the snapshot.
const DefaultForgetAfter = 72 * time.Hour

// Known is a member as the snapshot remembers it.
type Known struct {
	ID         NodeID
	Role       Role
	GossipAddr string // host:port memberlist reaches it at
	ProtoAddr  string // grits/1 host:port, if it advertised one
	LastSeen   time.Time
}

// Snapshot is the content of the snapshot file.
type Snapshot struct {
	Site    tree.PublicKey // the swarm's site key
	Node    NodeID         // the node that wrote it
	Members []Known        // sorted by ID, without Node
	// Signed: the swarm signs its claims (claim.go), so a restarted node
	// refuses unsigned metadata from the start.
	Signed bool
}

// snapshotJSON is the file's form. JSON so that an operator can read
// it; the decoder is strict all the same.
type snapshotJSON struct {
	Version int          `json:"version"`
	Site    string       `json:"site"`
	Node    string       `json:"node"`
	Members []memberJSON `json:"members"`
	Signed  bool         `json:"signed,omitempty"`
}

type memberJSON struct {
	ID       string    `json:"id"`
	Role     string    `json:"role"`
	Gossip   string    `json:"gossip"`
	Addr     string    `json:"addr,omitempty"`
	LastSeen time.Time `json:"last_seen"`
}

// Encode returns the file's bytes. Members are sorted by ID and times
// kept to the second, so equal snapshots encode equally.
func (s Snapshot) Encode() []byte {
	f := snapshotJSON{Version: snapshotVersion, Site: s.Site.String(), Node: s.Node.String(), Members: []memberJSON{}, Signed: s.Signed}
	ms := slices.Clone(s.Members)
	slices.SortFunc(ms, func(a, b Known) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	for _, m := range ms {
		f.Members = append(f.Members, memberJSON{ID: m.ID.String(), Role: m.Role.String(), Gossip: m.GossipAddr,
			Addr: m.ProtoAddr, LastSeen: m.LastSeen.UTC().Truncate(time.Second)})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("membership: encoding a snapshot: %v", err)) // plain strings and times only
	}
	return append(b, '\n')
}

// ErrBadSnapshot is returned for a snapshot file that cannot be used.
var ErrBadSnapshot = errors.New("bad member snapshot")

// DecodeSnapshot parses and checks a snapshot file: its version, keys,
// roles, addresses, times, no duplicate and not the writer itself.
func DecodeSnapshot(b []byte) (Snapshot, error) {
	bad := func(format string, args ...any) (Snapshot, error) {
		return Snapshot{}, fmt.Errorf("%w: "+format, append([]any{ErrBadSnapshot}, args...)...)
	}
	if len(b) > MaxSnapshotSize {
		return bad("%d bytes, at most %d", len(b), MaxSnapshotSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f snapshotJSON
	if err := dec.Decode(&f); err != nil {
		return bad("%v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bad("data after the snapshot")
	}
	if f.Version != snapshotVersion {
		return bad("version %d, this gritsd reads %d", f.Version, snapshotVersion)
	}
	s := Snapshot{Signed: f.Signed}
	var err error
	if s.Site, err = tree.ParsePublicKey(f.Site); err != nil {
		return bad("site: %v", err)
	}
	if s.Node, err = tree.ParsePublicKey(f.Node); err != nil {
		return bad("node: %v", err)
	}
	if len(f.Members) > MaxSnapshotMembers {
		return bad("%d members, at most %d", len(f.Members), MaxSnapshotMembers)
	}
	seen := make(map[NodeID]bool, len(f.Members))
	for i, m := range f.Members {
		var k Known
		if k.ID, err = tree.ParsePublicKey(m.ID); err != nil {
			return bad("member %d: %v", i, err)
		}
		if k.ID == s.Node || seen[k.ID] {
			return bad("member %d: %s listed twice", i, m.ID)
		}
		seen[k.ID] = true
		if k.Role, err = ParseRole(m.Role); err != nil {
			return bad("member %d: %v", i, err)
		}
		if err := checkHostPort(m.Gossip); err != nil {
			return bad("member %d: gossip address: %v", i, err)
		}
		if m.Addr != "" {
			if err := checkHostPort(m.Addr); err != nil {
				return bad("member %d: address: %v", i, err)
			}
		}
		if m.LastSeen.IsZero() || m.LastSeen.Year() > 9999 || m.LastSeen.Year() < 1970 {
			return bad("member %d: last seen %v", i, m.LastSeen)
		}
		k.GossipAddr, k.ProtoAddr, k.LastSeen = m.Gossip, m.Addr, m.LastSeen.UTC().Truncate(time.Second)
		s.Members = append(s.Members, k)
	}
	slices.SortFunc(s.Members, func(a, b Known) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return s, nil
}

// checkHostPort accepts a host (name or address) and a port 1..65535.
func checkHostPort(a string) error {
	if len(a) > MaxAddrLen {
		return fmt.Errorf("%d bytes, at most %d", len(a), MaxAddrLen)
	}
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	if h == "" || strings.ContainsAny(h, " \t\r\n/") {
		return fmt.Errorf("%q: no usable host", a)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || p != strconv.Itoa(n) {
		return fmt.Errorf("%q: port must be 1..65535", a)
	}
	return nil
}

// readSnapshot loads the snapshot at path: nothing if there is none; an
// error (which the caller logs, and starts without it) if it cannot be
// used.
func readSnapshot(path string, site tree.PublicKey, self NodeID) (Snapshot, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return Snapshot{}, nil
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("member snapshot: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSnapshotSize+1))
	if err != nil {
		return Snapshot{}, fmt.Errorf("member snapshot %s: %w", path, err)
	}
	s, err := DecodeSnapshot(b)
	if err != nil {
		return Snapshot{}, fmt.Errorf("member snapshot %s: %w", path, err)
	}
	if s.Site != site || s.Node != self {
		return Snapshot{}, fmt.Errorf("member snapshot %s: %w: written by node %s of site %s, this is node %s of site %s",
			path, ErrBadSnapshot, s.Node.String()[:16], s.Site.String()[:16], self.String()[:16], site.String()[:16])
	}
	return s, nil
}

// writeFileAtomic replaces path with data: a crash leaves the old or
// the new content, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// snapshotSoon has the snapshot written after snapshotDelay.
func (s *Swarm) snapshotSoon() {
	select {
	case s.snapDirty <- struct{}{}:
	default: // a write is due already
	}
}

func (s *Swarm) snapshotLoop() {
	defer s.wg.Done()
	if s.cfg.SnapshotPath == "" {
		return
	}
	refresh := time.NewTicker(snapshotRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-s.ctx.Done():
			s.finalSnapshot()
			return
		case <-refresh.C:
		case <-s.snapDirty:
			select {
			case <-s.ctx.Done():
				s.finalSnapshot()
				return
			case <-time.After(snapshotDelay):
			}
		}
		s.saveSnapshot()
	}
}

// finalSnapshot is written when the node stops, unless it was killed.
func (s *Swarm) finalSnapshot() {
	if !s.killed.Load() {
		s.saveSnapshot()
	}
}

// Snapshot returns the address book as it would be written now: every
// member known, those alive now seen now.
func (s *Swarm) Snapshot() Snapshot {
	now := time.Now()
	snap := Snapshot{Site: s.cfg.Site, Node: s.id, Signed: s.signing.Load()}
	s.mu.Lock()
	for id, k := range s.known {
		if m, ok := s.view[id]; ok && (m.State == StateAlive || m.State == StateSuspect) {
			k.LastSeen = now
			s.known[id] = k
		}
		snap.Members = append(snap.Members, k)
	}
	s.mu.Unlock()
	slices.SortFunc(snap.Members, func(a, b Known) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	return snap
}

func (s *Swarm) saveSnapshot() {
	snap := s.Snapshot()
	if err := writeFileAtomic(s.cfg.SnapshotPath, snap.Encode(), 0o644); err != nil {
		s.log.Warn("writing the member snapshot", "path", s.cfg.SnapshotPath, "err", err)
		return
	}
	s.log.Debug("member snapshot written", "members", len(snap.Members))
}
