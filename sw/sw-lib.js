// grits service worker library: answers a page's GET requests for the
// site's static files from volunteers, verified against the site's signed
// root, and falls back to the origin whenever the swarm cannot answer in
// time or anything fails to verify. The page gets the right bytes or the
// origin's own answer, never unverified bytes.
//
// The origin serves it at /grits/v1/sw-lib.js with its settings written
// in (GRITS_CONFIG); two kinds of workers import it statically:
// - grits' own /grits-sw.js (a few lines: the standalone worker), and
// - an app's own module worker (a service worker controls a scope alone,
//   so an app that has one, like Mastodon's, imports grits into it):
//
//     import { handleFetch } from '/grits/v1/sw-lib.js';
//     self.addEventListener('fetch', (event) => {
//       if (handleFetch(event)) return; // grits answers
//       // ... the app's own handling
//     });
//
// The public API is typed in sw-lib.d.ts (served beside it).
//
// - Root from the origin (and from the Grits-Root header of every origin
//   response); with the origin down, the newest valid root volunteers
//   offer, never older than the one held (kept in Cache Storage).
// - Volunteers are scored (latency, throughput, errors, advertised load;
//   js/peers.js) and chosen by rendezvous hashing per block or path, so
//   their caches stay warm. Each request is hedged: if the chosen
//   volunteer has not answered after about the recent p95 latency, the
//   next one is asked too; the first answer that verifies wins, the
//   other is aborted. A volunteer that sends bad data is dropped and
//   reported to the origin.
// - Verified blocks and tree nodes are kept in Cache Storage by hash
//   (js/cache.js), bounded, least recently used out first; lookups walk
//   the cached nodes first, so unchanged content costs no round trip,
//   across worker restarts and new roots, and is there offline.
// - Which requests it handles: settings.paths (URL path prefixes; by
//   default the tree's top-level names, so an app's routes stay off);
//   navigations go to the origin first unless settings.navigate.
// - handleMessage answers {type: 'grits-stats'} with counters (see stats).
/* global GRITS_CONFIG */
import * as g from './js/grits.js';
import { PeerScores, hedged, bodyDeadlineMs, readLimited, BodyTooLarge } from './js/peers.js';
import { BlockCache, localLookup, DEFAULT_CACHE_BYTES } from './js/cache.js';
import { serveType } from './js/types.js';
import { planFile, planNotFile, textError, httpDate, injectHTML } from './js/respond.js';

/** The worker's global scope, typed as a service worker's. */
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

/**
 * The settings in force: the origin's (GRITS_CONFIG, from gritsd.toml's
 * sw_* settings), as narrowed by configure().
 * @type {{paths: string[], navigate: boolean, cacheBytes: number, rootCheckMs: number}}
 */
const cfg = {
  // An empty list (paths from a tree not read yet) serves nothing from
  // the swarm; no list (an origin before sw_paths followed the tree), '/'.
  paths: Array.isArray(GRITS_CONFIG.paths) ? [...GRITS_CONFIG.paths] : ['/'],
  navigate: GRITS_CONFIG.navigate === true,
  cacheBytes: GRITS_CONFIG.cacheBytes > 0 ? GRITS_CONFIG.cacheBytes : DEFAULT_CACHE_BYTES,
  rootCheckMs: Number(GRITS_CONFIG.rootCheckMs) > 0 ? Number(GRITS_CONFIG.rootCheckMs) : 10_000,
};
// Media hosts (sw.Host): origin → the tree path their URL paths start
// from, '' for the tree's top.
const HOSTS = new Map((Array.isArray(GRITS_CONFIG.hosts) ? GRITS_CONFIG.hosts : [])
  .map((h) => [h.origin, h.prefix === '/' ? '' : h.prefix.replace(/\/$/, '')]));
const SITE_KEY = g.parsePublicKey(GRITS_CONFIG.siteKey);
// inject_sw_tree: the tag the origin inserts into the HTML pages it
// serves from the tree, into pages up to INJECT_MAX bytes (larger ones
// as stored); the worker's pages from the tree get it the same way.
const INJECT = typeof GRITS_CONFIG.inject === 'string' ? GRITS_CONFIG.inject : '';
const INJECT_MAX = 4 << 20; // gateway.DefaultMaxInjectBody
const VERSION = GRITS_CONFIG.version || '';

const LOOKUP_CACHE_MAX = 2000;
// Blocks of a file come in runs of RUN_BLOCKS consecutive blocks, one
// /grits/v1/blocks request each (a browser pays tens of milliseconds a
// request, far more than a 256 KiB block takes to arrive), with up to
// PREFETCH blocks asked for ahead of what the page has read.
const RUN_BLOCKS = 8;
// Files up to this size have their blocks kept in the cache.
const CACHE_FILE_MAX = 16 << 20;
const PREFETCH = 16;
const PEERS_TTL_MS = 30_000;
// Volunteers asked for one lookup or block (hedges and retries included)
// before the origin is.
const MAX_PEERS_PER_REQUEST = 3;
// A volunteer that has not answered in this time is passed over for the
// next one (and finally the origin): a hanging volunteer costs a page
// this much, not forever. peers.js keeps the hedge delay below it.
const PEER_TIMEOUT_MS = 3000;
// The most a volunteer's body may hold (more is a lie, and is not read:
// a small compressed body can decompress to gigabytes): a lookup's one
// frame (type byte, length varint, payload); a block or tree node whose
// size is not known ahead; a root.
const LOOKUP_BODY_MAX = 1 + 10 + g.MAX_LOOKUP_RESULT_PAYLOAD;
const BLOCK_MAX = Math.max(g.MAX_CHUNK_SIZE, g.MAX_NODE_SIZE);
const ORIGIN = self.location.origin;

let root = null; // the newest verified root
let rootPromise = null;
let peersAt = 0;
const scores = new PeerScores();
const lookups = new Map(); // treeHex + path -> verified lookup (memo in front of the local walk)

// ---- stats (postMessage {type: 'grits-stats'}) ----

function freshStats() {
  return {
    bytesFromVolunteers: 0, bytesFromCache: 0, bytesFromOrigin: 0,
    requestsFromVolunteers: 0, requestsFromCache: 0, requestsFromOrigin: 0,
    lookupsSent: 0, localLookups: 0, blocksSent: 0, hedgesSent: 0, prefetchedNodes: 0, prefetchedBlocks: 0,
    verifyFailures: 0, droppedPeers: 0, reportsSent: 0, rootChecks: 0, rootsFromVolunteers: 0, pagesReloaded: 0, pagesKept: 0,
  };
}
let stats = freshStats();
let protocols = {};

// tallyTimings counts the HTTP versions of the worker's requests to
// volunteers from its resource timings, then clears them (the buffer
// is small and stops recording when full). Volunteers answer with
// Timing-Allow-Origin: *, so nextHopProtocol is visible cross-origin.
function tallyTimings() {
  if (typeof performance === 'undefined' || !performance.getEntriesByType) return;
  const vols = scores.snapshot().map((p) => p.url + '/');
  for (const e of performance.getEntriesByType('resource')) {
    if (!vols.some((v) => e.name.startsWith(v))) continue;
    const p = /** @type {PerformanceResourceTiming} */ (e).nextHopProtocol || 'unknown';
    protocols[p] = (protocols[p] || 0) + 1;
  }
  performance.clearResourceTimings();
}
if (typeof performance !== 'undefined' && performance.addEventListener) {
  try {
    performance.setResourceTimingBufferSize(1000);
  } catch { /* not supported: tally more often */ }
  performance.addEventListener('resourcetimingbufferfull', tallyTimings);
}

function statsReport() {
  tallyTimings();
  return {
    ...stats,
    version: VERSION,
    rootSeq: root ? Number(root.seq) : null,
    protocols: { ...protocols },
    hedgeDelay: Math.round(scores.hedgeDelay()),
    cache: { bytes: cache.bytes, entries: cache.index.size, maxBytes: cache.maxBytes, ...cache.stats },
    peers: scores.snapshot(),
  };
}

/**
 * handleMessage answers the worker's own messages ({type: 'grits-stats'}
 * and {type: 'grits-reset-stats'}, answered with the counters on the
 * message's port, else to its source). It returns false for any other
 * message, which is the app's.
 * @param {ExtendableMessageEvent} event
 * @returns {boolean}
 */
export function handleMessage(event) {
  const d = event.data;
  if (!d || (d.type !== 'grits-stats' && d.type !== 'grits-reset-stats')) return false;
  if (d.type === 'grits-reset-stats') {
    tallyTimings();
    stats = freshStats();
    protocols = {};
  }
  // The answer waits for the cache writes already queued: what the
  // stats say is stored is stored (a browser closed right after keeps it).
  event.waitUntil(cache.queue.catch(() => {}).then(() => {
    const reply = statsReport();
    const port = event.ports && event.ports[0];
    if (port) port.postMessage(reply);
    else if (event.source) event.source.postMessage(reply);
  }));
  return true;
}

// ---- the block cache, in Cache Storage ----

// Entries are named /grits-cache/<hex>?n=<size>: the index is rebuilt
// from cache.keys() alone at worker start (workers restart often),
// without opening every response to learn its size.
class CacheStorageStore {
  constructor(name) {
    this.name = name;
    this.c = null;
  }

  async open() {
    if (!this.c) this.c = await caches.open(this.name);
    return this.c;
  }

  url(key, size) {
    return `/grits-cache/${key}?n=${size}`;
  }

  async list() {
    const out = [];
    for (const req of await (await this.open()).keys()) {
      const u = new URL(req.url);
      const m = /^\/grits-cache\/([0-9a-f]{64})$/.exec(u.pathname);
      const n = Number(u.searchParams.get('n'));
      if (m && Number.isSafeInteger(n) && n >= 0) out.push({ key: m[1], size: n });
    }
    return out;
  }

  async get(key, size) {
    const r = await (await this.open()).match(this.url(key, size));
    return r ? new Uint8Array(await r.arrayBuffer()) : null;
  }

  async put(key, bytes) {
    await (await this.open()).put(this.url(key, bytes.length), new Response(bytes, {
      headers: { 'Content-Type': 'application/octet-stream', 'X-Grits-Size': String(bytes.length) },
    }));
  }

  async delete(key, size) {
    await (await this.open()).delete(this.url(key, size));
  }
}

// MEMORY_BYTES of recently verified blocks stay in the worker's memory
// too (BlockCache's hot layer): a page's files asked for again while the
// worker lives cost no Cache Storage read and no re-hash.
const MEMORY_BYTES = 32 << 20;
function newCache() {
  return new BlockCache(new CacheStorageStore('grits-blocks-v1'), { maxBytes: cfg.cacheBytes, memoryBytes: Math.min(MEMORY_BYTES, cfg.cacheBytes / 4) });
}
let cache = newCache();
cache.init();
// A worker starts for a page's requests. Its first BLAKE3 runs cold (the
// engine compiles it): measured 20-30 ms on the first lookup's proof.
// Hash once now, while the page's request is still on its way.
g.blake3(new Uint8Array(64 << 10));

// ---- the public API: settings, lifecycle and routing ----

/**
 * configure narrows the origin's settings for this worker: an app that
 * wants fewer paths, or pages kept to itself. Call it at the top level of
 * the worker's script, before any event. Unknown keys are refused, so a
 * typo does not pass silently.
 * @param {{paths?: string[], navigate?: boolean, cacheBytes?: number, rootCheckMs?: number}} opts
 */
export function configure(opts) {
  for (const k of Object.keys(opts)) {
    if (!(k in cfg)) throw new TypeError(`grits configure: unknown setting ${k}`);
  }
  if (opts.paths !== undefined) {
    if (!Array.isArray(opts.paths) || opts.paths.length === 0 || !opts.paths.every((p) => typeof p === 'string' && p.startsWith('/'))) {
      throw new TypeError('grits configure: paths must be URL path prefixes starting with /');
    }
    cfg.paths = [...opts.paths];
  }
  if (opts.navigate !== undefined) cfg.navigate = opts.navigate === true;
  if (opts.cacheBytes !== undefined) {
    if (!(opts.cacheBytes >= 1 << 20)) throw new TypeError('grits configure: cacheBytes below 1 MiB');
    cfg.cacheBytes = opts.cacheBytes;
    cache = newCache();
  }
  if (opts.rootCheckMs !== undefined) {
    if (!(opts.rootCheckMs >= 1000)) throw new TypeError('grits configure: rootCheckMs below 1000');
    cfg.rootCheckMs = opts.rootCheckMs;
  }
}

/**
 * settings returns the settings in force (a copy), with the worker's
 * version (a hash of its code and the origin's settings).
 * @returns {{paths: string[], navigate: boolean, cacheBytes: number, rootCheckMs: number, version: string}}
 */
export function settings() {
  return { ...cfg, paths: [...cfg.paths], version: VERSION };
}

/**
 * prepare fetches what the first pages will need, so that they do not
 * wait for it: the volunteer list, the root, the tree's directory nodes
 * (lookups then walk them locally), the registration script; and opens
 * connections to the first volunteers. Give it to the install event's
 * waitUntil: work done there delays no page (until the worker is active
 * its pages are the network's), while work in activate holds back every
 * fetch event. It never rejects.
 * @returns {Promise<void>}
 */
export async function prepare() {
  cache.init();
  await refreshPeers().catch(() => {});
  warmPeers();
  await Promise.all([
    currentRoot().then(prefetchTree).catch((err) => console.debug('grits: prepare', err.message)),
    keepRegisterScript().catch(() => {}),
  ]);
}

// ---- ahead of the page: warm connections, the tree's directories ----

// warmPeers opens connections to the volunteers ranked first (a 186-byte
// root from each, which may also bring a newer root), so that a page's
// first lookups and blocks do not wait for a QUIC handshake. At most once
// every WARM_EVERY_MS a volunteer; never waited for.
const WARM_PEERS = 3;
const WARM_EVERY_MS = 15_000;
const warmedAt = new Map();
function warmPeers() {
  for (const peer of scores.rank('').slice(0, WARM_PEERS)) {
    const last = warmedAt.get(peer);
    if (last !== undefined && Date.now() - last < WARM_EVERY_MS) continue;
    warmedAt.set(peer, Date.now());
    fetch(`${peer}/grits/v1/root`, { mode: 'cors', cache: 'no-store', signal: AbortSignal.timeout(PEER_TIMEOUT_MS) })
      .then((resp) => { noteVolunteerRoot(peer, resp); return volunteerRootBody(peer, resp); })
      .catch(() => {}); // a dead volunteer shows when it is asked for something
  }
}

// prefetchTree fetches the directory nodes of the root's tree, top down,
// a level at a time (each level's nodes in parallel, from volunteers,
// verified), within PREFETCH_NODES nodes and PREFETCH_BYTES bytes, so
// that lookups become walks of cached nodes: a small file (a direct
// entry names its block) then costs one request, its block. Nodes
// already cached cost nothing, so after an import only the directories
// that changed are fetched. Once per tree.
const PREFETCH_NODES = 64;
const PREFETCH_BYTES = 512 << 10;
let prefetched = '';
async function prefetchTree(r) {
  const key = g.toHex(r.tree);
  if (prefetched === key) return;
  prefetched = key;
  let level = [r.tree];
  let nodes = 0;
  let bytes = 0;
  while (level.length > 0 && nodes < PREFETCH_NODES && bytes < PREFETCH_BYTES) {
    const take = level.slice(0, PREFETCH_NODES - nodes);
    nodes += take.length;
    const got = await Promise.all(take.map((h) => block(h).then((b) => b.data, () => null)));
    const next = [];
    for (const raw of got) {
      if (!raw) continue;
      bytes += raw.length;
      let n;
      try {
        n = g.decodeNode(raw);
      } catch {
        continue; // not a node: a lookup will say what it is
      }
      if (n.type === 'dir') {
        for (const e of n.entries) if (e.kind === 'dir') next.push(e.hash);
      } else if (n.type === 'shard') {
        for (const c of n.children) next.push(c.hash);
      }
    }
    level = next;
  }
  stats.prefetchedNodes += nodes;
}

// warmPage reads a page (a clone of an HTML response, aheadOfPage) for the
// files it names (img, script, source, video and audio src; link href
// for style sheets, preloads and icons) and fetches what a page's
// requests will ask for: their lookups, and the blocks of files up to
// PAGE_FILE_MAX, PAGE_BYTES in all. The browser asks for a page's
// pictures only once its style sheets and scripts are in (it holds
// back images while layout is blocked); by then they are here. The
// page's own requests share what is in flight (pendingLookups,
// blocksInFlight), and it shares theirs.
const PAGE_URLS = 64;
const PAGE_FILE_MAX = 1 << 20;
const PAGE_BYTES = 4 << 20;
const PAGE_HTML_MAX = 1 << 20;
const pagesWarmed = new Set(); // tree hex + page URL
async function warmPage(resp, pageURL) {
  const html = await resp.text();
  if (html.length > PAGE_HTML_MAX) return;
  const urls = new Map();
  for (const tag of html.matchAll(/<(img|script|source|video|audio|link)\b[^>]*>/gi)) {
    const t = tag[0];
    let attr = 'src';
    if (tag[1].toLowerCase() === 'link') {
      if (!/\brel\s*=\s*["']?[^"'>]*\b(stylesheet|preload|modulepreload|icon)\b/i.test(t)) continue;
      attr = 'href';
    }
    const m = new RegExp(`\\b${attr}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(t);
    if (!m) continue;
    let u;
    try {
      u = new URL((m[1] ?? m[2] ?? m[3]).replace(/&amp;/g, '&'), pageURL);
    } catch {
      continue;
    }
    let prefix = '';
    if (HOSTS.has(u.origin)) prefix = HOSTS.get(u.origin);
    else if (u.origin !== ORIGIN || u.pathname.startsWith('/grits/') || !inPaths(u.pathname)) continue;
    if (u.pathname.endsWith('/') || urls.size >= PAGE_URLS) continue;
    urls.set(prefix + sitePath(u), true);
  }
  if (urls.size === 0) return;
  const r = await currentRoot();
  let budget = PAGE_BYTES;
  await Promise.all([...urls.keys()].map(async (path) => {
    const { v } = await lookup(r, path);
    if (v.status !== 'found' || v.entry.kind !== 'file' || v.inline || !v.node || v.node.level !== 0) return;
    const size = Number(v.node.size);
    if (!(size <= PAGE_FILE_MAX) || size > budget) return;
    budget -= size;
    await Promise.all(v.node.hashes.map(async (h) => {
      if (blocksInFlight.has(g.toHex(h)) || cache.has(h)) return;
      stats.prefetchedBlocks++;
      await block(h);
    }));
  })).catch((err) => console.debug('grits: warming a page', err.message));
}

// registerScript answers /grits/v1/register.js from Cache Storage and
// fetches it again in the background (stale while revalidate): a page
// that includes it does not wait a round trip to the origin for a script
// that only asks the browser to check for a new worker.
// The script is also kept in memory, and asked for again at most once
// every REGISTER_EVERY_MS.
const REGISTER_KEY = '/grits-state/register.js';
const REGISTER_EVERY_MS = 60_000;
/** @type {{body: Uint8Array<ArrayBuffer>, type: string, at: number} | null} */
let register = null;
async function keepRegisterScript() {
  const resp = await fetch(`${ORIGIN}/grits/v1/register.js`, { cache: 'no-cache' });
  if (resp.ok) {
    const body = new Uint8Array(await resp.clone().arrayBuffer());
    register = { body, type: resp.headers.get('Content-Type') || 'text/javascript', at: Date.now() };
    await (await caches.open(STATE)).put(REGISTER_KEY, resp);
  }
}
async function registerScript(event) {
  if (!register) {
    const kept = await (await caches.open(STATE)).match(REGISTER_KEY).catch(() => undefined);
    if (kept) register = { body: new Uint8Array(await kept.arrayBuffer()), type: kept.headers.get('Content-Type') || 'text/javascript', at: 0 };
  }
  if (!register) await keepRegisterScript().catch(() => {});
  if (!register) return fetch(event.request); // the origin's answer, whatever it is
  if (Date.now() - register.at > REGISTER_EVERY_MS) event.waitUntil(keepRegisterScript().catch(() => {}));
  return new Response(register.body, { headers: { 'Content-Type': register.type, 'Cache-Control': 'no-cache' } });
}


// inPaths: pathname starts with a configured prefix. A directory's URL
// counts as its index page's ("/" as "/index.html"), so a prefix naming
// a top-level file, as the tree's paths do, covers the site's front
// page; and "/dir" as "/dir/" (the tree answers it with a redirect).
function inPaths(pathname) {
  const index = pathname.endsWith('/') ? pathname + 'index.html' : '';
  return cfg.paths.some((p) => pathname.startsWith(p) || pathname + '/' === p || (index !== '' && index.startsWith(p)));
}

/**
 * handleFetch answers a fetch event when grits should: a GET or HEAD of
 * this origin under the configured paths, not grits' own endpoints. It
 * then calls event.respondWith and event.stopImmediatePropagation (so a
 * fetch listener added after this one, such as a router's, does not try
 * to answer too) and returns true; otherwise it returns false and leaves
 * the event to the app.
 * @param {FetchEvent} event
 * @returns {boolean}
 */
export function handleFetch(event) {
  const req = event.request;
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const url = new URL(req.url);
  const media = HOSTS.get(url.origin);
  if (media !== undefined) {
    // A media host's file (an <img>, crossorigin or not, a <video>'s
    // ranges, a fetch): answered from volunteers like the site's, with
    // the origin's answer (opaque for a no-cors request) as the fallback.
    event.stopImmediatePropagation();
    event.respondWith(serve(req, url, media));
    return true;
  }
  if (url.origin === ORIGIN && url.pathname === '/grits/v1/register.js' && req.method === 'GET') {
    event.stopImmediatePropagation();
    event.respondWith(registerScript(event));
    return true;
  }
  if (url.origin !== ORIGIN || url.pathname.startsWith('/grits/') || url.pathname === '/grits-sw.js') return false;
  // Outside the configured prefixes (an app's dynamic routes): the app's
  // worker, or the network, untouched.
  if (!inPaths(url.pathname)) return false;
  event.stopImmediatePropagation();
  if (req.mode === 'navigate' && !cfg.navigate) {
    // Pages come from the origin (it may be an app); their Grits-Root
    // header keeps the root fresh at no extra round trip. When the
    // origin is unreachable, the swarm serves the pages it holds, under
    // the newest valid root the volunteers offer.
    // The page is answered only once its root is taken: the requests for
    // its style sheets and scripts, which follow, then look up the files
    // under that root, never under the one before an import.
    const page = Promise.resolve(event.preloadResponse).then((pre) => pre || fetch(req));
    // While the page is on its way: connections to the volunteers.
    warmPeers();
    event.respondWith(page.then(async (resp) => {
      await noteRoot(resp);
      countOrigin(resp);
      aheadOfPage(event, resp, url);
      return resp;
    }, async (err) => {
      await rootFromVolunteers().catch(() => {});
      try {
        return await fromSwarm(req, url);
      } catch (err2) {
        if (err2 instanceof Proven) return planResponse(req, err2.plan);
        console.warn('grits: origin unreachable and the swarm cannot serve', url.pathname, err2.message);
        throw err;
      }
    }));
    return true;
  }
  if (req.mode === 'navigate') {
    // sw_navigate: the page from the swarm too, and what it names
    // fetched ahead as for the origin's pages; the root checked beside
    // it, and the page loaded again if the check brings a newer root.
    warmPeers();
    const start = Date.now();
    const page = serve(req, url).then((resp) => {
      aheadOfPage(event, resp, url);
      return resp;
    });
    event.respondWith(page);
    event.waitUntil(page.then((resp) => reloadIfNewer(event, resp, url, start)).catch(() => {}));
    return true;
  }
  event.respondWith(serve(req, url));
  return true;
}

// aheadOfPage starts, for a page about to be handed over (the origin's
// or the swarm's), what its own requests will want: a new tree's
// directories (an import since the last page), while the page parses,
// and the files the page names (warmPage), once per page and tree: a
// page already read under this tree has its files here, and reading it
// again would only pass its body through the worker's thread. Only
// fetches, each verified as any other: it changes no answer.
function aheadOfPage(event, resp, url) {
  if (!root) return;
  event.waitUntil(prefetchTree(root).catch(() => {}));
  // Only an HTML page is cloned: a clone keeps what the page has read
  // and it has not, until it is read or collected, so a clone of a video
  // opened as a page could hold much of it in memory for nothing.
  const type = (resp.headers.get('Content-Type') || '').toLowerCase();
  if (!resp.ok || resp.type === 'opaque' || !type.startsWith('text/html') || Number(resp.headers.get('Content-Length')) > PAGE_HTML_MAX) return;
  const seen = g.toHex(root.tree) + url.href;
  if (pagesWarmed.has(seen)) return;
  if (pagesWarmed.size >= 256) pagesWarmed.clear();
  pagesWarmed.add(seen);
  event.waitUntil(warmPage(resp.clone(), url).catch(() => {}));
}

// reloadIfNewer makes a page the worker served from its root as fresh
// as one from the origin. A navigation waits for the origin only when
// its word on the root is older than cfg.rootCheckMs (freshRoot), so a
// page can come from a root an import has just replaced; the root is
// checked beside the navigation instead (one conditional request, unless
// one was made since the navigation began), and if a newer root arrives
// within RELOAD_WINDOW_MS the page is loaded again under it, unless the
// page (register.js) answers that its user has begun to use it: typed
// text is never lost to a reload. Once per URL within RELOAD_EVERY_MS,
// so imports in a quick row cannot keep a page reloading. Only pages the
// worker verified from the tree: the origin's own pages are its latest.
const RELOAD_WINDOW_MS = 5000;
const RELOAD_EVERY_MS = 10_000;
const reloadedAt = new Map(); // page URL -> when it was last reloaded
async function reloadIfNewer(event, resp, url, start) {
  if (!resp.headers.has('X-Grits-Verified') || !root) return;
  const used = servedRoots.get(event.request);
  if (!used) return;
  if (rootCheckedAt < start) await checkRoot();
  if (!root || root.seq <= used.seq || Date.now() - start > RELOAD_WINDOW_MS) return;
  const last = reloadedAt.get(url.href);
  if (last !== undefined && Date.now() - last < RELOAD_EVERY_MS) return;
  if (reloadedAt.size >= 256) reloadedAt.clear();
  reloadedAt.set(url.href, Date.now());
  // The new document's client: get() waits until it is ready.
  const client = event.resultingClientId ? await sw.clients.get(event.resultingClientId) : undefined;
  if (!client || !('navigate' in client)) return;
  // A page with register.js decides (it keeps a page its user has begun
  // to use); one without it, or that does not answer in time, is loaded
  // again from here.
  const answer = await askPage(client, { type: 'grits-newer-root' }, ASK_PAGE_MS);
  if (answer && answer.reload === false) {
    stats.pagesKept++;
    return;
  }
  stats.pagesReloaded++;
  if (!answer) await /** @type {WindowClient} */ (client).navigate(client.url);
}

// askPage posts msg to a page and resolves with its answer, or null if
// none comes within ms (a page without register.js never answers; its
// messages also wait until the page has loaded).
const ASK_PAGE_MS = 2000;
function askPage(client, msg, ms) {
  return new Promise((resolve) => {
    const ch = new MessageChannel();
    const timer = setTimeout(() => { ch.port1.close(); resolve(null); }, ms);
    ch.port1.onmessage = (e) => {
      clearTimeout(timer);
      ch.port1.close();
      resolve(e.data && typeof e.data === 'object' ? e.data : null);
    };
    client.postMessage(msg, [ch.port2]);
  });
}

// ---- keeping the root fresh while pages stay open ----
//
// A page that never navigates (a single-page app) must still see new
// imports. Whenever the origin has said nothing for cfg.rootCheckMs (its
// pages and fallbacks carry its root in Grits-Root, which counts), the
// next request the worker serves first asks it: one conditional request
// (If-None-Match: the root's hash), a 304 without a body when nothing
// changed, waited for at most ROOT_CHECK_WAIT_MS. Volunteers' answers
// carry their root too: a newer one is taken at no cost at all.
const ROOT_CHECK_WAIT_MS = 1000;
let rootCheckedAt = 0; // when the origin last told us its root
let rootCheck = null; // the check in flight

function checkRoot() {
  if (!rootCheck) {
    rootCheckedAt = Date.now(); // one check an interval, answered or not
    rootCheck = (async () => {
      await restore();
      const headers = root ? { 'If-None-Match': `"${g.formatHash(root.hash)}"` } : {};
      stats.rootChecks++;
      const resp = await fetch('/grits/v1/root', { cache: 'no-store', headers, signal: AbortSignal.timeout(PEER_TIMEOUT_MS) });
      noteReportToken(resp);
      if (resp.status === 304) return;
      if (!resp.ok) throw new Error(`origin root: ${resp.status}`);
      await acceptRoot(new Uint8Array(await resp.arrayBuffer()));
    })().catch((err) => console.debug('grits: root check', err.message)).finally(() => { rootCheck = null; });
  }
  return rootCheck;
}

// freshRoot checks for a newer root if the origin's word is older than
// cfg.rootCheckMs. It never rejects.
async function freshRoot() {
  if (Date.now() - rootCheckedAt < cfg.rootCheckMs) return;
  let timer;
  await Promise.race([checkRoot(), new Promise((ok) => { timer = setTimeout(ok, ROOT_CHECK_WAIT_MS); })]);
  clearTimeout(timer);
}

// rootHeaderBytes decodes a Grits-Root header (unpadded base64url).
function rootHeaderBytes(h) {
  const b64 = h.replace(/-/g, '+').replace(/_/g, '/');
  return Uint8Array.from(atob(b64 + '='.repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0));
}

// noteVolunteerRoot takes a newer root a volunteer's answer carries
// (each one verified once; older and equal ones cost only decoding its
// 186 bytes). A root with a bad signature is a lie.
const rootsTried = new Set();
function noteVolunteerRoot(peer, resp) {
  const h = resp.headers.get('Grits-Root');
  if (!h || !root) return;
  let bytes;
  let r;
  try {
    bytes = rootHeaderBytes(h);
    r = g.decodeRoot(bytes);
  } catch (err) {
    drop(peer, '', `Grits-Root: ${err.message}`);
    return;
  }
  if (r.seq <= root.seq) return;
  const key = g.toHex(r.hash);
  if (rootsTried.has(key)) return;
  if (rootsTried.size > 64) rootsTried.clear();
  rootsTried.add(key);
  acceptRoot(bytes).then((got) => {
    if (g.bytesEqual(got.hash, r.hash)) stats.rootsFromVolunteers++;
  }, (err) => {
    if (err.code === 'bad_signature' || err.code === 'wrong_key' || err.code === 'malformed_root') drop(peer, '', `Grits-Root: ${err.message}`);
    else console.warn('grits: root from a volunteer refused', err.message);
  });
}

// While the origin is unreachable (a restart, an outage) it is no last
// resort: the swarm then asks benched volunteers too, after the healthy
// ones, rather than fail a request a volunteer benched a moment ago (say,
// during its own restart) could serve.
const ORIGIN_DOWN_MS = 30_000;
let originDownAt = -Infinity;
function originDown() { return Date.now() - originDownAt < ORIGIN_DOWN_MS; }

/**
 * serve answers a request for a file of the tree (prefix: a media host's
 * tree path, '' for the site) from the swarm, else from the network.
 * @param {Request} req
 * @param {URL} url
 * @param {string} [prefix]
 * @returns {Promise<Response>}
 */
async function serve(req, url, prefix = '') {
  let proven = null;
  try {
    return await fromSwarm(req, url, prefix);
  } catch (err) {
    // Not a file to serve, or the swarm could not serve it: the origin
    // answers (it may have an app for paths the tree lacks).
    if (err instanceof Proven) proven = err.plan;
    console.debug('grits: origin answers', url.pathname, String(err && err.message || err));
  }
  let resp;
  try {
    resp = await fetch(req);
  } catch (err) {
    // The origin is down: what the tree proves, the worker answers as
    // the origin would have (404, the directory's redirect); the rest
    // the swarm gets one more try, benched volunteers included.
    if (proven) return planResponse(req, proven);
    if (req.signal && req.signal.aborted) throw err;
    const first = !originDown();
    originDownAt = Date.now();
    if (!first) throw err;
    try {
      return await fromSwarm(req, url, prefix);
    } catch (err2) {
      if (err2 instanceof Proven) return planResponse(req, err2.plan);
      throw err;
    }
  }
  originDownAt = -Infinity;
  noteRoot(resp);
  countOrigin(resp);
  return resp;
}

function countOrigin(resp) {
  stats.requestsFromOrigin++;
  stats.bytesFromOrigin += Number(resp.headers.get('Content-Length')) || 0;
}

// noteRoot accepts the signed root an origin response carries, if newer;
// it resolves when done (never rejects).
async function noteRoot(resp) {
  noteReportToken(resp);
  const h = resp.headers.get('Grits-Root');
  if (!h) return;
  try {
    const bytes = rootHeaderBytes(h);
    await restore(); // the kept root first, so the comparison is with the newest known
    await acceptRoot(bytes);
    rootCheckedAt = Date.now();
  } catch (err) {
    console.warn('grits: root refused', err.message);
  }
}

// ---- state: root, volunteers, dropped volunteers ----

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

const loadJSON = async (name) => {
  const b = await loadState(name);
  try {
    return b ? JSON.parse(new TextDecoder().decode(b)) : null;
  } catch {
    return null;
  }
};

let restored = null;
function restore() {
  if (!restored) {
    restored = (async () => {
      const b = await loadState('root');
      if (b) {
        // Expired or not, the kept root is the newest ever accepted:
        // nothing older is taken after it (a volunteer's older root
        // that has not expired, with the origin down).
        try {
          const r = await g.verifyKeptRoot(b, SITE_KEY);
          if (!newest || r.seq > newest.seq) newest = r;
        } catch (err) {
          console.warn('grits: kept root refused', err.message);
        }
        await acceptRoot(b, false).catch(() => {});
      }
      const p = await loadJSON('peers');
      if (Array.isArray(p) && peersAt === 0) scores.setPeers(p);
      const d = await loadJSON('dropped');
      if (Array.isArray(d)) for (const u of d) scores.drop(u);
    })();
  }
  return restored;
}

// newest is the newest root ever accepted, kept across restarts even
// once it has expired (root, the one served from, is then newer or
// unset): every root taken must succeed it.
let newest = null;

async function acceptRoot(bytes, save = true) {
  // The root held, again (every origin answer carries it): nothing to check.
  if (root && g.bytesEqual(bytes, root.bytes)) return root;
  const r = await g.verifyRoot(g.decodeRoot(bytes), SITE_KEY, Date.now());
  const last = newest && (!root || newest.seq > root.seq) ? newest : root;
  if (last) {
    try {
      g.checkSuccessor(r, last);
    } catch (err) {
      if (err.code !== 'same_root') throw err;
      if (root && g.bytesEqual(root.hash, r.hash)) return root;
    }
  }
  root = r;
  if (!newest || r.seq > newest.seq) newest = r;
  if (save) saveState('root', r.bytes);
  return root;
}

const rootValid = () => root && BigInt(Math.floor(Date.now() / 1000)) < root.expires;

async function currentRoot() {
  await restore();
  if (rootValid()) {
    await freshRoot();
    return root;
  }
  if (!rootPromise) {
    rootPromise = (async () => {
      try {
        const resp = await fetch('/grits/v1/root', { cache: 'no-store' });
        noteReportToken(resp);
        if (!resp.ok) throw new Error(`origin root: ${resp.status}`);
        const r = await acceptRoot(new Uint8Array(await resp.arrayBuffer()));
        rootCheckedAt = Date.now();
        return r;
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
  await refreshPeers();
  const offers = await Promise.allSettled(scores.listed().map(async (peer) => {
    const resp = await fetch(`${peer}/grits/v1/root`, { mode: 'cors', cache: 'no-store', signal: AbortSignal.timeout(PEER_TIMEOUT_MS) });
    return g.verifyRoot(g.decodeRoot(await volunteerRootBody(peer, resp)), SITE_KEY, Date.now());
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

// volunteerRootBody reads a volunteer's answer to /grits/v1/root: a
// root record, ROOT_SIZE bytes; a longer body is a lie, not read.
async function volunteerRootBody(peer, resp) {
  if (!resp.ok) {
    resp.body?.cancel().catch(() => {});
    throw new Error(`root at ${peer}: ${resp.status}`);
  }
  try {
    return await readLimited(resp, g.ROOT_SIZE);
  } catch (err) {
    if (err instanceof BodyTooLarge) drop(peer, '', `root: ${err.message}`);
    throw err;
  }
}

// refreshPeers keeps the volunteer list (with the load each advertises)
// at most PEERS_TTL_MS old.
async function refreshPeers() {
  await restore();
  if (Date.now() - peersAt > PEERS_TTL_MS) {
    try {
      const resp = await fetch('/grits/v1/peers', { cache: 'no-store' });
      if (resp.ok) {
        const list = (await resp.json())
          .filter((p) => p && typeof p.url === 'string' && p.url.startsWith('https://'))
          .map((p) => ({ url: p.url.replace(/\/$/, ''), region: p.region, load: p.load }));
        scores.setPeers(list);
        peersAt = Date.now();
        saveState('peers', JSON.stringify(list));
      }
    } catch (err) {
      peersAt = Date.now() - PEERS_TTL_MS + 5000; // origin down: retry in 5 s, use the known list meanwhile
      console.warn('grits: peers', err.message);
    }
  }
}

// drop stops using a volunteer that sent data that failed verification,
// for good, and tells the origin once (a few reports a minute at most).
function drop(peer, hash, reason) {
  stats.verifyFailures++;
  if (!scores.drop(peer)) return;
  stats.droppedPeers++;
  console.warn('grits: dropping volunteer', peer, reason);
  saveState('dropped', JSON.stringify(scores.snapshot().filter((p) => p.dropped).map((p) => p.url)));
  report(peer, hash, reason);
}

// reportToken is the origin's proof of a recent visit (its pages and
// root answers carry one); the origin takes reports only with it.
let reportToken = '';

function noteReportToken(resp) {
  const t = resp.headers.get('Grits-Report-Token');
  if (t) reportToken = t;
}

// report tells the origin about a volunteer (POST /grits/v1/report), which
// the operator sees in gritsd status; at most a few a minute.
function report(peer, hash, reason) {
  if (!scores.mayReport()) return false;
  stats.reportsSent++;
  fetch('/grits/v1/report', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Grits-Report-Token': reportToken },
    body: JSON.stringify({ peer, hash: hash || '', reason: String(reason).slice(0, 200) }),
  }).catch(() => {});
  return true;
}

// ---- requests to volunteers ----

class StatusError extends Error {}

// peerGet fetches url from a volunteer and returns the body, at most
// limit bytes (more is a lie: the peer is dropped), all within
// PEER_TIMEOUT_MS, headers and body. It records into the peer's score
// the time to headers, the body's throughput and any failure. A
// request aborted by `signal` says nothing about the peer's failing,
// but a hedge it lost says it is slow: without its headers, its
// latency; after them, how fast its body was coming. page, if given,
// is the page's own signal: its abort says nothing at all. alive, if
// given (hedged's), is told of the headers: a peer that has answered is
// not hedged against for the time its body should take.
async function peerGet(peer, url, signal, page, limit, alive) {
  const timeout = AbortSignal.timeout(PEER_TIMEOUT_MS);
  const s = AbortSignal.any([signal, timeout]);
  const t0 = performance.now();
  let headersAt = 0;
  const progress = { bytes: 0 };
  try {
    const resp = await fetch(url, { mode: 'cors', cache: 'no-store', signal: s });
    const t1 = headersAt = performance.now();
    if (alive && resp.ok) {
      // The length a peer claims buys it no more time than the most the
      // answer may be.
      const n = Math.min(limit, Number(resp.headers.get('Content-Length')) || limit);
      alive(scores.hedgeBodyMs(n));
    }
    noteVolunteerRoot(peer, resp);
    if (!resp.ok) {
      scores.recordError(peer, 'status');
      resp.body?.cancel().catch(() => {});
      throw new StatusError(`${url}: ${resp.status}`);
    }
    scores.recordLatency(peer, t1 - t0);
    const data = await readLimited(resp, limit, progress);
    scores.recordThroughput(peer, data.length, performance.now() - t1);
    return data;
  } catch (err) {
    if (err instanceof StatusError) throw err;
    if (err instanceof BodyTooLarge) {
      drop(peer, '', `${url.slice(peer.length)}: ${err.message}`);
      throw err;
    }
    if (signal.aborted) {
      // A hedge won. If this peer had not even sent its headers, note it:
      // a volunteer that hangs loses every race and would otherwise
      // never be found out; one that drips its body, likewise.
      if (page && page.aborted) throw err;
      if (headersAt === 0) silent(peer, performance.now() - t0);
      else scores.recordPartial(peer, progress.bytes, performance.now() - headersAt);
      throw err;
    }
    if (timeout.aborted && headersAt > 0) {
      // Headers, then a body too slow to finish in time (a drip).
      scores.recordPartial(peer, progress.bytes, performance.now() - headersAt);
      scores.recordError(peer, 'slow');
      unresponsive(peer, `too slow: ${progress.bytes} bytes of body in ${Math.round(performance.now() - headersAt)} ms`);
      throw err;
    }
    scores.recordError(peer, timeout.aborted ? 'timeout' : 'network');
    unresponsive(peer, timeout.aborted ? `no answer in ${PEER_TIMEOUT_MS} ms` : `unreachable: ${err.message}`);
    throw err;
  }
}

// silent notes a request the peer lost without sending its headers (a
// hedge won, or a run gave up waiting): that is no fault, a healthy
// volunteer a little slower than another loses most races; it only
// demotes the peer (peers.js). Slow or hung? A probe for its 186-byte
// root, with the full per-peer deadline, tells: only a peer that cannot
// answer even that is benched and reported. At most one probe a peer
// every PROBE_EVERY_MS.
const PROBE_EVERY_MS = 30_000;
const probedAt = new Map();
function silent(peer, ms) {
  scores.recordSilent(peer, ms);
  const last = probedAt.get(peer);
  if (last !== undefined && Date.now() - last < PROBE_EVERY_MS) return;
  probedAt.set(peer, Date.now());
  const timeout = AbortSignal.timeout(PEER_TIMEOUT_MS);
  fetch(`${peer}/grits/v1/root`, { mode: 'cors', cache: 'no-store', signal: timeout }).then((resp) => {
    noteVolunteerRoot(peer, resp);
    return volunteerRootBody(peer, resp).catch(() => {});
  }, (err) => {
    scores.recordError(peer, timeout.aborted ? 'timeout' : 'network');
    unresponsive(peer, timeout.aborted ? `no answer in ${PEER_TIMEOUT_MS} ms` : `unreachable: ${err.message}`);
  }).catch(() => {});
}

// unresponsive tells the origin, once per volunteer in the worker's life
// and within the report rate limit, that a volunteer did not answer, so
// the operator sees it in gritsd status. Unlike bad data this does not
// drop the volunteer: the backoff in peers.js brings it back later.
const unresponsiveReported = new Set();
function unresponsive(peer, reason) {
  if (!unresponsiveReported.has(peer) && report(peer, '', reason)) unresponsiveReported.add(peer);
}

// swarm asks the volunteers ranked for key, hedged (peers.js), with
// attempt(peer, signal) fetching and verifying.
function swarm(key, attempt, signal) {
  const list = scores.rank(key, { withBenched: originDown() }).slice(0, MAX_PEERS_PER_REQUEST);
  if (list.length === 0) return Promise.reject(new Error('no volunteers'));
  return hedged(list, attempt, {
    delay: () => scores.hedgeDelay(),
    signal,
    onHedge: () => { stats.hedgesSent++; },
  });
}

function sitePath(url) {
  let p = decodeURIComponent(url.pathname);
  if (p.endsWith('/')) p += 'index.html';
  return p;
}

function memo(key, v) {
  if (lookups.size >= LOOKUP_CACHE_MAX) lookups.delete(lookups.keys().next().value);
  lookups.set(key, v);
}

// lookup resolves a path in the root's tree: from memory, else by
// walking the cached tree nodes (no round trip), else from volunteers,
// whose proof nodes (and inline data, as blocks) then go to the cache.
// Returns {v, net}: the verified lookup and whether the network was used.
// A lookup in flight is shared: a page's request for a file the worker
// is already looking up (warmPage) waits for that answer.
const pendingLookups = new Map(); // treeHex + path -> promise of {v, net}
function lookup(r, path) {
  const key = g.toHex(r.tree) + path;
  const hit = lookups.get(key);
  if (hit) return Promise.resolve({ v: hit, net: false }); // unchanged content: no round trip at all
  let p = pendingLookups.get(key);
  if (!p) {
    p = lookupOnce(r, path, key).finally(() => pendingLookups.delete(key));
    pendingLookups.set(key, p);
  }
  return p;
}

async function lookupOnce(r, path, key) {
  const local = await localLookup(r.tree, path, (h) => cache.get(h));
  if (local) {
    stats.localLookups++;
    memo(key, local);
    return { v: local, net: false };
  }
  await refreshPeers();
  const enc = path.split('/').map(encodeURIComponent).join('/');
  const v = await swarm(path, async (peer, signal, _i, alive) => {
    stats.lookupsSent++;
    const body = await peerGet(peer, `${peer}/grits/v1/lookup/${g.formatHash(r.tree)}${enc}`, signal, undefined, LOOKUP_BODY_MAX, alive);
    let result, v;
    try {
      result = g.decodeLookupFrame(body);
      v = await g.verifyLookup(result, { path, treeHash: r.tree, siteKey: SITE_KEY, now: Date.now() });
    } catch (err) {
      // A volunteer's own error frame (it lacks the tree) is not a lie.
      if (err instanceof g.GritsError && err.code !== 'remote' && err.code !== 'unsupported') drop(peer, '', `lookup ${path}: ${err.message}`);
      else scores.recordError(peer, 'status');
      throw err;
    }
    scores.recordSuccess(peer);
    // Every proof node hashed to its link: keep them by hash for local walks.
    for (const n of result.proof.nodes) cache.put(g.blake3(n), n);
    if (v.inline && v.node) {
      // checkInline matched each chunk to the file node's hash: blocks.
      const cs = v.node.chunkSize;
      v.node.hashes.forEach((h, i) => cache.put(h, v.inline.slice(i * cs, Math.min(v.inline.length, (i + 1) * cs))));
    }
    return v;
  });
  memo(key, v);
  return { v, net: true };
}

// blocksInFlight holds block()'s fetches under way: a second caller for
// the same block (a page's request for a file warmPage is fetching, or
// the other way round) waits for the first instead of fetching it again.
// If the first fails (its caller aborted, say), the second fetches itself.
const blocksInFlight = new Map(); // block hex -> promise of {data, source}

// block returns the bytes of block h, checked against h: from the cache,
// else from volunteers (hedged), else from the origin. {data, source}.
// size is the most the block can be (its exact size when known): a
// volunteer's body beyond it is a lie.
async function block(h, signal, keep = true, size = BLOCK_MAX) {
  const key = g.toHex(h);
  const ahead = blocksInFlight.get(key);
  if (ahead) {
    try {
      return await ahead;
    } catch (err) {
      if (signal && signal.aborted) throw err;
    }
  }
  const p = blockOnce(h, signal, keep, size);
  if (!blocksInFlight.has(key)) {
    blocksInFlight.set(key, p);
    p.catch(() => {}).finally(() => { if (blocksInFlight.get(key) === p) blocksInFlight.delete(key); });
  }
  return p;
}

async function blockOnce(h, signal, keep, size) {
  const cached = await cache.get(h);
  if (cached) return { data: cached, source: 'cache' };
  const hex = g.formatHash(h);
  await refreshPeers();
  let data;
  let source = 'volunteers';
  try {
    data = await swarm(hex, async (peer, s, _i, alive) => {
      stats.blocksSent++;
      const d = await peerGet(peer, `${peer}/grits/v1/block/${hex}`, s, signal, size, alive);
      if (!g.bytesEqual(g.blake3(d), h)) {
        drop(peer, hex, 'block does not match its hash');
        throw new Error(`block ${hex.slice(0, 15)} from ${peer} does not match its hash`);
      }
      scores.recordSuccess(peer);
      return d;
    }, signal);
  } catch (err) {
    if (signal && signal.aborted) throw err;
    // The origin is the last resort: no deadline. If it is unreachable,
    // the volunteers benched a moment ago get one more try.
    let resp;
    try {
      resp = await fetch(`${ORIGIN}/grits/v1/block/${hex}`, { signal });
      originDownAt = -Infinity;
    } catch (err2) {
      if ((signal && signal.aborted) || originDown()) throw err2;
      originDownAt = Date.now();
      return blockOnce(h, signal, keep, size); // not block(): that would wait for this very fetch
    }
    if (!resp.ok) throw new Error(`block ${hex.slice(0, 15)} at the origin: ${resp.status}`);
    data = new Uint8Array(await resp.arrayBuffer());
    if (!g.bytesEqual(g.blake3(data), h)) throw new Error(`block ${hex.slice(0, 15)} from the origin does not match its hash`);
    source = 'origin';
  }
  if (keep) cache.put(h, data);
  return { data, source };
}

// fetchRun gets a run of a file's consecutive chunks and returns one
// promise per chunk, resolving to {data, source} once that block is
// verified: blocks in the cache from there, the others in one request to
// the volunteer ranked first for the run, each checked as soon as its
// last byte arrives; whatever that request does not deliver verified
// (error, no headers in time, a stall, a short body, bad data) is fetched
// block by block (hedged, the origin last).
function fetchRun(run, signal, keep) {
  const out = run.map(() => {
    const d = { settled: false };
    d.promise = new Promise((resolve, reject) => {
      d.resolve = (v) => { d.settled = true; resolve(v); };
      d.reject = (e) => { d.settled = true; reject(e); };
    });
    return d;
  });
  (async () => {
    const cached = await Promise.all(run.map((c) => cache.get(c.hash)));
    const want = [];
    run.forEach((c, i) => {
      if (cached[i]) {
        out[i].resolve({ data: cached[i], source: 'cache' });
        return;
      }
      // Under way already (warmPage, another request): wait for that.
      const ahead = blocksInFlight.get(g.toHex(c.hash));
      if (ahead) ahead.then(out[i].resolve, () => block(c.hash, signal, keep, c.size).then(out[i].resolve, out[i].reject));
      else want.push(i);
    });
    if (want.length > 1) await runFromVolunteer(run, want, out, signal, keep);
    for (const i of want) {
      if (!out[i].settled) block(run[i].hash, signal, keep, run[i].size).then(out[i].resolve, out[i].reject);
    }
  })().catch((err) => out.forEach((d) => { if (!d.settled) d.reject(err); }));
  return out.map((d) => d.promise);
}

// runFromVolunteer asks one volunteer for the blocks want (indexes into
// run) with /grits/v1/blocks and resolves out[i] for each block that
// arrives and verifies. It never throws: what it leaves unsettled, the
// caller fetches block by block.
async function runFromVolunteer(run, want, out, signal, keep) {
  await refreshPeers();
  const hashes = want.map((i) => g.formatHash(run[i].hash));
  // Only a healthy peer gets a run: with every one benched (rank still
  // lists them), the blocks go one by one, each within PEER_TIMEOUT_MS.
  const peer = scores.rank(hashes[0]).find((p) => !scores.inBackoff(p));
  if (!peer || (signal && signal.aborted)) return;
  const ctl = new AbortController();
  const onAbort = () => ctl.abort();
  if (signal) signal.addEventListener('abort', onAbort);
  // No headers within twice the hedge delay: the blocks go one by one
  // (hedged) instead. After the headers, each block has a deadline
  // (bodyDeadlineMs at the slowest rate the worker accepts, from what
  // it measured): a body that drips or crawls ends there, however
  // steadily its bytes come; one that stalls for PEER_TIMEOUT_MS ends
  // sooner. Whatever is unfinished then goes to the next volunteers.
  let fired = ''; // which of our timers ended the request, if one did
  let timer = setTimeout(() => { fired = 'slow'; ctl.abort(); }, Math.min(PEER_TIMEOUT_MS, 2 * scores.hedgeDelay()));
  let due = Infinity; // when block want[k] must be complete
  const arm = () => {
    clearTimeout(timer);
    const left = due - performance.now();
    if (left < PEER_TIMEOUT_MS) timer = setTimeout(() => { fired = 'crawled'; ctl.abort(); }, Math.max(0, left));
    else timer = setTimeout(() => { fired = 'stalled'; ctl.abort(); }, PEER_TIMEOUT_MS);
  };
  const t0 = performance.now();
  let t1 = 0;
  let got = 0;
  let k = 0;
  let recv = 0; // bytes of body, the unfinished block's included
  let rate = 0;
  const total = want.reduce((n, i) => n + run[i].size, 0);
  try {
    stats.blocksSent += hashes.length;
    const resp = await fetch(`${peer}/grits/v1/blocks/${hashes.join(',')}`, { mode: 'cors', cache: 'no-store', signal: ctl.signal });
    t1 = performance.now();
    noteVolunteerRoot(peer, resp);
    if (!resp.ok) {
      scores.recordError(peer, 'status');
      resp.body?.cancel().catch(() => {});
      return;
    }
    scores.recordLatency(peer, t1 - t0);
    rate = scores.minThroughput();
    due = t1 + bodyDeadlineMs(run[want[0]].size, rate);
    arm();
    const reader = resp.body.getReader();
    let buf = new Uint8Array(run[want[0]].size);
    let fill = 0;
    while (k < want.length) {
      const { done, value } = await reader.read();
      if (done) break; // a short body: the rest is asked for elsewhere
      recv += value.length;
      let off = 0;
      while (off < value.length) {
        if (k === want.length) {
          drop(peer, '', 'blocks: more bytes than the blocks asked for');
          ctl.abort();
          return;
        }
        const take = Math.min(buf.length - fill, value.length - off);
        buf.set(value.subarray(off, off + take), fill);
        fill += take;
        off += take;
        if (fill < buf.length) continue;
        const c = run[want[k]];
        if (!g.bytesEqual(g.blake3(buf), c.hash)) {
          drop(peer, g.formatHash(c.hash), 'block does not match its hash');
          ctl.abort();
          return;
        }
        if (keep) cache.put(c.hash, buf);
        out[want[k]].resolve({ data: buf, source: 'volunteers' });
        got += buf.length;
        k++;
        if (k < want.length) {
          buf = new Uint8Array(run[want[k]].size);
          fill = 0;
          due = t1 + bodyDeadlineMs(got + buf.length, rate);
        }
      }
      arm();
    }
    scores.recordThroughput(peer, got, performance.now() - t1);
    if (k === want.length) scores.recordSuccess(peer);
  } catch (err) {
    if (signal && signal.aborted) return;
    if (fired === 'slow') {
      // No headers in time: like a hedge that lost, it says the peer is
      // slow; several in a row bench it.
      silent(peer, performance.now() - t0);
    } else if (fired === 'crawled') {
      // Bytes kept coming, too slowly to matter: the rate counts
      // against the peer and benches it like a timeout.
      scores.recordPartial(peer, recv, performance.now() - t1);
      scores.recordError(peer, 'slow');
      unresponsive(peer, `too slow: ${recv} of ${total} bytes in ${Math.round(performance.now() - t1)} ms (want ${Math.round(rate / 1024)} KiB/s)`);
    } else if (fired === 'stalled') {
      scores.recordError(peer, 'timeout');
      unresponsive(peer, `a body stalled for ${PEER_TIMEOUT_MS} ms`);
    } else {
      scores.recordError(peer, 'network');
      unresponsive(peer, `unreachable: ${err.message}`);
    }
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', onAbort);
  }
}

// served counts one response to the page: from the cache if no byte of
// it (lookup included) needed the network, else from the volunteers
// (the odd block the origin had to supply is counted as its bytes).
function served(net) {
  if (net) stats.requestsFromVolunteers++;
  else stats.requestsFromCache++;
}

function countBytes(source, n) {
  if (source === 'cache') stats.bytesFromCache += n;
  else if (source === 'origin') stats.bytesFromOrigin += n;
  else stats.bytesFromVolunteers += n;
}

// Proven is thrown by fromSwarm for a path the verified tree shows is no
// file to serve (absent, a directory, a symlink, a refused name); plan
// is the origin's answer for it (js/respond.js), given when the origin
// cannot be asked.
class Proven extends Error {
  constructor(message, plan) {
    super(message);
    this.plan = plan;
  }
}

// planResponse answers req with a plan; body defaults to the plan's
// literal parts (an error text), none for a plan without a body or HEAD.
function planResponse(req, plan, body) {
  if (req.method === 'HEAD') body = undefined;
  else if (body === undefined && plan.body.length > 0) body = concat(plan.body.map((b) => b.bytes));
  return new Response(body === undefined ? null : body, { status: plan.status, headers: plan.headers });
}

// fromSwarm answers a GET or HEAD for a site path from the tree, as the
// origin would (js/respond.js): Range (one, several, suffixes),
// If-None-Match, If-Range, ETag, Last-Modified, the stored type. A HEAD
// costs the lookup only.
const servedRoots = new WeakMap(); // request -> the root fromSwarm answered it under
async function fromSwarm(req, url, prefix = '') {
  const r = await currentRoot();
  servedRoots.set(req, r);
  // A media host serves files only (no index pages, no redirects), as
  // the origin does for it (gateway's serveMedia).
  if (prefix && url.pathname.endsWith('/')) throw new Proven(`${url.pathname}: a directory on a media host`, textError(404, '404 page not found'));
  const path = prefix + sitePath(url);
  let found;
  try {
    found = await lookup(r, path);
  } catch (err) {
    if (err instanceof g.GritsError && err.code === 'bad_name') throw new Proven(err.message, textError(400, 'bad request path'));
    throw err;
  }
  const { v, net: lookupNet } = found;
  if (v.status !== 'found' || v.entry.kind !== 'file') {
    const dir = !prefix && v.status === 'found' && v.entry.kind === 'dir' && !url.pathname.endsWith('/');
    throw new Proven(`${path}: ${v.status} ${v.entry ? v.entry.kind : ''}`, planNotFile(dir ? 'dir-no-slash' : 'absent', url.pathname, url.search));
  }
  const f = v.node;
  const size = f.size;
  // The type the tree stores (decided at import), as the origin sends it.
  const name = path.slice(path.lastIndexOf('/') + 1);
  const mtime = v.entry.mtimeNs;
  const type = serveType(v.entry.type, name);
  const track = { net: lookupNet };
  let etag = `"${g.formatHash(v.entry.hash)}"`;
  // inject_sw_tree: an HTML page with the registration script, as the
  // origin serves it (gateway/site.go): its own ETag, its own length,
  // ranges of those bytes. HEAD and 304 too need the page for them.
  let page = v.inline;
  if (INJECT && size <= INJECT_MAX && type.startsWith('text/html')) {
    const stored = await wholeFile(f, v.inline, track);
    page = injectHTML(stored, INJECT);
    if (page.length !== stored.length) etag = `"${g.formatHash(v.entry.hash)}+sw"`;
  }
  const plan = planFile({
    method: req.method, range: req.headers.get('Range'), ifRange: req.headers.get('If-Range'), ifNoneMatch: req.headers.get('If-None-Match'),
  }, {
    size: page ? page.length : size, etag, type,
    lastModified: mtime === null ? '' : httpDate(Number(mtime / 1_000_000n)),
  });
  plan.headers['X-Grits-Verified'] = g.formatHash(v.entry.hash);
  const ranges = plan.body.filter((b) => !b.bytes);
  if (ranges.length === 0) {
    // HEAD, 304, 416, an empty file: nothing to fetch.
    served(track.net);
    return planResponse(req, plan);
  }
  if (page) {
    const parts = plan.body.map((b) => b.bytes || page.subarray(b.start, b.start + b.length));
    countBytes(v.inline || track.net ? 'volunteers' : 'cache', ranges.reduce((n, b) => n + b.length, 0));
    served(v.inline ? true : track.net);
    return planResponse(req, plan, concat(parts));
  }
  // Every range's chunk list first (index nodes of very large files are
  // fetched here): a failure now still lets the origin answer.
  const lists = await Promise.all(ranges.map((b) => g.listChunks(f, b.start, b.length, async (h) => {
    const got = await block(h);
    if (got.source !== 'cache') track.net = true;
    return got.data;
  })));
  // Every block in the worker's memory (a page seen moments ago, or
  // fetched ahead by warmPage): the answer in one piece, no stream.
  const mem = lists.map((cs) => cs.map((c) => cache.hot.get(g.toHex(c.hash))));
  if (mem.every((bs) => bs.every((b) => b !== undefined))) {
    let k = 0;
    const parts = plan.body.map((b) => {
      if (b.bytes) return b.bytes;
      const cs = lists[k];
      const bs = mem[k++];
      const end = b.start + b.length;
      return concat(cs.map((c, i) => bs[i].subarray(Math.max(b.start, c.offset) - c.offset, Math.min(end, c.offset + c.size) - c.offset)));
    });
    countBytes('cache', ranges.reduce((n, b) => n + b.length, 0));
    served(track.net);
    return planResponse(req, plan, concat(parts));
  }
  const abort = new AbortController();
  // Blocks of big files (long videos, archives) are not kept: writing
  // them to Cache Storage costs more than fetching them, and they would
  // push a site's pages and pictures out of the cache.
  const keep = size <= CACHE_FILE_MAX;
  const parts = (async function* () {
    let k = 0;
    for (const b of plan.body) {
      if (b.bytes) {
        yield b.bytes;
        continue;
      }
      yield* fileRange(lists[k++], b.start, b.start + b.length, abort.signal, keep, track);
    }
  })();
  const body = new ReadableStream({
    async pull(ctrl) {
      const { done, value } = await parts.next();
      if (done) {
        served(track.net);
        ctrl.close();
        return;
      }
      ctrl.enqueue(value);
    },
    cancel() {
      abort.abort();
      parts.return();
    },
  }, { highWaterMark: 0 });
  return planResponse(req, plan, body);
}

// wholeFile is a small file's bytes, every block verified (the cache's
// or fetched in parallel); track.net is set if any came over the network.
async function wholeFile(f, inline, track) {
  if (inline) return inline;
  const get = async (h, size) => {
    const got = await block(h, undefined, true, size);
    if (got.source !== 'cache') track.net = true;
    return got.data;
  };
  const cs = await g.listChunks(f, 0, f.size, (h) => get(h));
  return concat(await Promise.all(cs.map((c) => get(c.hash, c.size))));
}

// fileRange yields bytes [start, end) of a file, given the chunks that
// cover them, each chunk verified before a byte of it is given out:
// runs of blocks from volunteers, at most PREFETCH blocks ahead of what
// has been read.
async function* fileRange(chunks, start, end, signal, keep, track) {
  let next = 0;
  const inflight = [];
  const fill = () => {
    while (inflight.length < PREFETCH && next < chunks.length) {
      const run = chunks.slice(next, next + RUN_BLOCKS);
      next += run.length;
      fetchRun(run, signal, keep).forEach((p, i) => {
        const q = p.then((b) => ({ c: run[i], ...b }));
        q.catch(() => {}); // rejections surface below; this one may never be awaited
        inflight.push(q);
      });
    }
  };
  fill();
  while (inflight.length > 0) {
    const { c, data, source } = await inflight.shift();
    const from = Math.max(start, c.offset) - c.offset;
    const to = Math.min(end, c.offset + c.size) - c.offset;
    if (source !== 'cache') track.net = true;
    countBytes(source, to - from);
    yield data.subarray(from, to);
    fill();
  }
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
