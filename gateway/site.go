package gateway

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/grits-cdn/grits/internal/mediatype"
	"github.com/grits-cdn/grits/tree"
)

// siteIndex is the file a directory URL serves.
const siteIndex = "index.html"

// serveSite answers a path outside the API from the tree of the newest
// root: a directory by its index.html, a file with http.ServeContent over
// a reader that fetches one chunk at a time.
func (h *Handler) serveSite(w http.ResponseWriter, r *http.Request, root tree.Root, hasRoot bool) {
	if !h.cfg.Site || !hasRoot {
		h.notInTree(w, r)
		return
	}
	upath := r.URL.Path
	p, err := tree.ParsePath(upath)
	if err != nil {
		if h.cfg.Fallback != nil {
			h.toApp(w, r)
			return
		}
		h.log.Debug("site: bad path", "path", clipForLog(upath), "err", err)
		h.fail(w, http.StatusBadRequest, "bad request path")
		return
	}
	ctx := r.Context()
	res, err := tree.Lookup(ctx, h.cfg.Store, root.Tree, p)
	switch {
	case errors.Is(err, tree.ErrSymlink):
		// Lookups never follow symlinks, and neither does the site.
		h.fail(w, http.StatusNotFound, "404 page not found")
		return
	case errors.Is(err, tree.ErrNotExist) || errors.Is(err, tree.ErrNotDir):
		h.notInTree(w, r)
		return
	case err != nil:
		h.storeFailed(w, ctx, "site lookup", err)
		return
	}
	name := ""
	if len(p) > 0 {
		name = p[len(p)-1]
	}
	switch res.Entry.Kind {
	case tree.KindDir:
		if !strings.HasSuffix(upath, "/") {
			h.redirectToDir(w, r, p)
			return
		}
		// From the directory's own node: the path above is proven.
		res, err = tree.Lookup(ctx, h.cfg.Store, res.Entry.Hash, tree.Path{siteIndex})
		switch {
		case (errors.Is(err, tree.ErrNotExist) || errors.Is(err, tree.ErrNotDir)) && h.cfg.Fallback != nil:
			// A directory without an index (an app's "/" when the tree
			// holds only its static files): the app's page.
			h.cfg.Fallback.ServeHTTP(w, r)
			return
		case errors.Is(err, tree.ErrNotExist) || errors.Is(err, tree.ErrSymlink) || errors.Is(err, tree.ErrNotDir):
			h.fail(w, http.StatusNotFound, "404 page not found") // no listings
			return
		case err != nil:
			h.storeFailed(w, ctx, "site lookup", err)
			return
		}
		if res.Entry.Kind != tree.KindFile {
			h.fail(w, http.StatusNotFound, "404 page not found")
			return
		}
		name = siteIndex
	case tree.KindFile:
		if strings.HasSuffix(upath, "/") {
			h.fail(w, http.StatusNotFound, "404 page not found")
			return
		}
	default: // a symlink
		h.fail(w, http.StatusNotFound, "404 page not found")
		return
	}
	h.serveSiteFile(w, r, name, res)
}

// mediaHost reports whether host is one of Config.Hosts, and its tree
// path.
func (h *Handler) mediaHost(host string) (string, bool) {
	if len(h.cfg.Hosts) == 0 {
		return "", false
	}
	p, ok := h.cfg.Hosts[strings.ToLower(strings.TrimSuffix(host, ":443"))]
	return p, ok
}

// serveMedia answers a path on a media host: the file at prefix + path
// in the tree, else 404 (no index pages, no redirects, no app).
func (h *Handler) serveMedia(w http.ResponseWriter, r *http.Request, root tree.Root, hasRoot bool, prefix string) {
	if !h.cfg.Site || !hasRoot {
		h.fail(w, http.StatusNotFound, "404 page not found")
		return
	}
	p, err := tree.ParsePath(strings.TrimSuffix(prefix, "/") + r.URL.Path)
	if err != nil {
		h.fail(w, http.StatusBadRequest, "bad request path")
		return
	}
	res, err := tree.Lookup(r.Context(), h.cfg.Store, root.Tree, p)
	switch {
	case errors.Is(err, tree.ErrSymlink) || errors.Is(err, tree.ErrNotExist) || errors.Is(err, tree.ErrNotDir):
		h.fail(w, http.StatusNotFound, "404 page not found")
		return
	case err != nil:
		h.storeFailed(w, r.Context(), "media lookup", err)
		return
	}
	if res.Entry.Kind != tree.KindFile || strings.HasSuffix(r.URL.Path, "/") {
		h.fail(w, http.StatusNotFound, "404 page not found")
		return
	}
	h.serveSiteFile(w, r, p[len(p)-1], res)
}

// serveSiteFile sends a file found in the tree.
func (h *Handler) serveSiteFile(w http.ResponseWriter, r *http.Request, name string, res tree.Result) {
	f, ok := res.Node.(*tree.FileNode)
	if !ok {
		h.log.Error("site: found file without its node", "name", name)
		h.fail(w, http.StatusInternalServerError, "internal error")
		return
	}
	hdr := w.Header()
	hdr.Set("ETag", `"`+res.Entry.Hash.String()+`"`)
	hdr.Set("Cache-Control", cacheNoCache) // the service worker caches
	hdr.Set("X-Content-Type-Options", "nosniff")
	// The type the tree says (decided once, at import), never one this
	// host's MIME database or a sniff would give: every node and the
	// service worker send the same.
	ctype := mediatype.Serve(res.Entry.Type, name)
	hdr.Set("Content-Type", ctype)
	rd := newTreeFileReader(r.Context(), h.cfg.Store, f)
	if f.Size > 0 && r.Header.Get("Range") == "" {
		// The first chunk before the status line: a file the store cannot
		// produce (an origin's storage nodes all away) gets an error
		// naming what is missing, not a 200 with a short body.
		if err := rd.load(); err != nil {
			h.storeFailed(w, r.Context(), "site file "+name, err)
			return
		}
	}
	var body io.ReadSeeker = rd
	if h.cfg.InjectScript != "" && strings.HasPrefix(ctype, "text/html") && f.Size <= DefaultMaxInjectBody {
		page, err := io.ReadAll(rd)
		if err != nil {
			h.storeFailed(w, r.Context(), "site page", err)
			return
		}
		if injected := InjectHTML(page, h.cfg.InjectScript); len(injected) != len(page) {
			// Another representation than the tree's bytes: its own
			// validator, so a cache never mixes the two.
			hdr.Set("ETag", `"`+res.Entry.Hash.String()+`+sw"`)
			page = injected
		}
		body = bytes.NewReader(page)
	}
	cw := &countingResponseWriter{ResponseWriter: w}
	http.ServeContent(cw, r, name, res.Entry.MTime, body)
	if err := rd.Err(); err != nil && r.Context().Err() == nil {
		// The status line is gone; the client sees a short body.
		h.log.Error("site: reading file failed mid-response", "name", name, "err", err)
		return
	}
	if cw.ok() {
		h.served("site", cw.n)
	}
}

// redirectToDir sends a directory URL without its trailing slash to the
// slash form, so that relative links in its index.html resolve. The
// location is rebuilt from the parsed names, each escaped, so it is
// always a path on this host.
func (h *Handler) redirectToDir(w http.ResponseWriter, r *http.Request, p tree.Path) {
	var b strings.Builder
	for _, name := range p {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(name))
	}
	b.WriteByte('/')
	if r.URL.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(r.URL.RawQuery)
	}
	hdr := w.Header()
	hdr.Set("Location", b.String())
	hdr.Set("Cache-Control", cacheNoCache)
	w.WriteHeader(http.StatusMovedPermanently)
}

// notInTree answers a site path the tree does not have.
func (h *Handler) notInTree(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Fallback != nil {
		h.toApp(w, r)
		return
	}
	h.fail(w, http.StatusNotFound, "404 page not found")
}
