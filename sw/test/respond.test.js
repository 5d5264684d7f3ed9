// The worker's answers (sw/js/respond.js) against the origin's own
// (sw/testdata/responses.json, recorded from gateway.Handler): status,
// headers and body byte for byte, for every kind of Range header,
// If-Range, If-None-Match, HEAD, and paths that are not files.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseRange, planFile, planNotFile, httpDate } from '../js/respond.js';
import { toHex } from '../js/blake3.js';

const vectors = JSON.parse(readFileSync(new URL('../testdata/responses.json', import.meta.url), 'utf8'));

const pattern = (n) => Uint8Array.from({ length: n }, (_, i) => i % 251);
const files = new Map(vectors.files.map((f) => {
  const [path, size] = f.split(' ');
  return ['/' + path, Number(size)];
}));
const dirs = new Set(['/d']);
const MTIME = Date.UTC(2026, 2, 4, 5, 6, 7);
// A boundary as long as Go's (60 hex digits): the lengths must agree.
const BOUNDARY = 'f'.repeat(60);

function bodyOf(plan, size) {
  const content = pattern(size);
  const parts = plan.body.map((s) => (s.bytes ? s.bytes : content.subarray(s.start, s.start + s.length)));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// answer is what the worker answers for a case: the file's plan, or the
// answer for a path the tree shows is not a file.
function answer(c, etags) {
  const u = new URL('https://origin.test' + c.path);
  const p = u.pathname.endsWith('/') ? u.pathname + 'index.html' : u.pathname;
  const h = c.request || {};
  if (files.has(p)) {
    const size = files.get(p);
    const file = { size, etag: etags.get(p), type: 'text/plain; charset=utf-8', lastModified: p === '/ten.txt' ? httpDate(MTIME) : '' };
    const req = { method: c.method, range: h.Range || null, ifRange: h['If-Range'] || null, ifNoneMatch: h['If-None-Match'] || null };
    return { plan: planFile(req, file, BOUNDARY), size };
  }
  return { plan: planNotFile(dirs.has(p) ? 'dir-no-slash' : 'absent', u.pathname, u.search), size: 0 };
}

test('the worker answers every request as the origin does', () => {
  // The ETags the origin sent: the files' hashes.
  const etags = new Map();
  for (const c of vectors.cases) if (c.headers.Etag) etags.set(new URL('https://o' + c.path).pathname, c.headers.Etag);
  assert.ok(vectors.cases.length > 200);
  for (const c of vectors.cases) {
    const what = `${c.method} ${c.path} ${JSON.stringify(c.request || {})}`;
    const { plan, size } = answer(c, etags);
    assert.equal(plan.status, c.status, what);
    const got = {};
    for (const [k, v] of Object.entries(plan.headers)) got[k === 'ETag' ? 'Etag' : k] = v.replaceAll(BOUNDARY, 'BOUNDARY');
    for (const [k, v] of Object.entries(c.headers)) assert.equal(got[k], v, `${what}: ${k}`);
    const body = bodyOf(plan, size);
    for (const k of Object.keys(got)) {
      if (k in c.headers) continue;
      // The recorder leaves an error's length to the server; the worker
      // states it (for HEAD too, as the server would).
      assert.ok(k === 'Content-Length' && c.status >= 400, `${what}: extra header ${k}`);
    }
    const hex = toHex(body).replaceAll(toHex(new TextEncoder().encode(BOUNDARY)), toHex(new TextEncoder().encode('BOUNDARY')));
    assert.equal(hex, c.body_hex, `${what}: body`);
  }
});

test('parseRange limits', () => {
  assert.equal(parseRange('', 10), null);
  assert.deepEqual(parseRange('bytes=0-', 2 ** 53 - 1), { ranges: [{ start: 0, length: 2 ** 53 - 1 }] });
  assert.deepEqual(parseRange('bytes=-9223372036854775807', 5), { ranges: [{ start: 0, length: 5 }] });
  assert.deepEqual(parseRange('bytes=-9223372036854775808', 5), { error: 'invalid' });
  assert.deepEqual(parseRange('bytes=1-9223372036854775808', 5), { error: 'invalid' });
});
