package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/proto"
	"github.com/grits-cdn/grits/tree"
)

// apiEndpoint names what an API path asks for.
type apiEndpoint uint8

const (
	apiRoot   apiEndpoint = 1
	apiPeers  apiEndpoint = 2
	apiLookup apiEndpoint = 3
	apiBlock  apiEndpoint = 4
	apiBlocks apiEndpoint = 5
)

// MaxBlocksPerRequest bounds /grits/v1/blocks/{h1},{h2},...: a run of a
// file's blocks in one response (2 to 4 MiB at the usual chunk sizes),
// so a browser pays one request, not one per block.
const MaxBlocksPerRequest = 16

// apiRequest is a parsed API path.
type apiRequest struct {
	endpoint apiEndpoint
	// hash is the block (apiBlock) or the tree (apiLookup, unless latest).
	hash blockstore.Hash
	// hashes are the blocks of apiBlocks, in order.
	hashes []blockstore.Hash
	latest bool
	// path is the lookup path, valid per tree.ParsePath.
	path tree.Path
}

// Errors of parseAPIPath: errAPIUnknownEndpoint answers 404,
// errAPIBadPath 400.
var (
	errAPIUnknownEndpoint = errors.New("no such API endpoint")
	errAPIBadPath         = errors.New("bad API path")
)

// lookupLatest is the {root} segment that names the newest signed root.
const lookupLatest = "latest"

// parseAPIPath reads a decoded URL path under APIPrefix. It checks
// everything a request names (hash syntax, path names) without touching
// any store:
//
//	/grits/v1/root
//	/grits/v1/peers
//	/grits/v1/block/b3-<64 hex>
//	/grits/v1/blocks/b3-<64 hex>,b3-<64 hex>,... (1 to MaxBlocksPerRequest)
//	/grits/v1/lookup/{b3-<64 hex>|latest}[/path]
//
// A lookup path is what follows the root segment and its slash: it may
// end with a slash (a directory) but not start with one, and its names
// must pass tree.ParsePath ("..", empty names and NUL are refused).
func parseAPIPath(p string) (apiRequest, error) {
	rest, ok := strings.CutPrefix(p, APIPrefix)
	if !ok {
		return apiRequest{}, errAPIUnknownEndpoint
	}
	switch rest {
	case "root":
		return apiRequest{endpoint: apiRoot}, nil
	case "peers":
		return apiRequest{endpoint: apiPeers}, nil
	}
	if seg, ok := strings.CutPrefix(rest, "block/"); ok {
		h, err := blockstore.ParseHash(seg)
		if err != nil {
			return apiRequest{}, fmt.Errorf("%w: %w", errAPIBadPath, err)
		}
		return apiRequest{endpoint: apiBlock, hash: h}, nil
	}
	if seg, ok := strings.CutPrefix(rest, "blocks/"); ok {
		// Checked for length before splitting: no allocation for a list
		// longer than allowed.
		if n := strings.Count(seg, ",") + 1; n > MaxBlocksPerRequest {
			return apiRequest{}, fmt.Errorf("%w: %d blocks, at most %d", errAPIBadPath, n, MaxBlocksPerRequest)
		}
		req := apiRequest{endpoint: apiBlocks}
		for s := range strings.SplitSeq(seg, ",") {
			h, err := blockstore.ParseHash(s)
			if err != nil {
				return apiRequest{}, fmt.Errorf("%w: %w", errAPIBadPath, err)
			}
			req.hashes = append(req.hashes, h)
		}
		return req, nil
	}
	if after, ok := strings.CutPrefix(rest, "lookup/"); ok {
		seg, tail, _ := strings.Cut(after, "/")
		req := apiRequest{endpoint: apiLookup}
		if seg == lookupLatest {
			req.latest = true
		} else {
			h, err := blockstore.ParseHash(seg)
			if err != nil {
				return apiRequest{}, fmt.Errorf("%w: lookup root: %w", errAPIBadPath, err)
			}
			req.hash = h
		}
		if strings.HasPrefix(tail, "/") {
			return apiRequest{}, fmt.Errorf("%w: lookup path starts with an empty name", errAPIBadPath)
		}
		tp, err := tree.ParsePath(tail)
		if err != nil {
			return apiRequest{}, fmt.Errorf("%w: %w", errAPIBadPath, err)
		}
		req.path = tp
		return req, nil
	}
	return apiRequest{}, errAPIUnknownEndpoint
}

func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, root tree.Root, hasRoot bool) {
	req, err := parseAPIPath(r.URL.Path)
	switch {
	case errors.Is(err, errAPIUnknownEndpoint):
		h.fail(w, http.StatusNotFound, "no such endpoint")
		return
	case err != nil:
		h.log.Debug("bad API request", "path", clipForLog(r.URL.Path), "err", err)
		h.fail(w, http.StatusBadRequest, "bad request: "+clipForLog(err.Error()))
		return
	}
	switch req.endpoint {
	case apiRoot:
		h.serveRoot(w, r, root, hasRoot)
	case apiPeers:
		h.servePeers(w, r)
	case apiLookup:
		h.serveLookup(w, r, req, root, hasRoot)
	case apiBlock:
		h.serveBlock(w, r, req.hash)
	case apiBlocks:
		h.serveBlocks(w, r, req.hashes)
	}
}

// blocksAhead is how many blocks of a run serveBlocks reads ahead of the
// one it writes: a volunteer that lacks them fetches them through the
// swarm in parallel, and memory stays bounded (a few MiB a request).
const blocksAhead = 4

// serveBlocks answers a run of blocks, concatenated in the order named.
// The client knows each block's size from the file node and checks each
// against its hash, as it does single blocks. The body is streamed: the
// first block is in hand before the status is sent (a missing one is a
// clean 404); a block that fails later ends the response early, which
// the client sees as a truncated body and answers from elsewhere.
func (h *Handler) serveBlocks(w http.ResponseWriter, r *http.Request, hashes []blockstore.Hash) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	type result struct {
		b   *cachedBlock
		err error
	}
	results := make([]chan result, len(hashes))
	next := 0
	startUpTo := func(i int) {
		for ; next < len(hashes) && next <= i; next++ {
			ch := make(chan result, 1)
			results[next] = ch
			go func(hash blockstore.Hash) {
				b, err := h.getBlock(ctx, hash)
				ch <- result{b, err}
			}(hashes[next])
		}
	}
	// Every started read ends (ctx is cancelled on return) and sends into
	// a buffered channel: no goroutine outlives the request for long.
	hdr := w.Header()
	var n int64
	for i := range hashes {
		startUpTo(i + blocksAhead)
		res := <-results[i]
		if res.err != nil {
			if i == 0 {
				if errors.Is(res.err, blockstore.ErrNotFound) {
					h.fail(w, http.StatusNotFound, "block not found: "+hashes[0].String())
				} else {
					h.storeFailed(w, r.Context(), "blocks", res.err)
				}
				return
			}
			h.log.Debug("blocks: run cut short", "block", hashes[i].Short(), "err", res.err)
			break
		}
		if i == 0 {
			hdr["Content-Type"] = hvOctetStream
			hdr["Cache-Control"] = hvImmutable
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodHead {
				return
			}
		}
		n += writeBlockBody(w, res.b.data)
		if r.Context().Err() != nil {
			return
		}
	}
	if n > 0 {
		h.served("block", n)
	}
}

// serveLookup answers with the LookupResult frame the QUIC server would
// send for the same Lookup (zstd not accepted): the proof, the signed
// root for latest, and a small file inline.
//
// The optional query parameter inline=N lowers the inline limit, as the
// frame's inline_max does (0: no inline data, for a client that has the
// file cached).
func (h *Handler) serveLookup(w http.ResponseWriter, r *http.Request, req apiRequest, root tree.Root, hasRoot bool) {
	maxInline := h.maxInline
	if q := r.URL.Query().Get("inline"); q != "" {
		n, err := strconv.ParseUint(q, 10, 64)
		if err != nil {
			h.fail(w, http.StatusBadRequest, "bad request: inline wants a byte count")
			return
		}
		maxInline = min(maxInline, n)
	}
	ctx := r.Context()
	treeHash := req.hash
	var signed *tree.Root
	if req.latest {
		if !hasRoot {
			h.fail(w, http.StatusNotFound, "this node holds no signed root yet")
			return
		}
		signed, treeHash = &root, root.Tree
	}
	proof, res, err := tree.BuildProof(ctx, h.cfg.Store, treeHash, req.path)
	if err != nil {
		h.lookupFailed(w, ctx, treeHash, req, err)
		return
	}
	var inline []byte
	if res.Status == tree.Found && res.Entry.Kind == tree.KindFile && res.Entry.Size <= maxInline {
		f := res.Node.(*tree.FileNode)
		buf := bytes.NewBuffer(make([]byte, 0, f.Size))
		// A node with the proof but not every chunk still answers; the
		// client fetches the blocks elsewhere.
		if err := tree.ReadFile(ctx, h.cfg.Store, f, 0, f.Size, buf); err == nil {
			inline = buf.Bytes()
		} else {
			h.log.Debug("lookup: no inline data", "path", req.path, "err", err)
		}
	}
	m := proto.NewLookupResult(res.Status, proof, inline, false)
	m.Root = signed
	frame, err := proto.AppendMessage(nil, m)
	if err != nil {
		h.log.Error("lookup: encode result", "path", req.path, "err", err)
		h.fail(w, http.StatusInternalServerError, "internal error")
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", LookupContentType)
	if req.latest {
		hdr.Set("Cache-Control", cacheNoCache)
	} else {
		hdr.Set("Cache-Control", cacheImmutable)
	}
	h.served("lookup", writeBody(w, r, frame))
}

// lookupFailed maps a BuildProof error to a status: 404 for a tree this
// node does not hold (or holds only in part, or a hash that is no
// directory), 5xx for the node's own failures.
func (h *Handler) lookupFailed(w http.ResponseWriter, ctx context.Context, treeHash blockstore.Hash, req apiRequest, err error) {
	switch {
	case errors.Is(err, blockstore.ErrNotFound):
		if _, gerr := h.cfg.Store.Get(ctx, treeHash); errors.Is(gerr, blockstore.ErrNotFound) {
			h.fail(w, http.StatusNotFound, "unknown tree "+treeHash.String())
			return
		}
		h.fail(w, http.StatusNotFound, "this node lacks part of the tree on that path")
	case errors.Is(err, tree.ErrMalformed) && !req.latest:
		// The store verified the bytes: the hash names a block that is
		// not a directory tree.
		h.fail(w, http.StatusNotFound, "unknown tree "+treeHash.String())
	default:
		h.storeFailed(w, ctx, "lookup", err)
	}
}

// storeFailed answers an error of the store or the fetcher behind it.
func (h *Handler) storeFailed(w http.ResponseWriter, ctx context.Context, what string, err error) {
	switch {
	case ctx.Err() != nil:
		// The client went away; nobody reads this.
		h.fail(w, http.StatusServiceUnavailable, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		h.log.Warn(what+" timed out", "err", err)
		h.fail(w, http.StatusGatewayTimeout, "timed out")
	case errors.Is(err, blockstore.ErrNotFound):
		// Content the tree names that this node cannot produce now: an
		// origin whose storage nodes hold it are all away.
		h.log.Warn(what+": content unavailable", "err", err)
		h.fail(w, http.StatusServiceUnavailable, "content unavailable: "+err.Error())
	default:
		h.log.Error(what+" failed", "err", err)
		h.fail(w, http.StatusInternalServerError, "internal error")
	}
}

// blockETag is the entity tag of a block's bytes in an encoding ("" for
// identity). The hash is always of the decoded bytes; each encoding is a
// different representation and gets its own tag.
func blockETag(hash blockstore.Hash, enc string) string {
	if ext := encodingETagSuffix(enc); ext != "" {
		return `"` + hash.String() + ext + `"`
	}
	return `"` + hash.String() + `"`
}

// matchBlockETag returns the tag in an If-None-Match list that names one
// of the representations of hash ("*" is left to http.ServeContent, which
// needs the block to exist).
func matchBlockETag(inm string, hash blockstore.Hash) (string, bool) {
	for part := range strings.SplitSeq(inm, ",") {
		t := strings.TrimPrefix(strings.TrimSpace(part), "W/") // weak comparison (RFC 9110, 13.1.2)
		for _, enc := range []string{"", encZstd, encGzip} {
			if tag := blockETag(hash, enc); t == tag {
				return tag, true
			}
		}
	}
	return "", false
}

// Header values of the block endpoint, assigned straight into the
// response's header map: the keys are canonical and each value is a
// one-element slice (len == cap, so an Add elsewhere copies instead of
// writing into it), which spares http.Header.Set's canonicalisation and
// allocation on the hottest path. They must never be modified.
var (
	hvVaryAcceptEncoding = []string{"Accept-Encoding"}
	hvOctetStream        = []string{"application/octet-stream"}
	hvImmutable          = []string{cacheImmutable}
	hvAcceptRanges       = []string{"bytes"}
)

// getBlock returns the verified block from the cache or, failing that,
// from the store, caching it.
func (h *Handler) getBlock(ctx context.Context, hash blockstore.Hash) (*cachedBlock, error) {
	now := time.Now()
	if h.blocks != nil {
		if b := h.blocks.get(hash, now); b != nil {
			h.cacheHits.Add(1)
			return b, nil
		}
		h.cacheMisses.Add(1)
	}
	data, err := h.cfg.Store.Get(ctx, hash)
	if err != nil {
		return nil, err
	}
	// Store.Get verified data against hash (tree.Getter's contract):
	// this is the only way bytes enter the cache.
	if h.blocks == nil {
		return newCachedBlock(hash, data, now), nil
	}
	// The cache keeps its own exact-size copy: a Getter may return a
	// slice of a larger buffer (a network read), which the cache would
	// otherwise pin unaccounted. One copy per miss is small beside the
	// read and hash that the miss cost.
	return h.blocks.add(newCachedBlock(hash, bytes.Clone(data), now)), nil
}

// serveBlock answers a block: immutable, with Range and conditional
// requests as http.ServeContent does them, and zstd or gzip when the
// client accepts it, the request is not a Range and it pays. A plain
// whole-block GET, the common case by far, skips ServeContent: with no
// Range, If-Match or If-None-Match and a zero modification time it would
// only set Accept-Ranges and Content-Length and copy the body.
func (h *Handler) serveBlock(w http.ResponseWriter, r *http.Request, hash blockstore.Hash) {
	hdr := w.Header()
	hdr["Vary"] = hvVaryAcceptEncoding
	// A block never changes: a client holding any representation of it
	// has it, and we need not even look.
	inm := r.Header.Get("If-None-Match")
	if inm != "" {
		if tag, ok := matchBlockETag(inm, hash); ok {
			hdr.Set("ETag", tag)
			hdr["Cache-Control"] = hvImmutable
			w.WriteHeader(http.StatusNotModified)
			h.served("block", 0)
			return
		}
	}
	ctx := r.Context()
	b, err := h.getBlock(ctx, hash)
	switch {
	case errors.Is(err, blockstore.ErrNotFound):
		h.fail(w, http.StatusNotFound, "block not found")
		return
	case errors.Is(err, blockstore.ErrCorrupt):
		h.log.Warn("block corrupt in store", "hash", hash, "err", err)
		h.fail(w, http.StatusNotFound, "block not found")
		return
	case err != nil:
		h.storeFailed(w, ctx, "block", err)
		return
	}
	body, enc := b.data, ""
	rng := r.Header.Get("Range")
	if rng == "" && b.compressible {
		if want := negotiateBlockEncoding(r.Header.Get("Accept-Encoding")); want != "" {
			if z, ok := h.encodeBlock(want, b.data); ok {
				body, enc = z, want
			}
		}
	}
	hdr["Content-Type"] = hvOctetStream
	hdr["Cache-Control"] = hvImmutable
	if enc != "" {
		hdr.Set("ETag", blockETag(hash, enc))
		hdr.Set("Content-Encoding", enc)
		// ServeContent leaves the length unset once an encoding is.
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
	} else {
		hdr["Etag"] = b.etag
	}
	if rng == "" && inm == "" && r.Header.Get("If-Match") == "" {
		hdr["Accept-Ranges"] = hvAcceptRanges
		if enc == "" {
			hdr["Content-Length"] = b.length
		}
		w.WriteHeader(http.StatusOK)
		var n int64
		if r.Method != http.MethodHead {
			n = writeBlockBody(w, body)
		}
		h.served("block", n)
		return
	}
	cw := &countingResponseWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", time.Time{}, bytes.NewReader(body))
	if cw.ok() {
		h.served("block", cw.n)
	}
}

// writeBlockBody writes body and returns the bytes written.
func writeBlockBody(w http.ResponseWriter, body []byte) int64 {
	n, _ := w.Write(body)
	return int64(n)
}
