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

// setCORSHeaders marks an API response readable from any origin.
func setCORSHeaders(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
}

// setPreflightHeaders answers a CORS preflight for the API.
func setPreflightHeaders(h http.Header) {
	h.Set("Access-Control-Allow-Methods", allowedMethods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
}
