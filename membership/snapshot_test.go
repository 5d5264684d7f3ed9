package membership

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// snapFixture is a snapshot of the fixture swarm as the node recNodeSeed
// would write it.
func snapFixture() Snapshot {
	return Snapshot{Site: recID(recSiteSeed), Node: recID(recNodeSeed), Members: []Known{
		{ID: recID(recOriginSeed), Role: RoleOrigin, GossipAddr: "192.0.2.1:7434", ProtoAddr: "192.0.2.1:7433", LastSeen: recTime},
		{ID: recID(recBanned1Seed), Role: RoleStorage, GossipAddr: "[2001:db8::1]:7434", LastSeen: recTime.Add(-48 * time.Hour)},
		{ID: recID(recBanned2Seed), Role: RoleVolunteer, GossipAddr: "v2.example.org:7434", ProtoAddr: "v2.example.org:7433", LastSeen: recTime.Add(time.Second)},
	}}
}

// snapJSON is the fixture's file with one member's field replaced (or
// the whole text edited by f).
func snapJSON(f func(string) string) []byte {
	return []byte(f(string(snapFixture().Encode())))
}

func snapshotCorpus(t testing.TB) map[string][]byte {
	good := snapFixture().Encode()
	empty := Snapshot{Site: recID(recSiteSeed), Node: recID(recNodeSeed)}
	signed := snapFixture()
	signed.Signed = true
	return map[string][]byte{
		"signed":       signed.Encode(),
		"realistic":    good,
		"no-members":   empty.Encode(),
		"truncated":    good[:len(good)/2],
		"trailing":     append(bytes.Clone(good), "{}"...),
		"version2":     bytes.Replace(good, []byte(`"version": 1`), []byte(`"version": 2`), 1),
		"unknown":      bytes.Replace(good, []byte(`"version": 1,`), []byte(`"version": 1, "x": 0,`), 1),
		"self":         bytes.Replace(good, []byte(recID(recOriginSeed).String()), []byte(recID(recNodeSeed).String()), 1),
		"port-zero":    bytes.Replace(good, []byte(`192.0.2.1:7434`), []byte(`192.0.2.1:0`), 1),
		"compact":      []byte(`{"version":1,"site":"` + recID(recSiteSeed).String() + `","node":"` + recID(recNodeSeed).String() + `","members":[]}`),
		"offset-times": bytes.Replace(good, []byte(`"2025-01-01T00:00:00Z"`), []byte(`"2025-01-01T01:00:00.5+01:00"`), 1),
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	want := snapFixture()
	b := want.Encode()
	got, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	// Decoded members come sorted by ID.
	if len(got.Members) != len(want.Members) {
		t.Fatalf("decoded %d members, want %d", len(got.Members), len(want.Members))
	}
	for _, w := range want.Members {
		i := -1
		for j, g := range got.Members {
			if g.ID == w.ID {
				i = j
			}
		}
		if i < 0 || !reflect.DeepEqual(got.Members[i], w) {
			t.Errorf("member %s: decoded %+v, want %+v", w.ID.String()[:16], got.Members, w)
		}
	}
	if got.Site != want.Site || got.Node != want.Node {
		t.Errorf("site, node: %v %v, want %v %v", got.Site, got.Node, want.Site, want.Node)
	}
	if !bytes.Equal(got.Encode(), b) {
		t.Errorf("re-encoding changed the file:\n%s\nwant\n%s", got.Encode(), b)
	}
	if !strings.Contains(string(b), `"role": "storage"`) || !strings.Contains(string(b), `"last_seen": "2024-12-30T00:00:00Z"`) {
		t.Errorf("the file is not the readable JSON it should be:\n%s", b)
	}
}

func TestSnapshotRefusals(t *testing.T) {
	origin := recID(recOriginSeed).String()
	for name, b := range map[string][]byte{
		"empty":         {},
		"not json":      []byte("members: 3\n"),
		"truncated":     snapFixture().Encode()[:100],
		"two values":    append(snapFixture().Encode(), "{}"...),
		"version 2":     snapJSON(func(s string) string { return strings.Replace(s, `"version": 1`, `"version": 2`, 1) }),
		"unknown field": snapJSON(func(s string) string { return strings.Replace(s, `"version": 1,`, `"version": 1, "extra": true,`, 1) }),
		"bad site":      snapJSON(func(s string) string { return strings.Replace(s, `"site": "ed25519-`, `"site": "ed25519-zz`, 1) }),
		"bad node":      snapJSON(func(s string) string { return strings.Replace(s, `"node": "ed25519-`, `"node": "rsa-`, 1) }),
		"bad id":        snapJSON(func(s string) string { return strings.Replace(s, origin, origin[:20], 1) }),
		"itself":        snapJSON(func(s string) string { return strings.Replace(s, origin, recID(recNodeSeed).String(), 1) }),
		"twice":         snapJSON(func(s string) string { return strings.ReplaceAll(s, recID(recBanned2Seed).String(), origin) }),
		"bad role":      snapJSON(func(s string) string { return strings.Replace(s, `"role": "storage"`, `"role": "admin"`, 1) }),
		"no gossip":     snapJSON(func(s string) string { return strings.Replace(s, `"gossip": "192.0.2.1:7434"`, `"gossip": ""`, 1) }),
		"no port":       snapJSON(func(s string) string { return strings.Replace(s, `192.0.2.1:7434`, `192.0.2.1`, 1) }),
		"port 0":        snapJSON(func(s string) string { return strings.Replace(s, `192.0.2.1:7434`, `192.0.2.1:0`, 1) }),
		"port 65536":    snapJSON(func(s string) string { return strings.Replace(s, `192.0.2.1:7434`, `192.0.2.1:65536`, 1) }),
		"port +1":       snapJSON(func(s string) string { return strings.Replace(s, `192.0.2.1:7434`, `192.0.2.1:+1`, 1) }),
		"no host":       snapJSON(func(s string) string { return strings.Replace(s, `192.0.2.1:7434`, `:7434`, 1) }),
		"bad addr":      snapJSON(func(s string) string { return strings.Replace(s, `192.0.2.1:7433`, `192.0.2.1`, 1) }),
		"long addr":     snapJSON(func(s string) string { return strings.Replace(s, `192.0.2.1:7433`, strings.Repeat("a", 300)+":1", 1) }),
		"no last seen": snapJSON(func(s string) string {
			return strings.Replace(s, `"2025-01-01T00:00:00Z"`, `"0001-01-01T00:00:00Z"`, 1)
		}),
		"too big": append(snapFixture().Encode(), bytes.Repeat([]byte(" "), MaxSnapshotSize)...),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeSnapshot(b); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("want ErrBadSnapshot, got %v", err)
			}
		})
	}
	t.Run("too many members", func(t *testing.T) {
		s := Snapshot{Site: recID(recSiteSeed), Node: recID(recNodeSeed)}
		for i := range MaxSnapshotMembers + 1 {
			var id NodeID
			id[0], id[1], id[2] = byte(i), byte(i>>8), 0xee
			s.Members = append(s.Members, Known{ID: id, Role: RoleVolunteer, GossipAddr: "10.0.0.1:7434", LastSeen: recTime})
		}
		if _, err := DecodeSnapshot(s.Encode()); !errors.Is(err, ErrBadSnapshot) {
			t.Fatalf("want ErrBadSnapshot, got %v", err)
		}
	})
}

// TestReadSnapshotChecksOwner: a snapshot written by another node, or
// for another site (a data directory copied or re-initialized), is not
// used.
func TestReadSnapshotChecksOwner(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "members.json")
	if s, err := readSnapshot(p, recID(recSiteSeed), recID(recNodeSeed)); err != nil || len(s.Members) != 0 {
		t.Fatalf("no file: %v, %d members; want no error and none", err, len(s.Members))
	}
	if err := writeFileAtomic(p, snapFixture().Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := readSnapshot(p, recID(recSiteSeed), recID(recNodeSeed)); err != nil || len(s.Members) != 3 {
		t.Fatalf("own file: %v, %d members; want 3", err, len(s.Members))
	}
	if _, err := readSnapshot(p, recID(recOtherSeed), recID(recNodeSeed)); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("another site's snapshot: %v, want ErrBadSnapshot", err)
	}
	if _, err := readSnapshot(p, recID(recSiteSeed), recID(recOriginSeed)); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("another node's snapshot: %v, want ErrBadSnapshot", err)
	}
	if err := os.WriteFile(p, []byte("\x00\x01garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readSnapshot(p, recID(recSiteSeed), recID(recNodeSeed)); !errors.Is(err, ErrBadSnapshot) || !strings.Contains(err.Error(), p) {
		t.Errorf("garbage: %v, want ErrBadSnapshot naming the file", err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(names) != 0 {
		t.Errorf("temporary files left: %v", names)
	}
}

// FuzzDecodeSnapshot: the snapshot is read from disk at every start. The
// decoder must never panic, must refuse with ErrBadSnapshot, and what it
// accepts must survive its own encoding unchanged (JSON has many
// spellings, so the check is decode(encode(x)) == x, not byte equality
// with the input).
func FuzzDecodeSnapshot(f *testing.F) {
	addSeeds(f, snapshotCorpus(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSnapshot(data)
		if err != nil {
			wantErr(t, "DecodeSnapshot", err, ErrBadSnapshot)
			return
		}
		if len(s.Members) > MaxSnapshotMembers {
			t.Fatalf("accepted %d members", len(s.Members))
		}
		enc := s.Encode()
		again, err := DecodeSnapshot(enc)
		if err != nil {
			t.Fatalf("the encoding of an accepted snapshot is refused: %v\n%s", err, enc)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip changed the snapshot:\n%+v\n%+v", s, again)
		}
		if !bytes.Equal(again.Encode(), enc) {
			t.Fatal("encoding is not stable")
		}
	})
}

func hereCorpus(t testing.TB) map[string][]byte {
	good := encodeHere(recID(recNodeSeed), "192.0.2.7:7434")
	c := map[string][]byte{
		"realistic": good,
		"ipv6":      encodeHere(recID(recOriginSeed), "[2001:db8::7]:7434"),
		"no-port":   encodeHere(recID(recNodeSeed), "192.0.2.7"),
		"no-addr":   encodeHere(recID(recNodeSeed), ""),
	}
	c["truncated"] = bytes.Clone(good[:len(good)-1])
	c["trailing"] = append(bytes.Clone(good), 0)
	c["empty"] = []byte{}
	c["root-tag"] = append([]byte{msgRoot}, good[1:]...)
	return c
}

// FuzzDecodeHere: here messages come from the network (from members,
// but hostile until verified).
func FuzzDecodeHere(f *testing.F) {
	addSeeds(f, hereCorpus(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, addr, err := decodeHere(data)
		if err != nil {
			wantErr(t, "decodeHere", err, ErrMalformed)
			return
		}
		if checkHostPort(addr) != nil {
			t.Fatalf("accepted address %q", addr)
		}
		if re := encodeHere(id, addr); !bytes.Equal(re, data) {
			t.Fatalf("accepted a non-canonical here message:\n in %x\nout %x", data, re)
		}
	})
}
