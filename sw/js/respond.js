// The shape of the grits service worker's answers: for a file found in
// the tree, the status, headers and body layout the origin sends for the
// same request (gateway/site.go, which hands the file to Go's
// net/http.ServeContent): ETag, Last-Modified, Range (one range, several
// as multipart/byteranges, suffixes, odd spacing, what it refuses and
// what it ignores), If-None-Match and If-Range; and the origin's answers
// for paths that are not a file (404, a redirect to the directory's
// slash form, 400 for a path the tree refuses). sw/test/respond.test.js
// holds it to Go's own answers (sw/testdata/responses.json).
//
// If-Match, If-Modified-Since and If-Unmodified-Since are not
// evaluated: a page's fetch carries them only when the page sets them.
//
// Pure module: no browser APIs.

const enc = new TextEncoder();

// A Go int64: strconv.ParseInt(s, 10, 64) takes an optional sign.
const INT64_MAX = (1n << 63n) - 1n;

function parseInt64(s) {
  if (!/^[+-]?[0-9]+$/.test(s)) return null;
  const v = BigInt(s);
  return v > INT64_MAX || v < -INT64_MAX - 1n ? null : v;
}

// textproto.TrimString: ASCII space, tab, CR and LF at both ends.
function trimHTTP(s) {
  return s.replace(/^[ \t\r\n]+|[ \t\r\n]+$/g, '');
}

/**
 * parseRange reads a Range header for a representation of size bytes
 * exactly as Go's net/http does. Returns null without a header,
 * {ranges: [{start, length}]} (ranges past the end dropped), or {error:
 * 'invalid'} / {error: 'nooverlap'} (no range overlaps the content).
 */
export function parseRange(s, size) {
  if (!s) return null;
  if (!s.startsWith('bytes=')) return { error: 'invalid' };
  const big = BigInt(size);
  const ranges = [];
  let noOverlap = false;
  for (let ra of s.slice(6).split(',')) {
    ra = trimHTTP(ra);
    if (ra === '') continue;
    const dash = ra.indexOf('-');
    if (dash < 0) return { error: 'invalid' };
    const start = trimHTTP(ra.slice(0, dash));
    const end = trimHTTP(ra.slice(dash + 1));
    if (start === '') {
      if (end === '' || end[0] === '-') return { error: 'invalid' };
      let i = parseInt64(end);
      if (i === null || i < 0n) return { error: 'invalid' };
      if (i > big) i = big;
      ranges.push({ start: size - Number(i), length: Number(i) });
      continue;
    }
    const i = parseInt64(start);
    if (i === null || i < 0n) return { error: 'invalid' };
    if (i >= big) {
      noOverlap = true;
      continue;
    }
    let length = big - i;
    if (end !== '') {
      let j = parseInt64(end);
      if (j === null || i > j) return { error: 'invalid' };
      if (j >= big) j = big - 1n;
      length = j - i + 1n;
    }
    ranges.push({ start: Number(i), length: Number(length) });
  }
  if (noOverlap && ranges.length === 0) return { error: 'nooverlap' };
  return { ranges };
}

// scanETag is Go's: one entity tag at the start of s, and the rest.
function scanETag(s) {
  s = trimHTTP(s);
  const start = s.startsWith('W/') ? 2 : 0;
  if (s.length - start < 2 || s[start] !== '"') return ['', ''];
  for (let i = start + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80) continue;
    if (c === 0x22) return [s.slice(0, i + 1), s.slice(i + 1)];
    return ['', ''];
  }
  return ['', ''];
}

// noneMatch is checkIfNoneMatch: true when If-None-Match names etag (weakly) or is *.
function noneMatch(inm, etag) {
  let buf = inm;
  for (;;) {
    buf = trimHTTP(buf);
    if (buf.length === 0) return false;
    if (buf[0] === ',') {
      buf = buf.slice(1);
      continue;
    }
    if (buf[0] === '*') return true;
    const [t, rest] = scanETag(buf);
    if (t === '') return false;
    if (t.replace(/^W\//, '') === etag.replace(/^W\//, '')) return true;
    buf = rest;
  }
}

// ifRangeHolds is checkIfRange: may the range be served?
function ifRangeHolds(ir, etag, lastModified) {
  const [t] = scanETag(ir);
  if (t !== '') return t === etag && t[0] === '"';
  if (!lastModified) return false;
  const d = Date.parse(ir);
  return Number.isFinite(d) && Math.floor(d / 1000) === Math.floor(Date.parse(lastModified) / 1000);
}

/** randomBoundary is a multipart boundary like Go's: 30 random bytes in hex. */
export function randomBoundary(random = (b) => crypto.getRandomValues(b)) {
  const b = random(new Uint8Array(30));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/** httpDate formats a time (ms) as an IMF-fixdate, as Go's http.TimeFormat. */
export function httpDate(ms) {
  return new Date(ms).toUTCString();
}

/**
 * A segment of an answer's body: literal bytes, or a range of the file.
 * @typedef {{bytes: Uint8Array, start?: undefined, length?: undefined} | {bytes?: undefined, start: number, length: number}} Segment
 */

/**
 * An answer to send: status, headers and body segments.
 * @typedef {{status: number, headers: Record<string, string>, body: Segment[]}} Plan
 */

/**
 * planFile answers a GET or HEAD for a file the tree holds, as the origin
 * would. req: {method, range, ifRange, ifNoneMatch} (header values or
 * null). file: {size, etag, type, lastModified (an HTTP date or '')}.
 * Returns {status, headers (an object), body}: body is a list of
 * segments, each {bytes: Uint8Array} (literal) or {start, length} (file
 * bytes), empty for HEAD and bodiless answers. boundary names the parts
 * of a multipart answer (randomBoundary by default).
 * @param {{method: string, range?: string|null, ifRange?: string|null, ifNoneMatch?: string|null}} req
 * @param {{size: number, etag: string, type: string, lastModified: string}} file
 * @param {string} [boundary]
 * @returns {Plan}
 */
export function planFile(req, file, boundary) {
  const headers = {
    'ETag': file.etag, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff', 'Content-Type': file.type,
  };
  if (file.lastModified) headers['Last-Modified'] = file.lastModified;
  const head = req.method === 'HEAD';
  if (req.ifNoneMatch && noneMatch(req.ifNoneMatch, file.etag)) {
    delete headers['Content-Type'];
    delete headers['Last-Modified'];
    return { status: 304, headers, body: [] };
  }
  let range = req.range || '';
  if (range && req.ifRange && !ifRangeHolds(req.ifRange, file.etag, file.lastModified)) range = '';
  let parsed = parseRange(range, file.size);
  if (parsed && parsed.error === 'nooverlap' && file.size === 0) parsed = null;
  if (parsed && parsed.error) {
    const text = parsed.error === 'nooverlap' ? 'invalid range: failed to overlap' : 'invalid range';
    const h = { 'X-Content-Type-Options': 'nosniff', 'Content-Type': 'text/plain; charset=utf-8' };
    if (parsed.error === 'nooverlap') h['Content-Range'] = `bytes */${file.size}`;
    const b = enc.encode(text + '\n');
    h['Content-Length'] = String(b.length); // what arrives; Go leaves it to the server
    return { status: 416, headers: h, body: head ? [] : [{ bytes: b }] };
  }
  let ranges = parsed ? parsed.ranges : [];
  if (ranges.reduce((n, r) => n + r.length, 0) > file.size) ranges = [];
  headers['Accept-Ranges'] = 'bytes';
  if (ranges.length === 0) {
    headers['Content-Length'] = String(file.size);
    return { status: 200, headers, body: head || file.size === 0 ? [] : [{ start: 0, length: file.size }] };
  }
  const cr = (r) => `bytes ${r.start}-${r.start + r.length - 1}/${file.size}`;
  if (ranges.length === 1) {
    headers['Content-Range'] = cr(ranges[0]);
    headers['Content-Length'] = String(ranges[0].length);
    return { status: 206, headers, body: head ? [] : [{ start: ranges[0].start, length: ranges[0].length }] };
  }
  // Several ranges: multipart/byteranges, laid out as Go's
  // mime/multipart writes it (part headers sorted by name).
  const bnd = boundary || randomBoundary();
  /** @type {Segment[]} */
  const body = [];
  let n = 0;
  ranges.forEach((r, i) => {
    const b = enc.encode(`${i > 0 ? '\r\n' : ''}--${bnd}\r\nContent-Range: ${cr(r)}\r\nContent-Type: ${file.type}\r\n\r\n`);
    body.push({ bytes: b }, { start: r.start, length: r.length });
    n += b.length + r.length;
  });
  const tail = enc.encode(`\r\n--${bnd}--\r\n`);
  body.push({ bytes: tail });
  n += tail.length;
  headers['Content-Type'] = `multipart/byteranges; boundary=${bnd}`;
  headers['Content-Length'] = String(n);
  return { status: 206, headers, body: head ? [] : body };
}

/**
 * planNotFile answers a path the tree proves is not a file to serve, as
 * the origin does: a directory asked for without its trailing slash is
 * redirected to it (query kept); anything else is 404 (the origin
 * serves no listings, follows no symlinks). {status, headers, body}.
 * @param {string} what
 * @param {string} pathname
 * @param {string} search
 * @returns {Plan}
 */
export function planNotFile(what, pathname, search) {
  if (what === 'dir-no-slash') {
    return { status: 301, headers: { 'Location': pathname + '/' + search, 'Cache-Control': 'no-cache' }, body: [] };
  }
  return textError(404, '404 page not found');
}

/**
 * textError is the origin's plain-text error answer (gateway's fail).
 * @param {number} status
 * @param {string} text
 * @returns {Plan}
 */
export function textError(status, text) {
  const b = enc.encode(text + '\n');
  return {
    status,
    headers: {
      'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store',
      'Content-Length': String(b.length),
    },
    body: [{ bytes: b }],
  };
}

// ---- pages with the registration script ----

/**
 * injectHTML returns page with tag inserted before the last </head>,
 * else the last </body> (either in any ASCII case), else at the end; a
 * page that holds tag already is returned as it is. It is the origin's
 * gateway.InjectHTML (inject_sw_tree), held to it by
 * sw/testdata/inject.json: a page is the same whoever serves it.
 * @param {Uint8Array} page
 * @param {string} tag
 * @returns {Uint8Array}
 */
export function injectHTML(page, tag) {
  const t = enc.encode(tag);
  if (indexOfBytes(page, t, false) >= 0) return page;
  let at = indexOfBytes(page, enc.encode('</head>'), true);
  if (at < 0) at = indexOfBytes(page, enc.encode('</body>'), true);
  if (at < 0) at = page.length;
  const out = new Uint8Array(page.length + t.length);
  out.set(page.subarray(0, at), 0);
  out.set(t, at);
  out.set(page.subarray(at), at + t.length);
  return out;
}

// indexOfBytes finds needle in hay: the first match, or with last the
// last one compared in ASCII lower case (needle given in lower case).
function indexOfBytes(hay, needle, last) {
  const lower = (c) => (c >= 0x41 && c <= 0x5a ? c + 0x20 : c);
  const n = needle.length;
  const at = (i) => {
    for (let j = 0; j < n; j++) {
      if ((last ? lower(hay[i + j]) : hay[i + j]) !== needle[j]) return false;
    }
    return true;
  };
  if (last) {
    for (let i = hay.length - n; i >= 0; i--) if (at(i)) return i;
  } else {
    for (let i = 0; i + n <= hay.length; i++) if (at(i)) return i;
  }
  return -1;
}
