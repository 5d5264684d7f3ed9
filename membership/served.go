package membership

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/grits-cdn/grits/internal/wire"
)

// Served is what a node tells the swarm about the work it has done since
// its process started: requests and body bytes served to browsers over
// HTTPS/HTTP3, and over grits/1 to members and clients. Every node keeps
// the latest report of each member, so any node's dashboard can show
// the share of bytes the volunteers served. The counts are the node's
// own word: nothing can check them, and a node could inflate its own.
// The signature only stops one member from speaking for another, and
// (Start, Seq) stops a replayed older report from winning.
type Served struct {
	Node NodeID
	// Start is when the reporting process started (millisecond
	// precision): the counters begin at zero with it, so a report with a
	// later Start is a restart, not a drop.
	Start time.Time
	// Seq numbers the reports of one process, from 1.
	Seq                       uint64
	HTTPRequests, HTTPBytes   uint64
	ProtoRequests, ProtoBytes uint64
}

// Wire constants of a served report (a gossip message, not memberlist
// metadata: nodes that predate it drop the message type they do not
// know, so adding it kept gossip compatible).
const (
	tagServed    = 'V'
	domainServed = "grits-served-v1\x00"
	msgServed    = 'W' // gossip message type: an encoded Served follows
	// MaxServedSize bounds an encoded report: header, node, start,
	// five varints, signature.
	MaxServedSize = 2 + nodeIDSize + 8 + 5*binary.MaxVarintLen64 + sigSize
)

func (v Served) body() []byte {
	b := make([]byte, 0, MaxServedSize)
	b = append(b, tagServed, formatV1)
	b = append(b, v.Node[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(v.Start.UnixMilli()))
	b = binary.AppendUvarint(b, v.Seq)
	b = binary.AppendUvarint(b, v.HTTPRequests)
	b = binary.AppendUvarint(b, v.HTTPBytes)
	b = binary.AppendUvarint(b, v.ProtoRequests)
	return binary.AppendUvarint(b, v.ProtoBytes)
}

// newer reports whether v supersedes old (the same node's).
func (v Served) newer(old Served) bool {
	if !v.Start.Equal(old.Start) {
		return v.Start.After(old.Start)
	}
	return v.Seq > old.Seq
}

// signedServed is a decoded report with its signature, not yet checked.
type signedServed struct {
	Served
	signed, sig []byte
}

// decodeServed parses a report; the signature is checked by the caller,
// which knows whether the node is a member.
func decodeServed(b []byte) (signedServed, error) {
	if len(b) > MaxServedSize {
		return signedServed{}, fmt.Errorf("served report: %w: %d bytes, at most %d", ErrMalformed, len(b), MaxServedSize)
	}
	r := wire.NewReader(b, ErrMalformed)
	readHeader(r, tagServed, "served report")
	var v signedServed
	copy(v.Node[:], r.Bytes(uint64(nodeIDSize)))
	ms := r.Bytes(8)
	v.Seq = r.Uvarint()
	v.HTTPRequests = r.Uvarint()
	v.HTTPBytes = r.Uvarint()
	v.ProtoRequests = r.Uvarint()
	v.ProtoBytes = r.Uvarint()
	n := len(b) - r.Remaining()
	v.sig = r.Bytes(uint64(sigSize))
	if err := r.Done(); err != nil {
		return signedServed{}, fmt.Errorf("served report: %w", err)
	}
	u := binary.BigEndian.Uint64(ms)
	if u > 1<<62 {
		return signedServed{}, fmt.Errorf("served report: %w: start time %d", ErrMalformed, u)
	}
	v.Start = time.UnixMilli(int64(u)).UTC()
	if v.Seq == 0 {
		return signedServed{}, fmt.Errorf("served report: %w: seq 0", ErrMalformed)
	}
	v.signed = b[:n]
	return v, nil
}

// encode signs v with the node's key.
func (v Served) encode(key ed25519.PrivateKey) []byte {
	body := v.body()
	return append(body, sign(key, domainServed, body)...)
}

// ReportServed tells the swarm this node's counters (Node and Seq are
// filled in). Call it every few seconds while they change; it does not
// block.
func (s *Swarm) ReportServed(v Served) {
	v.Node = s.id
	v.Start = v.Start.Truncate(time.Millisecond).UTC()
	s.mu.Lock()
	if s.served == nil {
		s.served = map[NodeID]Served{}
	}
	v.Seq = s.servedSeq + 1
	s.servedSeq = v.Seq
	s.served[s.id] = v
	s.mu.Unlock()
	s.queue.QueueBroadcast(&latestBroadcast{node: s.id, msg: append([]byte{msgServed}, v.encode(s.cfg.NodeKey)...)})
}

// Served returns the latest report of every member this node lists
// (itself included, once it has reported), in no particular order.
func (s *Swarm) Served() []Served {
	members := s.Members()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Served, 0, len(members))
	for _, m := range members {
		if v, ok := s.served[m.ID]; ok {
			out = append(out, v)
		}
	}
	return out
}

// acceptServed keeps a member's report if it is newer than the one held
// and signed by that member.
func (s *Swarm) acceptServed(b []byte) error {
	v, err := decodeServed(b)
	if err != nil {
		return err
	}
	s.mu.Lock()
	_, member := s.view[v.Node]
	old, had := s.served[v.Node]
	banned := s.ringNow.Bans.Banned(v.Node)
	s.mu.Unlock()
	switch {
	case v.Node == s.id:
		return nil // our own, echoed back
	case !member || banned:
		return fmt.Errorf("served report from %s: %w", v.Node.String()[:16], ErrNotMember)
	case had && !v.newer(old):
		return nil // gossip repeats itself
	case !verify(v.Node, domainServed, v.signed, v.sig):
		return fmt.Errorf("served report from %s: %w", v.Node.String()[:16], ErrBadSignature)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.served[v.Node]; ok && !v.newer(cur) {
		return nil
	}
	if s.served == nil {
		s.served = map[NodeID]Served{}
	}
	// Reports of nodes that left the view are dropped once they would
	// outnumber the members, so the map stays bounded by the view.
	if len(s.served) > 2*len(s.view)+1 {
		for id := range s.served {
			if _, ok := s.view[id]; !ok {
				delete(s.served, id)
			}
		}
	}
	s.served[v.Node] = v.Served
	return nil
}

// Health is what memberlist says about this node's view of the swarm:
// its own metrics, sampled (they are otherwise only reported through a
// process-wide metrics sink).
type Health struct {
	// Score is memberlist's awareness: 0 is healthy; higher means this
	// node has been slow to answer probes or missed acks, and it then
	// probes less often.
	Score int
	// Queued is the gossip broadcasts waiting to be sent.
	Queued int
	// Members is how many nodes memberlist knows alive or suspect.
	Members int
}

// Health samples memberlist's own state.
func (s *Swarm) Health() Health {
	return Health{Score: s.ml.GetHealthScore(), Queued: s.queue.NumQueued(), Members: s.ml.NumMembers()}
}
