// grits service worker: answers the page's GET requests for the site's
// static files from volunteers, verified against the site's signed root,
// and falls back to the origin whenever the swarm cannot answer or
// anything fails to verify. The page gets the right bytes or the
// origin's own answer, never unverified bytes.
//
// This is the first slice: root from the origin (and from the Grits-Root
// header of every origin response), one lookup per file at a volunteer
// chosen by rendezvous hashing, blocks of larger files fetched in order
// with a few in flight, each verified before any of its bytes reach the
// page, single Range requests, and a volunteer that sends bad data is
// dropped and reported to the origin. With the origin down, pages come
// from the swarm under the newest valid root volunteers offer. Not yet:
// peer scoring and hedging, a Cache Storage block cache.
/* global GRITS_CONFIG */
import * as g from '/grits/v1/js/grits.js';

const SITE_KEY = g.parsePublicKey(GRITS_CONFIG.siteKey);
const LOOKUP_CACHE_MAX = 2000;
const PREFETCH = 4;
const PEERS_TTL_MS = 30_000;
// A volunteer that has not answered in this time is passed over for the
// next one (and finally the origin): a hanging volunteer costs a page
// this much, not forever.
const PEER_TIMEOUT_MS = 3000;

function deadline(signal) {
  const t = AbortSignal.timeout(PEER_TIMEOUT_MS);
  return signal ? AbortSignal.any([signal, t]) : t;
}

let root = null; // the newest verified root
let rootPromise = null;
let peers = [];
let peersAt = 0;
const bad = new Set(); // volunteers that sent bad data: never asked again
const lookups = new Map(); // treeHex + path -> verified lookup

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith('/grits/') || url.pathname === '/grits-sw.js') return;
  if (req.mode === 'navigate') {
    // Pages come from the origin (it may be an app); their Grits-Root
    // header keeps the root fresh at no extra round trip. When the
    // origin is unreachable, the swarm serves the pages it holds, under
    // the newest valid root the volunteers offer.
    event.respondWith(fetch(req).then((resp) => { noteRoot(resp); return resp; }, async (err) => {
      await rootFromVolunteers().catch(() => {});
      try {
        return await fromSwarm(req, url);
      } catch (err2) {
        console.warn('grits: origin unreachable and the swarm cannot serve', url.pathname, err2.message);
        throw err;
      }
    }));
    return;
  }
  event.respondWith(serve(req, url));
});

async function serve(req, url) {
  try {
    return await fromSwarm(req, url);
  } catch (err) {
    console.debug('grits: origin answers', url.pathname, String(err && err.message || err));
    const resp = await fetch(req);
    noteRoot(resp);
    return resp;
  }
}

// noteRoot accepts the signed root an origin response carries, if newer.
function noteRoot(resp) {
  const h = resp.headers.get('Grits-Root');
  if (!h) return;
  const b64 = h.replace(/-/g, '+').replace(/_/g, '/');
  const bytes = Uint8Array.from(atob(b64 + '='.repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0));
  acceptRoot(bytes).catch((err) => console.warn('grits: root refused', err.message));
}

// The worker keeps its last root and volunteer list in Cache Storage, so
// that after a browser restart with the origin down it still knows whom
// to ask and never accepts an older root than it had.
const STATE = 'grits-state-v1';

async function saveState(name, body) {
  try {
    const c = await caches.open(STATE);
    await c.put(new Request(`/grits-state/${name}`), new Response(body));
  } catch (err) {
    console.debug('grits: state not saved', err.message);
  }
}

async function loadState(name) {
  try {
    const c = await caches.open(STATE);
    const r = await c.match(`/grits-state/${name}`);
    return r ? new Uint8Array(await r.arrayBuffer()) : null;
  } catch {
    return null;
  }
}

let restored = null;
function restore() {
  if (!restored) {
    restored = (async () => {
      const b = await loadState('root');
      if (b) await acceptRoot(b, false).catch(() => {});
      const p = await loadState('peers');
      if (p && peers.length === 0) peers = JSON.parse(new TextDecoder().decode(p));
    })();
  }
  return restored;
}

async function acceptRoot(bytes, save = true) {
  const r = await g.verifyRoot(g.decodeRoot(bytes), SITE_KEY, Date.now());
  if (root) {
    try {
      g.checkSuccessor(r, root);
    } catch (err) {
      if (err.code === 'same_root') return root;
      throw err;
    }
  }
  root = r;
  if (save) saveState('root', r.bytes);
  return root;
}

async function currentRoot() {
  await restore();
  if (root && BigInt(Math.floor(Date.now() / 1000)) < root.expires) return root;
  if (!rootPromise) {
    rootPromise = (async () => {
      try {
        const resp = await fetch('/grits/v1/root', { cache: 'no-store' });
        if (!resp.ok) throw new Error(`origin root: ${resp.status}`);
        return await acceptRoot(new Uint8Array(await resp.arrayBuffer()));
      } catch (err) {
        return rootFromVolunteers(); // the origin is down: ask the swarm
      }
    })().finally(() => { rootPromise = null; });
  }
  return rootPromise;
}

// rootFromVolunteers takes the newest root that verifies among those the
// volunteers offer (signature, expiry, never older than the one held).
async function rootFromVolunteers() {
  await restore();
  const offers = await Promise.allSettled((await volunteers()).map(async (peer) => {
    const resp = await fetch(`${peer}/grits/v1/root`, { mode: 'cors', cache: 'no-store', signal: deadline() });
    if (!resp.ok) throw new Error(`root at ${peer}: ${resp.status}`);
    return g.verifyRoot(g.decodeRoot(new Uint8Array(await resp.arrayBuffer())), SITE_KEY, Date.now());
  }));
  const valid = offers.filter((o) => o.status === 'fulfilled').map((o) => o.value).sort((a, b) => (a.seq < b.seq ? 1 : -1));
  for (const r of valid) {
    try {
      return await acceptRoot(r.bytes);
    } catch (err) {
      console.warn('grits: root from a volunteer refused', err.message);
    }
  }
  if (root) return root;
  throw new Error('no valid root from the origin or any volunteer');
}

async function volunteers() {
  await restore();
  if (Date.now() - peersAt > PEERS_TTL_MS) {
    try {
      const resp = await fetch('/grits/v1/peers', { cache: 'no-store' });
      if (resp.ok) {
        peers = (await resp.json()).map((p) => p.url.replace(/\/$/, '')).filter((u) => u.startsWith('https://'));
        peersAt = Date.now();
        saveState('peers', JSON.stringify(peers));
      }
    } catch (err) {
      peersAt = Date.now() - PEERS_TTL_MS + 5000; // origin down: retry in 5 s, use the known list meanwhile
      console.warn('grits: peers', err.message);
    }
  }
  return peers.filter((p) => !bad.has(p));
}

// drop stops using a volunteer that sent data that failed verification,
// for the rest of the worker's life, and tells the origin once.
function drop(peer, hash, reason) {
  if (bad.has(peer)) return;
  bad.add(peer);
  console.warn('grits: dropping volunteer', peer, reason);
  fetch('/grits/v1/report', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ peer, hash: hash || '', reason: String(reason).slice(0, 200) }),
  }).catch(() => {});
}

// ranked orders volunteers for a key by rendezvous hashing: the same
// file goes to the same volunteer (its cache is warm), and the next one
// takes over when it fails.
function ranked(list, key) {
  const enc = new TextEncoder();
  return list
    .map((p) => ({ p, s: g.toHex(g.blake3(enc.encode(p + '\n' + key))) }))
    .sort((a, b) => (a.s < b.s ? 1 : -1))
    .map((x) => x.p);
}

function sitePath(url) {
  let p = decodeURIComponent(url.pathname);
  if (p.endsWith('/')) p += 'index.html';
  return p;
}

async function lookup(r, path) {
  const key = g.toHex(r.tree) + path;
  const hit = lookups.get(key);
  if (hit) return hit; // unchanged content: no round trip at all
  const list = ranked(await volunteers(), path);
  if (list.length === 0) throw new Error('no volunteers');
  const enc = path.split('/').map(encodeURIComponent).join('/');
  let lastErr;
  for (const peer of list.slice(0, 2)) {
    try {
      const resp = await fetch(`${peer}/grits/v1/lookup/${g.formatHash(r.tree)}${enc}`, { mode: 'cors', cache: 'no-store', signal: deadline() });
      if (!resp.ok) throw new Error(`lookup at ${peer}: ${resp.status}`);
      const result = g.decodeLookupFrame(new Uint8Array(await resp.arrayBuffer()));
      const v = await g.verifyLookup(result, { path, treeHash: r.tree, siteKey: SITE_KEY, now: Date.now() });
      if (lookups.size >= LOOKUP_CACHE_MAX) lookups.delete(lookups.keys().next().value);
      lookups.set(key, v);
      return v;
    } catch (err) {
      if (err instanceof g.GritsError) drop(peer, '', `lookup ${path}: ${err.message}`);
      lastErr = err;
    }
  }
  throw lastErr;
}

// block fetches one block from the volunteers (or, last, the origin) and
// returns it only if it hashes to h.
async function block(h, signal) {
  const hex = g.formatHash(h);
  const list = ranked(await volunteers(), hex).slice(0, 2);
  list.push(self.location.origin);
  let lastErr;
  for (const peer of list) {
    try {
      // The origin gets no deadline: it is the last resort.
      const s = peer === self.location.origin ? signal : deadline(signal);
      const resp = await fetch(`${peer}/grits/v1/block/${hex}`, { mode: 'cors', signal: s });
      if (!resp.ok) throw new Error(`block at ${peer}: ${resp.status}`);
      const data = new Uint8Array(await resp.arrayBuffer());
      if (!g.bytesEqual(g.blake3(data), h)) {
        if (peer !== self.location.origin) drop(peer, hex, 'block does not match its hash');
        throw new Error(`block ${hex.slice(0, 15)} from ${peer} does not match its hash`);
      }
      return data;
    } catch (err) {
      if (signal && signal.aborted) throw err;
      lastErr = err;
    }
  }
  throw lastErr;
}

const TYPES = {
  html: 'text/html; charset=utf-8', css: 'text/css; charset=utf-8', js: 'text/javascript; charset=utf-8',
  mjs: 'text/javascript; charset=utf-8', json: 'application/json', svg: 'image/svg+xml', png: 'image/png',
  jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', webp: 'image/webp', avif: 'image/avif',
  ico: 'image/x-icon', woff: 'font/woff', woff2: 'font/woff2', webm: 'video/webm', mp4: 'video/mp4',
  mp3: 'audio/mpeg', ogg: 'audio/ogg', txt: 'text/plain; charset=utf-8', wasm: 'application/wasm',
};

function contentType(path) {
  const ext = path.slice(path.lastIndexOf('.') + 1).toLowerCase();
  return TYPES[ext] || 'application/octet-stream';
}

function parseRange(h, size) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(h || '');
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start, end;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return 'unsatisfiable';
  return { start, end };
}

async function fromSwarm(req, url) {
  const r = await currentRoot();
  const path = sitePath(url);
  const v = await lookup(r, path);
  if (v.status !== 'found' || v.entry.kind !== 'file') throw new Error(`${path}: ${v.status}`);
  const f = v.node;
  const size = f.size;
  const headers = new Headers({ 'Content-Type': contentType(path), 'Accept-Ranges': 'bytes', 'X-Grits-Verified': g.formatHash(v.entry.hash) });
  const range = parseRange(req.headers.get('Range'), size);
  if (range === 'unsatisfiable') {
    headers.set('Content-Range', `bytes */${size}`);
    return new Response(null, { status: 416, headers });
  }
  const start = range ? range.start : 0;
  const end = range ? range.end + 1 : size;
  const status = range ? 206 : 200;
  if (range) headers.set('Content-Range', `bytes ${start}-${end - 1}/${size}`);
  headers.set('Content-Length', String(end - start));
  if (v.inline) {
    return new Response(v.inline.slice(start, end), { status, headers });
  }
  const chunks = await g.listChunks(f, start, end - start, (h) => block(h));
  const abort = new AbortController();
  let next = 0;
  const inflight = [];
  const fill = () => {
    while (inflight.length < PREFETCH && next < chunks.length) {
      const c = chunks[next++];
      inflight.push(block(c.hash, abort.signal).then((data) => ({ c, data })));
    }
  };
  const body = new ReadableStream({
    async pull(ctrl) {
      fill();
      if (inflight.length === 0) { ctrl.close(); return; }
      const { c, data } = await inflight.shift();
      const from = Math.max(start, c.offset) - c.offset;
      const to = Math.min(end, c.offset + c.size) - c.offset;
      ctrl.enqueue(data.subarray(from, to));
      fill();
    },
    cancel() { abort.abort(); },
  }, { highWaterMark: 0 });
  return new Response(body, { status, headers });
}
