package gateway

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// Content codings the block endpoint offers, best first.
const (
	encZstd = "zstd"
	encGzip = "gzip"
)

// encodingETagSuffix distinguishes an encoded representation's ETag.
func encodingETagSuffix(enc string) string {
	switch enc {
	case encZstd:
		return ".zst"
	case encGzip:
		return ".gz"
	}
	return ""
}

// negotiateBlockEncoding picks zstd, else gzip, if the Accept-Encoding
// header allows it (q > 0, named or through "*"); "" means identity.
func negotiateBlockEncoding(accept string) string {
	if accept == "" {
		return ""
	}
	zq, gq, star := -1.0, -1.0, -1.0
	for part := range strings.SplitSeq(accept, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f != f || f < 0 || f > 1 {
				q = 0 // a malformed weight does not opt in
			} else {
				q = f
			}
		}
		switch name {
		case encZstd:
			zq = q
		case encGzip, "x-gzip":
			gq = q
		case "*":
			star = q
		}
	}
	if zq < 0 {
		zq = star
	}
	if gq < 0 {
		gq = star
	}
	switch {
	case zq > 0:
		return encZstd
	case gq > 0:
		return encGzip
	}
	return ""
}

// minBlockSavingDiv: an encoding must save at least 1/8 of the size to be
// sent, as in proto (SPEC.md, section 7).
const minBlockSavingDiv = 8

// encodeBlock compresses data with enc and reports whether it pays.
func (h *Handler) encodeBlock(enc string, data []byte) ([]byte, bool) {
	var z []byte
	switch enc {
	case encZstd:
		z = h.zstdEnc.EncodeAll(data, make([]byte, 0, len(data)))
	case encGzip:
		var buf bytes.Buffer
		buf.Grow(len(data) / 2)
		gw, _ := h.gzPool.Get().(*gzip.Writer)
		if gw == nil {
			gw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid constant level
		} else {
			gw.Reset(&buf)
		}
		_, werr := gw.Write(data)
		cerr := gw.Close()
		h.gzPool.Put(gw)
		if werr != nil || cerr != nil {
			return nil, false
		}
		z = buf.Bytes()
	default:
		return nil, false
	}
	if len(z) > len(data)-len(data)/minBlockSavingDiv {
		return nil, false
	}
	return z, true
}
