// Volunteer scoring, ranking and hedging (sw/js/peers.js), driven by a
// fake clock and fake timers.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  PeerScores, hedged, rendezvousWeight,
  BACKOFF_BASE_MS, BACKOFF_MAX_MS, HEDGE_FLOOR_MS, HEDGE_CEILING_MS, HEDGE_DEFAULT_MS, ERROR_HALF_LIFE_MS,
  LATENCY_SAMPLES, REPORT_MAX, REPORT_WINDOW_MS, HEDGE_RATE_DEFAULT,
} from '../js/peers.js';

function clock(t = 1_000_000) {
  const c = { t, now: () => c.t };
  return c;
}

const A = 'https://a.example';
const B = 'https://b.example';
const C = 'https://c.example';
const D = 'https://d.example';

function scored(peers = [A, B, C, D]) {
  const c = clock();
  const s = new PeerScores({ now: c.now });
  s.setPeers(peers.map((url) => ({ url, load: 0 })));
  return { c, s };
}

// keyFirst finds a key whose rendezvous winner among urls is `want`.
function keyFirst(urls, want) {
  for (let i = 0; ; i++) {
    const k = `/k${i}`;
    const top = [...urls].sort((x, y) => rendezvousWeight(y, k) - rendezvousWeight(x, k))[0];
    if (top === want) return k;
  }
}

test('rank with no history is pure rendezvous order, stable per key, spread over keys', () => {
  const { s } = scored();
  const firsts = new Map();
  for (let i = 0; i < 400; i++) {
    const k = `/file-${i}`;
    const r = s.rank(k);
    assert.deepEqual(r, s.rank(k), 'same key, same order');
    assert.deepEqual([...r].sort(), [A, B, C, D].sort());
    const want = [A, B, C, D].sort((x, y) => rendezvousWeight(y, k) - rendezvousWeight(x, k));
    assert.deepEqual(r, want);
    firsts.set(r[0], (firsts.get(r[0]) || 0) + 1);
  }
  for (const p of [A, B, C, D]) assert.ok(firsts.get(p) > 50, `${p} first for ${firsts.get(p)} of 400 keys`);
});

test('similar peers keep rendezvous order; a clearly slow one goes last', () => {
  const { s } = scored();
  const k = keyFirst([A, B, C, D], A);
  const before = s.rank(k);
  // Jitter between similar peers changes nothing.
  for (const [p, ms] of [[A, 40], [B, 25], [C, 30], [D, 35]]) for (let i = 0; i < 5; i++) s.recordLatency(p, ms);
  assert.deepEqual(s.rank(k), before);
  assert.equal(s.rank(k)[0], A, 'the slowest of similar peers still gets its keys');
  // A is now clearly bad: ten times the others and far above them.
  for (let i = 0; i < 10; i++) s.recordLatency(A, 800);
  const after = s.rank(k);
  assert.equal(after[after.length - 1], A);
  assert.deepEqual(after.slice(0, 3), before.filter((p) => p !== A), 'the rest keep their order');
  assert.deepEqual([...s.clearlyBad(s.healthy())], [A]);
});

test('a small absolute difference is not clearly bad even if relatively large', () => {
  const { s } = scored([A, B]);
  for (let i = 0; i < 10; i++) {
    s.recordLatency(A, 2);
    s.recordLatency(B, 30); // 15x, but only 28 ms
  }
  assert.equal(s.clearlyBad(s.healthy()).size, 0);
});

test('throughput: only big bodies count; a slow pipe is demoted', () => {
  const { s } = scored([A, B, C]);
  assert.equal(s.recordThroughput(A, 1000, 1), false, 'a small body says nothing');
  assert.equal(s.peers.get(A).throughput, null);
  for (let i = 0; i < 5; i++) {
    for (const p of [A, B, C]) s.recordLatency(p, 20);
    s.recordThroughput(A, 1 << 20, 10_000); // 100 KiB/s: 2.5 s per 256 KiB
    s.recordThroughput(B, 1 << 20, 50); // 20 MiB/s
    s.recordThroughput(C, 1 << 20, 60);
  }
  assert.ok(Math.abs(s.peers.get(B).throughput - (1 << 20) / 0.05) < 1);
  assert.ok(s.cost(A) > 10 * s.cost(B));
  const r = s.rank(keyFirst([A, B, C], A));
  assert.equal(r[2], A);
});

test('advertised load counts against a peer', () => {
  const { s } = scored([A, B, C]);
  s.setPeers([{ url: A, load: 100 }, { url: B, load: 0 }, { url: C, load: 0 }]);
  for (const p of [A, B, C]) s.recordLatency(p, 100);
  assert.equal(s.cost(A), 2 * s.cost(B));
  s.setPeers([{ url: A, load: 500 }, { url: B, load: 'x' }, { url: C }]);
  assert.equal(s.peers.get(A).load, 100, 'clamped');
  assert.equal(s.peers.get(B).load, 0);
});

test('timeouts bench a peer with a backoff that doubles, then it comes back', () => {
  const { c, s } = scored([A, B]);
  s.recordError(A, 'timeout');
  assert.ok(s.inBackoff(A));
  assert.deepEqual(s.healthy(), [B]);
  assert.deepEqual(s.rank('/x'), [B]);
  assert.deepEqual(s.rank('/x', { withBenched: true }), [B, A], 'with no origin to fall back on, the benched peer comes after the healthy ones');
  s.drop(B);
  assert.deepEqual(s.rank('/x', { withBenched: true }), [A], 'a dropped peer never comes back');
  s.setPeers([{ url: A }, { url: B }]);
  c.t += BACKOFF_BASE_MS;
  assert.ok(!s.inBackoff(A), 'first backoff is BACKOFF_BASE_MS');
  s.recordError(A, 'network');
  c.t += BACKOFF_BASE_MS;
  assert.ok(s.inBackoff(A), 'the second failure in a row benches it for longer');
  c.t += BACKOFF_BASE_MS;
  assert.ok(!s.inBackoff(A));
  for (let i = 0; i < 20; i++) s.recordError(A, 'timeout');
  c.t += BACKOFF_MAX_MS - 1;
  assert.ok(s.inBackoff(A));
  c.t += 1;
  assert.ok(!s.inBackoff(A), 'the backoff is capped');
  s.recordSuccess(A);
  s.recordError(A, 'timeout');
  c.t += BACKOFF_BASE_MS;
  assert.ok(!s.inBackoff(A), 'a success ends the streak');
});

test('an HTTP error counts against the score but benches nobody', () => {
  const { s } = scored([A, B]);
  s.recordError(A, 'status');
  assert.ok(!s.inBackoff(A));
  assert.ok(s.errRate(A) > 0);
});

test('errors decay with time and with successes', () => {
  const { c, s } = scored([A, B, C]);
  for (let i = 0; i < 5; i++) s.recordError(A, 'status');
  const e = s.errRate(A);
  assert.ok(e > 0.8, `error rate ${e}`);
  assert.ok(s.clearlyBad(s.healthy()).has(A), 'mostly failing: clearly bad');
  c.t += ERROR_HALF_LIFE_MS;
  assert.ok(Math.abs(s.errRate(A) - e / 2) < 1e-9, 'half-life');
  c.t += 4 * ERROR_HALF_LIFE_MS;
  assert.ok(!s.clearlyBad(s.healthy()).has(A), 'forgiven');
  s.recordError(A, 'status');
  const e2 = s.errRate(A);
  s.recordSuccess(A);
  assert.ok(s.errRate(A) < e2);
});

test('with every peer benched, rank offers them soonest back first', () => {
  const { s } = scored([A, B]);
  s.recordError(A, 'timeout');
  s.recordError(A, 'timeout'); // 2 s
  s.recordError(B, 'timeout'); // 1 s
  assert.deepEqual(s.healthy(), []);
  assert.deepEqual(s.rank('/x'), [B, A]);
});

test('a dropped peer is never ranked again, even when relisted; drop is reported once', () => {
  const { s } = scored([A, B, C]);
  assert.equal(s.drop(B), true);
  assert.equal(s.drop(B), false);
  for (let i = 0; i < 50; i++) assert.ok(!s.rank(`/k${i}`).includes(B));
  s.setPeers([A, B, C]);
  assert.ok(!s.rank('/k').includes(B));
  assert.deepEqual(s.listed().sort(), [A, C]);
  s.recordError(A, 'timeout');
  s.recordError(C, 'timeout');
  assert.ok(!s.rank('/k').includes(B), 'not even as a last resort');
});

test('unlisted peers are not ranked', () => {
  const { s } = scored([A, B, C]);
  s.setPeers([{ url: A }, { url: C }]);
  assert.deepEqual(s.rank('/k').sort(), [A, C]);
});

test('reports: at most a handful a minute', () => {
  const { c, s } = scored();
  for (let i = 0; i < REPORT_MAX; i++) assert.equal(s.mayReport(), true);
  assert.equal(s.mayReport(), false);
  c.t += REPORT_WINDOW_MS;
  assert.equal(s.mayReport(), true);
});

test('p95 over the recent samples; hedge delay clamped', () => {
  const { s } = scored([A]);
  assert.equal(s.p95(), null);
  assert.equal(s.hedgeDelay(), HEDGE_DEFAULT_MS, 'too few samples: the default');
  for (let i = 1; i <= 100; i++) s.recordLatency(A, i); // ring keeps the last 64: 37..100
  assert.equal(s.samples.length, LATENCY_SAMPLES);
  // 64 samples 37..100: the 61st smallest (ceil(0.95*64)) is 97.
  assert.equal(s.p95(), 97);
  assert.equal(s.hedgeDelay(), 97);
  for (let i = 0; i < LATENCY_SAMPLES; i++) s.recordLatency(A, 5);
  assert.equal(s.p95(), 5);
  assert.equal(s.hedgeDelay(), HEDGE_FLOOR_MS, 'floor');
  for (let i = 0; i < LATENCY_SAMPLES; i++) s.recordLatency(A, 10_000);
  assert.equal(s.hedgeDelay(), HEDGE_CEILING_MS, 'ceiling');
  assert.ok(HEDGE_CEILING_MS < 3000, 'below the per-peer timeout');
  // One slow outlier among 64 does not move the p95.
  for (let i = 0; i < LATENCY_SAMPLES; i++) s.recordLatency(A, 20);
  s.recordLatency(A, 2000);
  assert.equal(s.p95(), 20);
});

// ---- hedged, with fake timers ----

function fakeTimers() {
  const ft = {
    t: 0,
    timers: new Map(),
    id: 0,
    setTimeout: (f, ms) => {
      ft.timers.set(++ft.id, { f, at: ft.t + ms });
      return ft.id;
    },
    clearTimeout: (id) => ft.timers.delete(id),
    // advance runs due timers in order, letting promises settle between.
    async advance(ms) {
      const end = ft.t + ms;
      for (;;) {
        await flush();
        const due = [...ft.timers].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        ft.timers.delete(due[0]);
        ft.t = due[1].at;
        due[1].f();
      }
      ft.t = end;
      await flush();
    },
  };
  return ft;
}

async function flush() {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

// controllable attempts: each call records the peer and returns a
// promise the test settles.
function attempts() {
  const a = { calls: [], aborted: new Set() };
  a.fn = (peer, signal) => new Promise((resolve, reject) => {
    a.calls.push({ peer, resolve, reject });
    signal.addEventListener('abort', () => a.aborted.add(peer));
  });
  a.settle = (peer, ok, v) => {
    const c = a.calls.find((x) => x.peer === peer);
    if (ok) c.resolve(v);
    else c.reject(v);
  };
  return a;
}

test('hedged: a fast answer sends no hedge', async () => {
  const ft = fakeTimers();
  const a = attempts();
  let hedges = 0;
  const p = hedged([A, B, C], a.fn, { delay: 100, ...ft, onHedge: () => hedges++ });
  await ft.advance(50);
  assert.deepEqual(a.calls.map((c) => c.peer), [A]);
  a.settle(A, true, 'a');
  assert.equal(await p, 'a');
  await ft.advance(1000);
  assert.deepEqual(a.calls.map((c) => c.peer), [A], 'no hedge after the answer');
  assert.equal(hedges, 0);
  assert.equal(ft.timers.size, 0, 'timer cleared');
});

test('hedged: a slow first peer gets a hedge after the delay; the first verified answer wins, the loser is aborted', async () => {
  const ft = fakeTimers();
  const a = attempts();
  const hedgedTo = [];
  const p = hedged([A, B, C], a.fn, { delay: () => 100, ...ft, onHedge: (x) => hedgedTo.push(x) });
  await ft.advance(99);
  assert.equal(a.calls.length, 1);
  await ft.advance(1);
  assert.deepEqual(a.calls.map((c) => c.peer), [A, B]);
  assert.deepEqual(hedgedTo, [B]);
  await ft.advance(1000);
  assert.equal(a.calls.length, 2, 'at most two in flight: no third hedge');
  a.settle(B, true, 'b');
  assert.equal(await p, 'b');
  assert.ok(a.aborted.has(A), 'the loser is aborted');
  assert.ok(!a.aborted.has(B));
  a.settle(A, true, 'late'); // ignored
});

test('hedged: a peer that has answered (alive) is given the time its body needs; one that overruns it is hedged', async () => {
  const ft = fakeTimers();
  const calls = [];
  const p = hedged([A, B, C], (peer, signal, _i, alive) => new Promise((resolve) => {
    calls.push({ peer, resolve, alive });
  }), { delay: 100, ...ft });
  await ft.advance(90);
  calls[0].alive(400); // headers: the body should take 400 ms more
  await ft.advance(399);
  assert.deepEqual(calls.map((c) => c.peer), [A], 'no hedge while the body is in time');
  await ft.advance(1);
  assert.deepEqual(calls.map((c) => c.peer), [A, B], 'a hedge once the body overruns its time');
  calls[0].alive(10); // two in flight: no third
  await ft.advance(1000);
  assert.equal(calls.length, 2);
  calls[1].resolve('b');
  assert.equal(await p, 'b');
  calls[0].alive(10); // after the end: ignored
  assert.equal(ft.timers.size, 0, 'timer cleared');
});

test('PeerScores.hedgeBodyMs: the delay plus the body at half the median throughput, capped', () => {
  const s = new PeerScores();
  s.setPeers([{ url: A, load: 0 }, { url: B, load: 0 }]);
  const d = s.hedgeDelay();
  assert.equal(s.hedgeBodyMs(0), d);
  assert.equal(s.hedgeBodyMs(HEDGE_RATE_DEFAULT / 10), d + 100, 'before any sample: HEDGE_RATE_DEFAULT');
  s.recordThroughput(A, 4 << 20, 1000); // 4 MiB/s
  s.recordThroughput(B, 4 << 20, 1000);
  assert.equal(s.hedgeBodyMs(2 << 20), Math.min(HEDGE_CEILING_MS, d + 1000));
  assert.equal(s.hedgeBodyMs(1 << 30), HEDGE_CEILING_MS, 'capped: a claimed length buys no more');
});

test('hedged: a failure (bad data, error) starts the next peer at once', async () => {
  const ft = fakeTimers();
  const a = attempts();
  let hedges = 0;
  const p = hedged([A, B, C], a.fn, { delay: 100, ...ft, onHedge: () => hedges++ });
  await flush();
  a.settle(A, false, new Error('bad data'));
  await flush();
  assert.deepEqual(a.calls.map((c) => c.peer), [A, B], 'no waiting for the hedge delay');
  assert.equal(ft.t, 0);
  assert.equal(hedges, 0, 'a retry is not a hedge');
  a.settle(B, true, 'b');
  assert.equal(await p, 'b');
});

test('hedged: with two in flight, a failure starts the third', async () => {
  const ft = fakeTimers();
  const a = attempts();
  const p = hedged([A, B, C], a.fn, { delay: 100, ...ft });
  await ft.advance(100);
  assert.equal(a.calls.length, 2);
  a.settle(B, false, new Error('x'));
  await flush();
  assert.deepEqual(a.calls.map((c) => c.peer), [A, B, C]);
  a.settle(C, true, 'c');
  assert.equal(await p, 'c');
  assert.ok(a.aborted.has(A));
});

test('hedged: everything fails: the last error', async () => {
  const ft = fakeTimers();
  const a = attempts();
  const p = hedged([A, B], a.fn, { delay: 100, ...ft });
  await ft.advance(100);
  a.settle(A, false, new Error('first'));
  await flush();
  a.settle(B, false, new Error('second'));
  await assert.rejects(p, /second/);
  await assert.rejects(hedged([], a.fn, { ...ft }), /no candidates/);
});

test('hedged: a thrown (not rejected) attempt counts as a failure', async () => {
  const ft = fakeTimers();
  const p = hedged([A, B], (peer) => {
    if (peer === A) throw new Error('sync');
    return 'b';
  }, { delay: 100, ...ft });
  assert.equal(await p, 'b');
});

test('hedged: the caller aborting aborts every attempt', async () => {
  const ft = fakeTimers();
  const a = attempts();
  const ctrl = new AbortController();
  const p = hedged([A, B], a.fn, { delay: 100, signal: ctrl.signal, ...ft });
  await ft.advance(100);
  ctrl.abort(new Error('page gone'));
  await assert.rejects(p, /page gone/);
  assert.ok(a.aborted.has(A) && a.aborted.has(B));
});

test('hedged with real timers and PeerScores.hedgeDelay', async () => {
  const { s } = scored([A, B]);
  for (let i = 0; i < 10; i++) s.recordLatency(A, 10);
  assert.equal(s.hedgeDelay(), HEDGE_FLOOR_MS);
  const started = [];
  const t0 = Date.now();
  const v = await hedged([A, B], (peer, signal) => {
    started.push([peer, Date.now() - t0]);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => resolve(peer), peer === A ? 2000 : 5);
      signal.addEventListener('abort', () => { clearTimeout(t); reject(new Error('aborted')); });
    });
  }, { delay: () => s.hedgeDelay() });
  assert.equal(v, B);
  assert.equal(started.length, 2);
  assert.ok(started[1][1] >= HEDGE_FLOOR_MS - 5, `hedge at ${started[1][1]} ms`);
  assert.ok(Date.now() - t0 < 1000, 'did not wait for the slow peer');
});

test('a peer that loses hedges without answering is demoted, never benched: losing a race is no fault', () => {
  const { s } = scored([A, B, C]);
  s.recordLatency(A, 20);
  s.recordLatency(B, 20);
  s.recordLatency(C, 20);
  for (let i = 0; i < 20; i++) s.recordSilent(A, 400);
  assert.ok(s.healthy().includes(A), 'a peer that only lost races stays healthy');
  assert.equal(s.snapshot().find((p) => p.url === A).fail, 0, 'and has no failure on its record');
  // The waits raised its latency average above what it had measured,
  // enough for ranking to put it last.
  const a = s.snapshot().find((p) => p.url === A);
  assert.ok(a.latency > 300, `latency ${a.latency}`);
  assert.equal(s.rank('some key').at(-1), A);
});
