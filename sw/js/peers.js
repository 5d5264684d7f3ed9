// Volunteer scoring and hedged requests for the grits service worker.
//
// Pure module: no browser APIs, the clock and timers are injected, so
// Node tests drive it with a fake clock (sw/test/peers.test.js).
//
// What is measured, per volunteer:
//   latency     EWMA of the time to response headers, ms
//   throughput  EWMA of body bytes/s, only from bodies big enough for
//               the transfer time to mean something (MIN_THROUGHPUT_BYTES),
//               and from bodies abandoned midway (recordPartial)
//   errors      EWMA of failures (1) and successes (0) that also decays
//               with time (half-life ERROR_HALF_LIFE_MS), so an old
//               failure is forgiven even if the peer is not asked again
//   backoff     a timeout or network error benches the peer for
//               BACKOFF_BASE_MS, doubling on each failure in a row up to
//               BACKOFF_MAX_MS; a success ends the streak
//   slow        a body that came slower than the worker accepts
//               (minThroughput) benches the peer the same way, but only
//               a big body delivered in time ends that streak: a peer
//               that answers small requests fast and throttles big ones
//               stays benched
//   silent      a hedge the peer lost without sending even its headers
//               raises its latency average (the wait is a lower bound of
//               it), so a slow peer is demoted; it is no fault: whether
//               the peer hangs, the worker asks a probe (grits-sw.js)
//   load        what the peer advertises in /grits/v1/peers, 0..100
//   dropped     it sent bad data: never asked again
//
// Ranking (rank): rendezvous hashing of (peer, key) over the healthy set
// (not dropped, not in backoff), so a block or path keeps going to the
// same volunteer and finds its cache warm. Scores only demote peers that
// are clearly bad (cost several times the median and well above it in
// absolute terms): among similar peers the order is pure rendezvous, so a
// few milliseconds of jitter never reshuffle who serves what.
//
// Hedging (hedged): ask the first-ranked peer; if it has not sent its
// headers after hedgeDelay() (the recent p95 latency, clamped), or then
// not its body in the time the body should take (hedgeBodyMs), ask the
// next one too; whichever answers first with data that verifies wins
// and the other is aborted. A failed attempt starts the next candidate
// at once.

import { blake3 } from './blake3.js';

export const EWMA_ALPHA = 0.3;
export const MIN_THROUGHPUT_BYTES = 64 << 10;
export const ERROR_HALF_LIFE_MS = 60_000;
export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_MAX_MS = 60_000;
export const LATENCY_SAMPLES = 64;
export const MIN_SAMPLES_FOR_P95 = 5;
export const HEDGE_DEFAULT_MS = 300; // before enough samples
export const HEDGE_FLOOR_MS = 50;
export const HEDGE_RATE_DEFAULT = 1 << 20; // bytes/s a body is expected at, before any sample
export const HEDGE_CEILING_MS = 2500; // below the per-peer timeout (3 s)
// A peer is "clearly bad" when its cost is above BAD_FACTOR times the
// median cost and more than BAD_MARGIN_MS above it, or when most of its
// recent requests failed.
export const BAD_FACTOR = 3;
export const BAD_MARGIN_MS = 150;
export const BAD_ERROR_RATE = 0.5;
// Cost is the expected time to fetch a REF_BLOCK_BYTES block.
export const REF_BLOCK_BYTES = 256 << 10;
export const UNKNOWN_LATENCY_MS = 200;
// Bodies: after its headers, a volunteer must deliver a body of n bytes
// within BODY_GRACE_MS + n / minThroughput() (bodyDeadlineMs): the
// slowest rate accepted is the median measured throughput divided by
// SLOW_FACTOR, within [MIN_RATE_FLOOR, MIN_RATE_CEILING] bytes/s (the
// floor before anything is measured). A volunteer that drips or
// throttles its bodies then costs a page seconds, not forever.
export const BODY_GRACE_MS = 3000;
export const SLOW_FACTOR = 8;
export const MIN_RATE_FLOOR = 64 << 10;
export const MIN_RATE_CEILING = 512 << 10;
// A body abandoned after at least PARTIAL_MIN_MS says how fast it was
// coming (recordPartial); a shorter one says nothing.
export const PARTIAL_MIN_MS = 250;
// Reports to the origin: at most REPORT_MAX per REPORT_WINDOW_MS.
export const REPORT_MAX = 5;
export const REPORT_WINDOW_MS = 60_000;

const enc = new TextEncoder();

function ewma(old, sample, alpha = EWMA_ALPHA) {
  return old == null ? sample : old + alpha * (sample - old);
}

function median(xs) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** rendezvousWeight is a peer's deterministic pseudo-random weight for a key, in [0, 2^48). */
export function rendezvousWeight(peer, key) {
  const h = blake3(enc.encode(peer + '\n' + key));
  // 48 bits fit a Number exactly.
  return ((h[0] * 256 + h[1]) * 256 + h[2]) * 16777216 + ((h[3] * 256 + h[4]) * 256 + h[5]);
}

export class PeerScores {
  /** @param {{now?: () => number}} opts */
  constructor(opts = {}) {
    this.now = opts.now || (() => Date.now());
    this.peers = new Map(); // url -> stats
    this.samples = []; // ring buffer of recent latencies, all peers
    this.sampleAt = 0;
    this.reports = []; // times of recent reports
  }

  stats(url) {
    let s = this.peers.get(url);
    if (!s) {
      s = { url, listed: true, load: 0, region: '', latency: null, throughput: null, err: 0, errAt: 0, streak: 0, backoffUntil: 0, slowStreak: 0, slowUntil: 0, dropped: false, ok: 0, fail: 0 };
      this.peers.set(url, s);
    }
    return s;
  }

  /**
   * setPeers takes the origin's current volunteer list ([{url, region?,
   * load?}] or URLs). Peers no longer listed are not asked, but their
   * scores (and a drop) are remembered should they come back.
   */
  setPeers(list) {
    for (const s of this.peers.values()) s.listed = false;
    for (const p of list) {
      const o = typeof p === 'string' ? { url: p } : p;
      const s = this.stats(o.url);
      s.listed = true;
      const load = Number(o.load);
      s.load = Number.isFinite(load) ? Math.min(100, Math.max(0, load)) : 0;
      s.region = typeof o.region === 'string' ? o.region : '';
    }
  }

  /** listed is every listed peer that was not dropped. */
  listed() {
    return [...this.peers.values()].filter((s) => s.listed && !s.dropped).map((s) => s.url);
  }

  inBackoff(url) {
    const s = this.peers.get(url);
    return !!s && this.now() < s.backoffUntil;
  }

  isDropped(url) {
    const s = this.peers.get(url);
    return !!s && s.dropped;
  }

  /** healthy is the listed peers neither dropped nor in backoff. */
  healthy() {
    const t = this.now();
    return [...this.peers.values()].filter((s) => s.listed && !s.dropped && t >= s.backoffUntil).map((s) => s.url);
  }

  /** recordLatency notes the time to response headers of a request that got an answer. */
  recordLatency(url, ms) {
    if (!(ms >= 0)) return;
    const s = this.stats(url);
    s.latency = ewma(s.latency, ms);
    if (this.samples.length < LATENCY_SAMPLES) this.samples.push(ms);
    else this.samples[this.sampleAt] = ms;
    this.sampleAt = (this.sampleAt + 1) % LATENCY_SAMPLES;
  }

  /**
   * recordSilent: a request to the peer was abandoned (a hedge won) after
   * ms without response headers. The wait is a lower bound of its
   * latency, so it raises the peer's latency average (not the shared
   * p95). Losing a race is not a failure: a healthy peer that is a
   * little slower than another loses most of them.
   */
  recordSilent(url, ms) {
    const s = this.stats(url);
    if (ms >= 0 && s.latency != null && ms > s.latency) s.latency = ewma(s.latency, ms);
    else if (ms >= 0 && s.latency == null) s.latency = ms;
  }

  /** recordThroughput notes a body's transfer (after the headers); small bodies say nothing and are ignored. */
  recordThroughput(url, bytes, ms) {
    if (bytes < MIN_THROUGHPUT_BYTES) return false;
    const s = this.stats(url);
    s.throughput = ewma(s.throughput, bytes / (Math.max(ms, 1) / 1000));
    s.slowStreak = 0;
    return true;
  }

  /**
   * recordPartial: a body was abandoned (a hedge won after this peer's
   * headers had come) with bytes received in ms: how fast it was coming
   * is a throughput sample whatever its size, so a volunteer that drips
   * loses its rank even when hedges always save the page.
   */
  recordPartial(url, bytes, ms) {
    if (!(ms >= PARTIAL_MIN_MS) || !(bytes >= 0)) return false;
    const s = this.stats(url);
    s.throughput = ewma(s.throughput, bytes / (ms / 1000));
    return true;
  }

  /**
   * minThroughput is the slowest body rate, bytes/s, the worker waits
   * for: the listed peers' median throughput / SLOW_FACTOR, clamped to
   * [MIN_RATE_FLOOR, MIN_RATE_CEILING].
   */
  minThroughput() {
    const m = this.medians().throughput;
    if (m == null) return MIN_RATE_FLOOR;
    return Math.min(MIN_RATE_CEILING, Math.max(MIN_RATE_FLOOR, m / SLOW_FACTOR));
  }

  // errRate is the error EWMA decayed by the time since it last changed.
  errRate(url) {
    const s = this.peers.get(url);
    if (!s || s.err === 0) return 0;
    return s.err * 0.5 ** ((this.now() - s.errAt) / ERROR_HALF_LIFE_MS);
  }

  /** recordSuccess: the peer answered with data that verified. */
  recordSuccess(url) {
    const s = this.stats(url);
    s.err = ewma(this.errRate(url), 0);
    s.errAt = this.now();
    s.streak = 0;
    s.backoffUntil = s.slowUntil;
    s.ok++;
  }

  /**
   * recordError: the request failed. kind 'timeout' or 'network' (no
   * answer at all) also benches the peer, for longer on each failure in
   * a row; 'slow' (a body slower than minThroughput) too, on its own
   * streak that only a big body in time ends; 'status' (an HTTP error)
   * only counts against its score.
   * An aborted request (a hedge that lost) is not an error: do not call.
   */
  recordError(url, kind = 'network') {
    const s = this.stats(url);
    s.err = ewma(this.errRate(url), 1);
    s.errAt = this.now();
    s.fail++;
    if (kind === 'timeout' || kind === 'network') {
      s.streak++;
      s.backoffUntil = Math.max(s.slowUntil, this.now() + Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (s.streak - 1)));
    } else if (kind === 'slow') {
      s.slowStreak++;
      s.slowUntil = this.now() + Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (s.slowStreak - 1));
      s.backoffUntil = Math.max(s.backoffUntil, s.slowUntil);
    }
  }

  /** drop stops asking a peer that sent bad data; true the first time only. */
  drop(url) {
    const s = this.stats(url);
    if (s.dropped) return false;
    s.dropped = true;
    return true;
  }

  /** mayReport says whether a report may go to the origin now (at most REPORT_MAX a minute), and counts it. */
  mayReport() {
    const t = this.now();
    this.reports = this.reports.filter((x) => t - x < REPORT_WINDOW_MS);
    if (this.reports.length >= REPORT_MAX) return false;
    this.reports.push(t);
    return true;
  }

  /**
   * cost is the expected time, ms, to fetch a REF_BLOCK_BYTES block from
   * a peer: latency plus transfer time, inflated by its error rate and
   * advertised load. Unknown latency or throughput is taken as the
   * median of the peers that have one (or a neutral default), so a new
   * peer is neither favoured nor shunned.
   */
  cost(url, medians = this.medians()) {
    const s = this.peers.get(url) || { latency: null, throughput: null, load: 0 };
    const lat = s.latency ?? medians.latency ?? UNKNOWN_LATENCY_MS;
    const tp = s.throughput ?? medians.throughput;
    const transfer = tp ? (REF_BLOCK_BYTES / tp) * 1000 : 0;
    return (lat + transfer) * (1 + 3 * this.errRate(url)) * (1 + s.load / 100);
  }

  medians() {
    const vs = [...this.peers.values()].filter((s) => s.listed && !s.dropped);
    return {
      latency: median(vs.filter((s) => s.latency != null).map((s) => s.latency)),
      throughput: median(vs.filter((s) => s.throughput != null).map((s) => s.throughput)),
    };
  }

  /** clearlyBad lists the peers of a set that ranking demotes. */
  clearlyBad(urls) {
    const m = this.medians();
    const costs = new Map(urls.map((u) => [u, this.cost(u, m)]));
    const med = median([...costs.values()]);
    return new Set(urls.filter((u) => this.errRate(u) >= BAD_ERROR_RATE ||
      (costs.get(u) > BAD_FACTOR * med && costs.get(u) - med > BAD_MARGIN_MS)));
  }

  /**
   * rank orders the healthy peers for a key: rendezvous order, with the
   * clearly bad ones after the rest (cheapest first among them). If no
   * peer is healthy, the benched ones follow (soonest back first) rather
   * than nothing: with the origin down they are all there is. With
   * withBenched the benched ones follow the healthy ones anyway: the
   * caller has no origin to fall back on (it is unreachable), so a peer
   * that failed a moment ago is still a better bet than failing.
   * @param {string} key
   * @param {{withBenched?: boolean}} [opts]
   */
  rank(key, opts = {}) {
    const healthy = this.healthy();
    const bad = this.clearlyBad(healthy);
    const byHash = (list) => list.map((u) => ({ u, w: rendezvousWeight(u, key) })).sort((a, b) => b.w - a.w || (a.u < b.u ? -1 : 1)).map((x) => x.u);
    const m = this.medians();
    const good = byHash(healthy.filter((u) => !bad.has(u)));
    const worse = [...bad].sort((a, b) => this.cost(a, m) - this.cost(b, m));
    const t = this.now();
    const benched = [...this.peers.values()].filter((s) => s.listed && !s.dropped && t < s.backoffUntil)
      .sort((a, b) => a.backoffUntil - b.backoffUntil).map((s) => s.url);
    if (healthy.length === 0) return benched;
    const ranked = good.concat(worse);
    return opts.withBenched ? ranked.concat(benched) : ranked;
  }

  /** p95 of the recent latencies (all peers), or null with too few samples. */
  p95() {
    if (this.samples.length < MIN_SAMPLES_FOR_P95) return null;
    const s = [...this.samples].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)];
  }

  /** hedgeDelay is how long to wait for a peer before asking the next one as well. */
  hedgeDelay() {
    const p = this.p95();
    if (p == null) return HEDGE_DEFAULT_MS;
    return Math.min(HEDGE_CEILING_MS, Math.max(HEDGE_FLOOR_MS, p));
  }

  /**
   * hedgeBodyMs is how long a body of n bytes may take, once its headers
   * are in, before a hedge is worth it: the hedge delay plus its transfer
   * at half the listed peers' median throughput (HEDGE_RATE_DEFAULT
   * before any sample), at most HEDGE_CEILING_MS. A body that comes in
   * good time is not fetched twice; one that drips is hedged as a silent
   * peer would be.
   * @param {number} n
   */
  hedgeBodyMs(n) {
    const m = this.medians().throughput;
    const rate = Math.max(MIN_RATE_FLOOR, m == null ? HEDGE_RATE_DEFAULT : m / 2);
    return Math.min(HEDGE_CEILING_MS, this.hedgeDelay() + (Math.max(0, n) * 1000) / rate);
  }

  /** snapshot is a JSON-able view of the scores (for stats). */
  snapshot() {
    const m = this.medians();
    return [...this.peers.values()].map((s) => ({
      url: s.url, listed: s.listed, dropped: s.dropped, load: s.load,
      latency: s.latency == null ? null : Math.round(s.latency),
      throughput: s.throughput == null ? null : Math.round(s.throughput),
      errors: Number(this.errRate(s.url).toFixed(3)), backoff: this.inBackoff(s.url),
      cost: Math.round(this.cost(s.url, m)), ok: s.ok, fail: s.fail,
    }));
  }
}

/**
 * bodyDeadlineMs is how long after its headers a body may take to bring
 * its first `bytes` bytes at `rate` bytes/s (PeerScores.minThroughput).
 * @param {number} bytes
 * @param {number} rate
 */
export function bodyDeadlineMs(bytes, rate) {
  return BODY_GRACE_MS + (bytes * 1000) / Math.max(1, rate);
}

/** BodyTooLarge is a body that went past the size its request allows: a lie. */
export class BodyTooLarge extends Error {
  constructor(limit) {
    super(`body larger than ${limit} bytes`);
    this.name = 'BodyTooLarge';
    this.limit = limit;
  }
}

/**
 * readLimited reads a response's body (decompressed, as the platform
 * delivers it) and stops at the first byte past `limit`: the body is
 * cancelled and BodyTooLarge thrown, so a small compressed body cannot
 * grow into gigabytes in memory. progress.bytes, if given, counts what
 * arrived so far (for a body abandoned midway).
 * @param {Response} resp
 * @param {number} limit
 * @param {{bytes: number}} [progress]
 * @returns {Promise<Uint8Array<ArrayBuffer>>}
 */
export async function readLimited(resp, limit, progress = { bytes: 0 }) {
  if (!resp.body) return new Uint8Array(0);
  const reader = resp.body.getReader();
  /** @type {Uint8Array[]} */
  const parts = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    progress.bytes = n;
    if (n > limit) {
      reader.cancel().catch(() => {});
      throw new BodyTooLarge(limit);
    }
    parts.push(value);
  }
  if (parts.length === 1 && parts[0].byteOffset === 0 && parts[0].byteLength === parts[0].buffer.byteLength) {
    return /** @type {Uint8Array<ArrayBuffer>} */ (parts[0]);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * hedged runs attempt(candidate, signal) over candidates: the first at
 * once; the next when `delay` ms pass with fewer than `parallel`
 * attempts in flight and none answered, or at once when one fails. The
 * first attempt to resolve wins; the others are aborted (their signal
 * fires) and their outcomes ignored. attempt must resolve only with a
 * verified value and throw otherwise. If every candidate fails, hedged
 * rejects with the last error.
 *
 * A peer that has answered is not hedged against for the time its
 * body should take: attempt's fourth argument, alive(ms), re-arms the
 * timer to fire ms from now (call it on the headers, with the delay
 * plus the body's expected time). A second request started while the
 * first one's body is arriving in good time would only fetch it twice.
 *
 * opts: delay (ms, or a function returning it), parallel (default 2),
 * signal (aborts everything), setTimeout/clearTimeout (injectable),
 * onHedge(candidate) when a candidate is started by the timer rather
 * than by a failure.
 */
export function hedged(candidates, attempt, opts = {}) {
  const parallel = opts.parallel || 2;
  const setT = opts.setTimeout || ((f, ms) => setTimeout(f, ms));
  const clearT = opts.clearTimeout || ((t) => clearTimeout(t));
  const delayOf = () => (typeof opts.delay === 'function' ? opts.delay() : opts.delay ?? HEDGE_DEFAULT_MS);
  return new Promise((resolve, reject) => {
    if (candidates.length === 0) {
      reject(new Error('no candidates'));
      return;
    }
    const ctrls = [];
    let next = 0;
    let inflight = 0;
    let done = false;
    let timer = null;
    let lastErr = null;
    const finish = (ok, v, winner = -1) => {
      if (done) return;
      done = true;
      if (timer !== null) clearT(timer);
      ctrls.forEach((c, i) => { if (i !== winner) c.abort(); });
      if (opts.signal) opts.signal.removeEventListener('abort', onAbort);
      if (ok) resolve(v);
      else reject(v);
    };
    const onAbort = () => finish(false, opts.signal.reason || new Error('aborted'));
    if (opts.signal) {
      if (opts.signal.aborted) {
        onAbort();
        return;
      }
      opts.signal.addEventListener('abort', onAbort);
    }
    const arm = (ms) => {
      if (timer !== null) clearT(timer);
      timer = null;
      if (done || next >= candidates.length || inflight >= parallel) return;
      timer = setT(() => {
        timer = null;
        if (done) return;
        if (opts.onHedge) opts.onHedge(candidates[next]);
        start();
      }, ms ?? delayOf());
    };
    const start = () => {
      const i = next++;
      const c = new AbortController();
      ctrls.push(c);
      inflight++;
      const alive = (ms) => {
        if (!done && !c.signal.aborted) arm(ms);
      };
      let p;
      try {
        p = Promise.resolve(attempt(candidates[i], c.signal, i, alive));
      } catch (err) {
        p = Promise.reject(err);
      }
      p.then((v) => finish(true, v, i), (err) => {
        inflight--;
        if (done) return;
        lastErr = err;
        if (next < candidates.length) start();
        else if (inflight === 0) finish(false, lastErr);
        else arm();
      });
      arm();
    };
    start();
  });
}
