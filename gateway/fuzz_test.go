package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/grits-cdn/grits/blockstore"
	"github.com/grits-cdn/grits/tree"
)

// FuzzParseGatewayPath checks the API path parser: it never panics, what
// it accepts is canonical (re-encoding gives a path that parses the same)
// and holds only valid names, and what it refuses the handler answers
// with 400 or 404 without reading the store. Seeds are in
// testdata/fuzz/FuzzParseGatewayPath.
func FuzzParseGatewayPath(f *testing.F) {
	h := blockstore.Sum([]byte("seed")).String()
	for _, s := range []string{
		"/grits/v1/root", "/grits/v1/peers",
		"/grits/v1/block/" + h, "/grits/v1/block/" + h + "/",
		"/grits/v1/lookup/latest", "/grits/v1/lookup/latest/", "/grits/v1/lookup/latest/a/b.html",
		"/grits/v1/lookup/" + h + "/docs/", "/grits/v1/lookup/latest//x", "/grits/v1/lookup/latest/../x",
		"/grits/v1/lookup/latest/a\x00b", "/grits/v1/lookup/", "/grits/v1/x",
		"/grits/v1/blocks/" + h, "/grits/v1/blocks/" + h + "," + h, "/grits/v1/blocks/" + h + ",", "/grits/v1/blocks/,",
	} {
		f.Add(s)
	}
	var gets atomic.Int64
	store := gwGetterFunc(func(_ context.Context, _ blockstore.Hash) ([]byte, error) {
		gets.Add(1)
		return nil, blockstore.ErrNotFound
	})
	handler, err := NewHandler(Config{Store: store, RateLimit: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		req, err := parseAPIPath(s)
		if err != nil && !errors.Is(err, errAPIUnknownEndpoint) && !errors.Is(err, errAPIBadPath) {
			t.Fatalf("%q: untyped error %v", s, err)
		}
		if strings.HasPrefix(s, APIPrefix) && len(s) <= MaxURLPath {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.URL.Path, r.URL.RawPath = s, ""
			w := httptest.NewRecorder()
			before := gets.Load()
			handler.ServeHTTP(w, r)
			switch {
			case errors.Is(err, errAPIUnknownEndpoint):
				if w.Code != http.StatusNotFound || gets.Load() != before {
					t.Fatalf("%q: status %d, %d store reads", s, w.Code, gets.Load()-before)
				}
			case err != nil:
				if w.Code != http.StatusBadRequest || gets.Load() != before {
					t.Fatalf("%q: status %d, %d store reads", s, w.Code, gets.Load()-before)
				}
			case w.Code != http.StatusOK && w.Code != http.StatusNotFound:
				// An empty store and no root: 200 (peers) or 404.
				t.Fatalf("%q: status %d", s, w.Code)
			}
		}
		if err != nil {
			return
		}
		var canon string
		switch req.endpoint {
		case apiRoot:
			canon = APIPrefix + "root"
		case apiPeers:
			canon = APIPrefix + "peers"
		case apiBlock:
			canon = APIPrefix + "block/" + req.hash.String()
		case apiBlocks:
			if n := len(req.hashes); n == 0 || n > MaxBlocksPerRequest {
				t.Fatalf("%q: %d blocks", s, n)
			}
			var names []string
			for _, h := range req.hashes {
				names = append(names, h.String())
			}
			canon = APIPrefix + "blocks/" + strings.Join(names, ",")
		case apiLookup:
			if len(req.path) > tree.MaxPathDepth {
				t.Fatalf("%q: %d components", s, len(req.path))
			}
			for _, name := range req.path {
				if err := tree.ValidName(name); err != nil {
					t.Fatalf("%q: accepted name %q: %v", s, name, err)
				}
			}
			seg := lookupLatest
			if !req.latest {
				seg = req.hash.String()
			}
			canon = APIPrefix + "lookup/" + seg + "/" + strings.Join(req.path, "/")
		default:
			t.Fatalf("%q: endpoint %d", s, req.endpoint)
		}
		if req.endpoint != apiLookup && canon != s {
			t.Fatalf("%q accepted, canonical form %q", s, canon)
		}
		again, err := parseAPIPath(canon)
		if err != nil {
			t.Fatalf("%q: canonical %q refused: %v", s, canon, err)
		}
		if again.endpoint != req.endpoint || again.hash != req.hash || again.latest != req.latest ||
			strings.Join(again.path, "/") != strings.Join(req.path, "/") || len(again.path) != len(req.path) {
			t.Fatalf("%q: canonical %q parses differently", s, canon)
		}
	})
}
