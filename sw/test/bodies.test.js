// Deadlines and size limits on volunteers' bodies (sw/js/peers.js):
// the slowest rate the worker accepts, the deadline it gives a body,
// the bench a slow body earns, and reading a body no further than its
// limit.
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  PeerScores, bodyDeadlineMs, readLimited, BodyTooLarge,
  BODY_GRACE_MS, SLOW_FACTOR, MIN_RATE_FLOOR, MIN_RATE_CEILING, PARTIAL_MIN_MS, BACKOFF_BASE_MS, MIN_THROUGHPUT_BYTES,
} from '../js/peers.js';

const A = 'https://a.example';
const B = 'https://b.example';
const C = 'https://c.example';

function scored(peers = [A, B, C]) {
  const c = { t: 1_000_000 };
  const s = new PeerScores({ now: () => c.t });
  s.setPeers(peers.map((url) => ({ url })));
  return { c, s };
}

test('minThroughput: the floor before anything is measured, the median / SLOW_FACTOR after, clamped', () => {
  const { s } = scored();
  assert.equal(s.minThroughput(), MIN_RATE_FLOOR);
  // Three peers at 2, 2.4 and 3.2 MB/s: the median over SLOW_FACTOR.
  s.recordThroughput(A, 2_000_000, 1000);
  s.recordThroughput(B, 2_400_000, 1000);
  s.recordThroughput(C, 3_200_000, 1000);
  assert.equal(s.minThroughput(), 2_400_000 / SLOW_FACTOR);
  // Very fast peers: the ceiling, so a fair but slower volunteer is not cut off.
  const f = scored().s;
  for (const u of [A, B, C]) f.recordThroughput(u, 1e9, 1000);
  assert.equal(f.minThroughput(), MIN_RATE_CEILING);
  // Very slow peers: the floor; the worker never waits for less.
  const w = scored().s;
  for (const u of [A, B, C]) w.recordThroughput(u, MIN_THROUGHPUT_BYTES, 100_000);
  assert.equal(w.minThroughput(), MIN_RATE_FLOOR);
});

test('bodyDeadlineMs: a grace, then the bytes at the slowest rate accepted; a dripping body misses it', () => {
  assert.equal(bodyDeadlineMs(0, MIN_RATE_FLOOR), BODY_GRACE_MS);
  assert.equal(bodyDeadlineMs(256 << 10, 256 << 10), BODY_GRACE_MS + 1000);
  // Eight 256 KiB blocks at the floor: every block has its own deadline,
  // each later than the one before; the whole run is bounded.
  const per = [];
  for (let k = 1; k <= 8; k++) per.push(bodyDeadlineMs(k * (256 << 10), MIN_RATE_FLOOR));
  for (let k = 1; k < per.length; k++) assert.ok(per[k] > per[k - 1]);
  assert.equal(per[7], BODY_GRACE_MS + 32_000);
  // A volunteer sending a byte every 2.5 s (0.4 B/s), or 1 KB/s, has
  // sent far less than a block by the first block's deadline.
  const first = bodyDeadlineMs(256 << 10, MIN_RATE_FLOOR);
  assert.ok((first / 1000) * 0.4 < 256 << 10);
  assert.ok((first / 1000) * 1000 < 256 << 10);
  assert.ok(Number.isFinite(bodyDeadlineMs(1 << 20, 0)), 'a zero rate is no infinite deadline');
});

test('recordPartial: an abandoned body is a throughput sample whatever its size, if it lasted', () => {
  const { s } = scored();
  s.recordThroughput(A, 1 << 20, 1000);
  s.recordThroughput(B, 1 << 20, 1000);
  assert.equal(s.recordPartial(C, 3, PARTIAL_MIN_MS - 1), false, 'too short to say anything');
  assert.equal(s.snapshot().find((p) => p.url === C).throughput, null);
  assert.equal(s.recordPartial(C, 3, 2500), true);
  assert.equal(s.snapshot().find((p) => p.url === C).throughput, 1);
  // The dripper is now clearly bad: ranked after the others for any key.
  for (let i = 0; i < 20; i++) assert.equal(s.rank(`/k${i}`).at(-1), C);
});

test('a slow body benches the peer; small successes do not end that bench, a big body in time does', () => {
  const { c, s } = scored();
  s.recordError(A, 'slow');
  assert.ok(s.inBackoff(A));
  assert.ok(!s.healthy().includes(A));
  s.recordSuccess(A); // a lookup answered fast
  assert.ok(s.inBackoff(A), 'a throttler that answers small requests fast stays benched');
  c.t += BACKOFF_BASE_MS;
  assert.ok(!s.inBackoff(A));
  s.recordError(A, 'slow');
  assert.ok(s.inBackoff(A));
  c.t += BACKOFF_BASE_MS;
  assert.ok(s.inBackoff(A), 'the second slow body in a row benches for twice as long');
  c.t += BACKOFF_BASE_MS;
  assert.ok(!s.inBackoff(A));
  s.recordThroughput(A, 1 << 20, 100); // a big body, in time
  s.recordError(A, 'slow');
  c.t += BACKOFF_BASE_MS;
  assert.ok(!s.inBackoff(A), 'the streak ended: the base bench again');
  // A timeout after a slow body does not shorten the slow bench.
  s.recordError(B, 'slow');
  s.recordError(B, 'slow');
  s.recordSuccess(B);
  s.recordError(B, 'timeout');
  c.t += BACKOFF_BASE_MS;
  assert.ok(s.inBackoff(B));
});

function streamOf(chunks, opts = {}) {
  let i = 0;
  let cancelled = false;
  const body = new ReadableStream({
    pull(ctrl) {
      if (opts.endless || i < chunks.length) ctrl.enqueue(chunks[i++ % chunks.length]);
      else ctrl.close();
    },
    cancel() { cancelled = true; },
  });
  return { resp: new Response(body), pulled: () => i, cancelled: () => cancelled };
}

test('readLimited: returns a body within its limit, byte-exact', async () => {
  const a = new Uint8Array([1, 2, 3]);
  const b = new Uint8Array([4, 5]);
  const { resp } = streamOf([a, b]);
  assert.deepEqual(await readLimited(resp, 5), new Uint8Array([1, 2, 3, 4, 5]));
  assert.deepEqual(await readLimited(new Response(new Uint8Array(0)), 0), new Uint8Array(0));
  assert.deepEqual(await readLimited(new Response(null), 10), new Uint8Array(0));
  const one = await readLimited(new Response(new Uint8Array([9, 9])), 2);
  assert.deepEqual(one, new Uint8Array([9, 9]));
});

test('readLimited: an endless body stops one chunk past the limit, cancelled, a BodyTooLarge', async () => {
  const chunk = new Uint8Array(64 << 10);
  const s = streamOf([chunk], { endless: true });
  const progress = { bytes: 0 };
  await assert.rejects(readLimited(s.resp, 186, progress), (e) => e instanceof BodyTooLarge && e.limit === 186);
  assert.ok(s.pulled() <= 3, `read ${s.pulled()} chunks of an endless body`);
  assert.equal(progress.bytes, 64 << 10);
  await new Promise((ok) => setTimeout(ok, 0));
  assert.ok(s.cancelled(), 'the body is cancelled, not left to flow');
  // One byte over is too many.
  await assert.rejects(readLimited(new Response(new Uint8Array(187)), 186), BodyTooLarge);
});
