package offload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/grits-cdn/grits/internal/wire"
	"github.com/grits-cdn/grits/tree"
)

// The ledger file: what the origin learned from its own audits, kept in
// the data directory so that a restart neither forgets a failure nor
// takes a node's word for what it had verified. Layout (docs/design.md,
// "Offload and audits"):
//
//	magic "GRITSOF1" | count uvarint | count records | CRC-32C u32 (big-endian)
//
// each record:
//
//	node [32] | addr (uvarint length, bytes) | verified seq uvarint
//	| last seen, last audit, last pass, failed at (uvarint ms since 1970 each, 0: never)
//	| passed uvarint | failed uvarint | strikes u8 | reason (uvarint length, bytes)
//
// Records are sorted by node key, one per node; strings are UTF-8. The
// CRC covers everything before it. The encoding is canonical: a decoded
// ledger re-encodes to the same bytes (FuzzDecodeLedger).
const ledgerMagic = "GRITSOF1"

// Limits checked before anything is allocated.
const (
	MaxLedgerNodes = 4096
	maxAddrLen     = 255
	maxReasonLen   = 512
	// maxMillis is the end of year 9999: later times are not ours.
	maxMillis = 253402300799999
)

// ErrLedger marks a ledger file that does not decode.
var ErrLedger = errors.New("offload: malformed ledger")

// Record is what the origin knows about one storage node, from its own
// audits only.
type Record struct {
	Node tree.PublicKey
	// Addr is the node's grits/1 address when last seen: commands that
	// run without the daemon dial it.
	Addr string
	// Verified is the root seq up to which the node was verified to hold
	// the library; 0 for none (a new node, or one that failed).
	Verified uint64
	// LastSeen is when gossip last showed it alive; LastAudit when it was
	// last asked for a block, LastPass when it last answered right.
	LastSeen, LastAudit, LastPass time.Time
	// FailedAt is set while the node is failed (it then counts as no
	// copy of anything), with Reason.
	FailedAt time.Time
	// Passed and Failed count audits; Strikes counts audits in a row that
	// got no answer at all.
	Passed, Failed uint64
	Strikes        uint8
	Reason         string
}

// Ledger is every node's record, sorted by node key.
type Ledger struct {
	Records []Record
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendUvarint(b, 0)
	}
	return binary.AppendUvarint(b, uint64(max(1, min(t.UnixMilli(), maxMillis))))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Encode returns the ledger's file bytes. Records must be sorted and
// unique (Set keeps them so); strings are clipped to their limits.
func (l Ledger) Encode() []byte {
	b := []byte(ledgerMagic)
	b = binary.AppendUvarint(b, uint64(len(l.Records)))
	for _, r := range l.Records {
		b = append(b, r.Node[:]...)
		b = appendString(b, clip(r.Addr, maxAddrLen))
		b = binary.AppendUvarint(b, r.Verified)
		for _, t := range []time.Time{r.LastSeen, r.LastAudit, r.LastPass, r.FailedAt} {
			b = appendTime(b, t)
		}
		b = binary.AppendUvarint(b, r.Passed)
		b = binary.AppendUvarint(b, r.Failed)
		b = append(b, r.Strikes)
		b = appendString(b, clip(r.Reason, maxReasonLen))
	}
	return l.withCRC(b)
}

func (Ledger) withCRC(body []byte) []byte {
	return binary.BigEndian.AppendUint32(body, crc32.Checksum(body, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// clip shortens s to at most n bytes without splitting a character.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// DecodeLedger parses a ledger file, refusing anything but the canonical
// encoding of a valid ledger.
func DecodeLedger(b []byte) (Ledger, error) {
	if len(b) < len(ledgerMagic)+4 || string(b[:len(ledgerMagic)]) != ledgerMagic {
		return Ledger{}, fmt.Errorf("%w: not a ledger (bad magic or too short)", ErrLedger)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return Ledger{}, fmt.Errorf("%w: checksum mismatch", ErrLedger)
	}
	d := wire.NewReader(body[len(ledgerMagic):], ErrLedger)
	n := d.Uvarint()
	if d.Err == nil && n > MaxLedgerNodes {
		d.Fail("%d records, limit MaxLedgerNodes = %d", n, MaxLedgerNodes)
	}
	// A record is at least 32 + 10 bytes: a count the rest cannot hold is
	// refused before allocating for it.
	if d.Err == nil && n*42 > uint64(d.Remaining()) {
		d.Fail("%d records cannot fit in %d bytes", n, d.Remaining())
	}
	var l Ledger
	if d.Err == nil && n > 0 {
		l.Records = make([]Record, 0, n)
	}
	for i := uint64(0); i < n && d.Err == nil; i++ {
		var r Record
		r.Node = tree.PublicKey(d.Hash())
		r.Addr = readString(d, maxAddrLen, "address")
		r.Verified = d.Uvarint()
		for _, t := range []*time.Time{&r.LastSeen, &r.LastAudit, &r.LastPass, &r.FailedAt} {
			*t = readTime(d)
		}
		r.Passed = d.Uvarint()
		r.Failed = d.Uvarint()
		r.Strikes = d.U8()
		r.Reason = readString(d, maxReasonLen, "reason")
		if d.Err == nil && len(l.Records) > 0 && bytes.Compare(l.Records[len(l.Records)-1].Node[:], r.Node[:]) >= 0 {
			d.Fail("records not in strictly ascending node order")
		}
		l.Records = append(l.Records, r)
	}
	if err := d.Done(); err != nil {
		return Ledger{}, err
	}
	return l, nil
}

func readString(d *wire.Reader, limit uint64, what string) string {
	n := d.Uvarint()
	if d.Err == nil && n > limit {
		d.Fail("%s of %d bytes, limit %d", what, n, limit)
	}
	s := d.Bytes(n)
	if d.Err == nil && !utf8.Valid(s) {
		d.Fail("%s is not UTF-8", what)
	}
	return string(s)
}

func readTime(d *wire.Reader) time.Time {
	ms := d.Uvarint()
	switch {
	case d.Err != nil || ms == 0:
		return time.Time{}
	case ms > maxMillis:
		d.Fail("time %d ms lies after year 9999", ms)
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}

// Find returns the record of node id, if any.
func (l *Ledger) Find(id tree.PublicKey) (Record, bool) {
	i, ok := l.search(id)
	if !ok {
		return Record{}, false
	}
	return l.Records[i], true
}

func (l *Ledger) search(id tree.PublicKey) (int, bool) {
	return slices.BinarySearchFunc(l.Records, id, func(r Record, id tree.PublicKey) int { return bytes.Compare(r.Node[:], id[:]) })
}

// Set adds or replaces the record of r.Node, keeping the order.
func (l *Ledger) Set(r Record) {
	i, ok := l.search(r.Node)
	if ok {
		l.Records[i] = r
		return
	}
	l.Records = slices.Insert(l.Records, i, r)
}

// ReadLedger reads the ledger at path; a missing file is an empty ledger.
func ReadLedger(path string) (Ledger, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Ledger{}, nil
	}
	if err != nil {
		return Ledger{}, fmt.Errorf("offload: read ledger: %w", err)
	}
	l, err := DecodeLedger(b)
	if err != nil {
		return Ledger{}, fmt.Errorf("%s: %w", path, err)
	}
	return l, nil
}

// WriteLedger replaces the file at path atomically and durably.
func WriteLedger(path string, l Ledger) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("offload: write ledger: %w", err)
	}
	_, werr := f.Write(l.Encode())
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("offload: write ledger: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("offload: write ledger: %w", err)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("offload: write ledger: %w", err)
	}
	defer dir.Close()
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("offload: write ledger: %w", err)
	}
	return nil
}
