// Package mediatype decides the media type a file is served with, once,
// when it enters the tree: a fixed table of file name extensions compiled
// into gritsd, then, for a name the table does not know, a look at the
// file's first bytes. The answer is stored in the file's entry
// (tree.Entry.Type), so the origin, every volunteer and the service
// worker serve the same type on any machine; the host's /etc/mime.types
// never enters into it. Trees written before entries carried a type get
// the table's answer for the name, or Default.
//
// The service worker carries the same table (sw/js/types.js); a test
// holds the two equal through sw/testdata/media_types.json.
package mediatype

import (
	"maps"
	"net/http"
	"path"
	"strings"

	"github.com/grits-cdn/grits/tree"
)

// Default is the type of a file nothing says more about.
const Default = "application/octet-stream"

// Text types are UTF-8: what static site generators and editors write.
const (
	utf8Text  = "; charset=utf-8"
	plainText = "text/plain" + utf8Text
)

// table maps a lower-case extension, without its dot, to a type. The
// web's own types first (what browsers act on), then what sites commonly
// carry for download. Choices where tools disagree: .ts is an MPEG
// transport stream (HLS video segments), not TypeScript, which browsers
// do not run anyway; .xml is application/xml; .webm is video.
var table = map[string]string{
	// pages, styles, scripts, data
	"html": "text/html" + utf8Text, "htm": "text/html" + utf8Text, "xhtml": "application/xhtml+xml",
	"css": "text/css" + utf8Text, "js": "text/javascript" + utf8Text, "mjs": "text/javascript" + utf8Text,
	"cjs": "text/javascript" + utf8Text, "json": "application/json", "map": "application/json",
	"jsonld": "application/ld+json", "jsonl": "application/jsonl", "ndjson": "application/x-ndjson",
	"webmanifest": "application/manifest+json", "xml": "application/xml", "xsl": "application/xml",
	"rss": "application/rss+xml", "atom": "application/atom+xml", "wasm": "application/wasm",
	"txt": plainText, "text": plainText, "md": "text/markdown" + utf8Text, "markdown": "text/markdown" + utf8Text,
	"csv": "text/csv" + utf8Text, "tsv": "text/tab-separated-values" + utf8Text, "ics": "text/calendar" + utf8Text,
	"vtt": "text/vtt" + utf8Text, "srt": "application/x-subrip", "yaml": "application/yaml", "yml": "application/yaml",
	"toml": "application/toml", "scss": "text/x-scss" + utf8Text, "sass": "text/x-sass" + utf8Text,
	"less": "text/x-less" + utf8Text, "ts": "video/mp2t", "m3u8": "application/vnd.apple.mpegurl",
	"mpd": "application/dash+xml",
	// images
	"png": "image/png", "apng": "image/apng", "jpg": "image/jpeg", "jpeg": "image/jpeg", "jfif": "image/jpeg",
	"gif": "image/gif", "webp": "image/webp", "avif": "image/avif", "svg": "image/svg+xml", "ico": "image/x-icon",
	"bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff", "heic": "image/heic", "heif": "image/heif",
	"jxl": "image/jxl",
	// fonts
	"woff": "font/woff", "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf", "ttc": "font/collection",
	"eot": "application/vnd.ms-fontobject",
	// audio
	"mp3": "audio/mpeg", "ogg": "audio/ogg", "oga": "audio/ogg", "opus": "audio/ogg", "m4a": "audio/mp4",
	"aac": "audio/aac", "wav": "audio/wav", "flac": "audio/flac", "weba": "audio/webm", "mid": "audio/midi",
	"midi": "audio/midi",
	// video
	"mp4": "video/mp4", "m4v": "video/mp4", "webm": "video/webm", "ogv": "video/ogg", "mov": "video/quicktime",
	"mkv": "video/x-matroska", "avi": "video/x-msvideo", "mpeg": "video/mpeg", "mpg": "video/mpeg",
	// documents and archives
	"pdf": "application/pdf", "epub": "application/epub+zip", "rtf": "application/rtf", "zip": "application/zip",
	"gz": "application/gzip", "tgz": "application/gzip", "tar": "application/x-tar", "bz2": "application/x-bzip2",
	"xz": "application/x-xz", "zst": "application/zstd", "7z": "application/x-7z-compressed",
	"odt": "application/vnd.oasis.opendocument.text", "ods": "application/vnd.oasis.opendocument.spreadsheet",
	"odp":  "application/vnd.oasis.opendocument.presentation",
	"docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	"pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
	"bin":  Default, "exe": Default, "dmg": Default, "iso": Default, "deb": "application/vnd.debian.binary-package",
	"apk": "application/vnd.android.package-archive",
}

// ByName returns the table's type for a file name (by its extension,
// any case), or "" when the table does not know it.
func ByName(name string) string {
	ext := path.Ext(name)
	if len(ext) < 2 {
		return ""
	}
	return table[strings.ToLower(ext[1:])]
}

// SniffLen is how many of a file's first bytes Detect looks at.
const SniffLen = 512

// Detect decides the type of a new file named name whose first bytes are
// head (up to SniffLen): the table's answer for the name, else the type
// its content shows (net/http.DetectContentType, the WHATWG sniffing
// rules). Sniffing never makes a page: content that looks like HTML or
// XML is stored as plain text, so a file without an extension (an
// upload, a CNAME file) cannot run script in the site's origin.
func Detect(name string, head []byte) string {
	if t := ByName(name); t != "" {
		return t
	}
	t := http.DetectContentType(head)
	switch {
	case strings.HasPrefix(t, "text/html"), strings.HasPrefix(t, "text/xml"):
		return plainText
	case tree.ValidMediaType(t) != nil:
		return Default
	}
	return t
}

// Serve is the type to send for a file entry: the one the tree stores,
// else (a tree from before types) the table's answer for the name, else
// Default. name is the file's own name (index.html for a directory).
func Serve(stored, name string) string {
	if stored != "" {
		return stored
	}
	if t := ByName(name); t != "" {
		return t
	}
	return Default
}

// Table returns a copy of the table: extension (lower case, no dot) to
// type.
func Table() map[string]string { return maps.Clone(table) }
