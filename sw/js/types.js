// The media types of the grits service worker: the same fixed table of
// file name extensions that gritsd decides types with at import
// (internal/mediatype), for files of trees written before entries
// carried their type. sw/test/types.test.js holds it equal to the Go
// table (sw/testdata/media_types.json).
//
// Pure module: no browser APIs.

export const DEFAULT_TYPE = 'application/octet-stream';

export const TYPES = Object.freeze({
  '7z': 'application/x-7z-compressed', aac: 'audio/aac', apk: 'application/vnd.android.package-archive',
  apng: 'image/apng', atom: 'application/atom+xml', avi: 'video/x-msvideo', avif: 'image/avif',
  bin: 'application/octet-stream', bmp: 'image/bmp', bz2: 'application/x-bzip2',
  cjs: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8', csv: 'text/csv; charset=utf-8',
  deb: 'application/vnd.debian.binary-package', dmg: 'application/octet-stream',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  eot: 'application/vnd.ms-fontobject', epub: 'application/epub+zip', exe: 'application/octet-stream',
  flac: 'audio/flac', gif: 'image/gif', gz: 'application/gzip', heic: 'image/heic', heif: 'image/heif',
  htm: 'text/html; charset=utf-8', html: 'text/html; charset=utf-8', ico: 'image/x-icon',
  ics: 'text/calendar; charset=utf-8', iso: 'application/octet-stream', jfif: 'image/jpeg', jpeg: 'image/jpeg',
  jpg: 'image/jpeg', js: 'text/javascript; charset=utf-8', json: 'application/json',
  jsonl: 'application/jsonl', jsonld: 'application/ld+json', jxl: 'image/jxl',
  less: 'text/x-less; charset=utf-8', m3u8: 'application/vnd.apple.mpegurl', m4a: 'audio/mp4',
  m4v: 'video/mp4', map: 'application/json', markdown: 'text/markdown; charset=utf-8',
  md: 'text/markdown; charset=utf-8', mid: 'audio/midi', midi: 'audio/midi',
  mjs: 'text/javascript; charset=utf-8', mkv: 'video/x-matroska', mov: 'video/quicktime', mp3: 'audio/mpeg',
  mp4: 'video/mp4', mpd: 'application/dash+xml', mpeg: 'video/mpeg', mpg: 'video/mpeg',
  ndjson: 'application/x-ndjson', odp: 'application/vnd.oasis.opendocument.presentation',
  ods: 'application/vnd.oasis.opendocument.spreadsheet', odt: 'application/vnd.oasis.opendocument.text',
  oga: 'audio/ogg', ogg: 'audio/ogg', ogv: 'video/ogg', opus: 'audio/ogg', otf: 'font/otf',
  pdf: 'application/pdf', png: 'image/png',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  rss: 'application/rss+xml', rtf: 'application/rtf', sass: 'text/x-sass; charset=utf-8',
  scss: 'text/x-scss; charset=utf-8', srt: 'application/x-subrip', svg: 'image/svg+xml',
  tar: 'application/x-tar', text: 'text/plain; charset=utf-8', tgz: 'application/gzip', tif: 'image/tiff',
  tiff: 'image/tiff', toml: 'application/toml', ts: 'video/mp2t',
  tsv: 'text/tab-separated-values; charset=utf-8', ttc: 'font/collection', ttf: 'font/ttf',
  txt: 'text/plain; charset=utf-8', vtt: 'text/vtt; charset=utf-8', wasm: 'application/wasm', wav: 'audio/wav',
  weba: 'audio/webm', webm: 'video/webm', webmanifest: 'application/manifest+json', webp: 'image/webp',
  woff: 'font/woff', woff2: 'font/woff2', xhtml: 'application/xhtml+xml',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', xml: 'application/xml',
  xsl: 'application/xml', xz: 'application/x-xz', yaml: 'application/yaml', yml: 'application/yaml',
  zip: 'application/zip', zst: 'application/zstd',
});

/** typeByName is the table's type for a file name (by its extension, any case), or '' when it has none. */
export function typeByName(name) {
  const dot = name.lastIndexOf('.');
  if (dot < 0 || dot === name.length - 1) return '';
  const ext = name.slice(dot + 1).toLowerCase();
  return Object.prototype.hasOwnProperty.call(TYPES, ext) ? TYPES[ext] : '';
}

/**
 * serveType is the type to send for a file entry, as the origin does
 * (mediatype.Serve): the type the tree stores (entry.type), else the
 * table's answer for the name, else DEFAULT_TYPE. name is the file's
 * own name (index.html for a directory).
 */
export function serveType(stored, name) {
  if (stored) return stored;
  return typeByName(name) || DEFAULT_TYPE;
}
