package proto

import (
	"errors"
	"fmt"
	"sync"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/klauspost/compress/zstd"
)

// Encoding says how a Block's data, or a LookupResult's inline data, is
// sent.
type Encoding uint8

// Block encodings: explicit numbers, append-only.
//
// grits/1 (2026-11): Raw, Zstd.
const (
	Raw  Encoding = 0
	Zstd Encoding = 1
)

func (e Encoding) String() string {
	switch e {
	case Raw:
		return "raw"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Encoding(%d)", uint8(e))
}

// Compression policy for NewBlock and NewLookupResult. Below
// minCompress the frame header of zstd eats most of any gain; a saving
// under 1/8 is not worth the client's decompression time.
const (
	minCompress  = 512
	minSavingDiv = 8
)

// codecs is the process-wide zstd pair. STYLE avoids package-level
// mutable state because two nodes must be able to share one process;
// these hold none of a node's state: their options are constants, and
// EncodeAll and DecodeAll are safe for concurrent use. Building them
// allocates a pool of (de)compressors per CPU, too much to do per
// message and pointless to do per node, so they are built once, on first
// use, and never closed.
var codecs = sync.OnceValue(func() *codecPair {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		// The BLAKE3 hash of the block, or the chunk hashes for inline
		// data, already say whether the bytes are right.
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		panic("proto: zstd encoder options: " + err.Error()) // constant options; covered by tests
	}
	dec, err := zstd.NewReader(nil,
		// Bounds the output of DecodeAll, and with it the window a
		// hostile frame can ask for: a decompression bomb fails after
		// at most this much work.
		zstd.WithDecoderMaxMemory(blockstore.MaxBlockSize),
		// Decode into the caller's buffer and never grow it: the
		// buffer's capacity is the exact limit of each call.
		zstd.WithDecodeAllCapLimit(true),
	)
	if err != nil {
		panic("proto: zstd decoder options: " + err.Error())
	}
	return &codecPair{enc, dec}
})

type codecPair struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

// compress returns raw in the cheapest encoding allowed: zstd when it
// saves at least 1/minSavingDiv, otherwise raw itself.
func compress(raw []byte, allowZstd bool) (Encoding, []byte) {
	if !allowZstd || len(raw) < minCompress {
		return Raw, raw
	}
	z := codecs().enc.EncodeAll(raw, make([]byte, 0, len(raw)))
	if len(z) > len(raw)-len(raw)/minSavingDiv {
		return Raw, raw
	}
	return Zstd, z
}

// decompress decodes a zstd payload whose output may not exceed limit
// (at most MaxBlockSize) bytes; limitName says which limit, for the
// error. The output buffer is allocated once at the limit and never
// grown, so a bomb costs at most limit bytes and the work to fill them.
func decompress(z []byte, limit int, limitName string) ([]byte, error) {
	out, err := codecs().dec.DecodeAll(z, make([]byte, 0, limit))
	switch {
	case errors.Is(err, zstd.ErrWindowSizeExceeded):
		return nil, fmt.Errorf("%w: zstd frame declares a window larger than MaxBlockSize = %d", ErrMalformed, blockstore.MaxBlockSize)
	case errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return nil, fmt.Errorf("%w: zstd data decompresses to more than %s = %d bytes", ErrMalformed, limitName, limit)
	case err != nil:
		return nil, fmt.Errorf("%w: zstd: %v", ErrMalformed, err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: zstd data decompresses to %d bytes, more than %s = %d", ErrMalformed, len(out), limitName, limit)
	}
	return out, nil
}

// Compressible is a cheap guess that spares the CPU of compressing media
// and archives: high byte diversity in a sample means already compressed
// (or random) data. Servers use it for grits/1 and HTTP alike, so a block
// is compressed, or not, the same way whichever way it travels.
func Compressible(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	sample := b[:min(len(b), 1024)]
	var seen [256]bool
	distinct := 0
	for _, c := range sample {
		if !seen[c] {
			seen[c] = true
			distinct++
		}
	}
	return distinct < 160
}
