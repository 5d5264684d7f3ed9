package membership

import (
	"encoding/binary"
	"math"
	"sort"

	"lukechampine.com/blake3"

	"github.com/grits-cdn/grits/blockstore"
)

// Candidate is a node placement may choose, with its weight.
type Candidate struct {
	ID     NodeID
	Weight float64 // > 0; capacity, in any unit, the same for all
}

// Homes returns the n candidates with the highest weighted rendezvous
// score for block h, best first. Every node computes the same answer from
// the same member list, so where a block lives is known, not searched
// for; when a node joins or leaves only the blocks it wins or held move.
//
// The score is the weighted form of highest-random-weight hashing
// (w / -ln(u), with u uniform in (0,1) from BLAKE3(node || block)), under
// which each node is chosen in proportion to its weight.
func Homes(h blockstore.Hash, cands []Candidate, n int) []Candidate {
	if n <= 0 || len(cands) == 0 {
		return nil
	}
	type scored struct {
		c Candidate
		s float64
	}
	all := make([]scored, 0, len(cands))
	var buf [64]byte
	for _, c := range cands {
		if c.Weight <= 0 {
			continue
		}
		copy(buf[:32], c.ID[:])
		copy(buf[32:], h[:])
		sum := blake3.Sum256(buf[:])
		// 53 random bits, shifted off zero: u in (0,1).
		u := (float64(binary.BigEndian.Uint64(sum[:8])>>11) + 0.5) / (1 << 53)
		all = append(all, scored{c, c.Weight / -math.Log(u)})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].s != all[j].s {
			return all[i].s > all[j].s
		}
		return string(all[i].c.ID[:]) < string(all[j].c.ID[:])
	})
	if len(all) > n {
		all = all[:n]
	}
	out := make([]Candidate, len(all))
	for i, s := range all {
		out[i] = s.c
	}
	return out
}
