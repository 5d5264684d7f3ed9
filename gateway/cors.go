package gateway

import "net/http"

// CORS for the API: every origin may read it (blocks are public and
// verified by the reader), and the headers a service worker needs, the
// root above all, are exposed.
const (
	corsExposeHeaders = "Content-Range, Content-Length, ETag, Grits-Root, Content-Encoding"
	corsAllowHeaders  = "Range, If-None-Match, If-Modified-Since"
	corsMaxAge        = "86400"
)

// Shared header values (see hvOctetStream): never modified.
var (
	hvStar              = []string{"*"}
	hvCORSExposeHeaders = []string{corsExposeHeaders}
)

// setCORSHeaders marks an API response readable from any origin. It runs
// on every API request, so it assigns canonical keys directly.
func setCORSHeaders(h http.Header) {
	h["Access-Control-Allow-Origin"] = hvStar
	h["Access-Control-Expose-Headers"] = hvCORSExposeHeaders
}

// setPreflightHeaders answers a CORS preflight for the API.
func setPreflightHeaders(h http.Header) {
	h.Set("Access-Control-Allow-Methods", allowedMethods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
}
