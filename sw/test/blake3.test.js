// BLAKE3 (sw/js/blake3.js) against the official test vectors, against Go
// on random inputs, streamed in pieces of every awkward size, and the
// text form of hashes.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { blake3, blake3With, engine, Hasher, toHex, fromHex, formatHash, parseHash, bytesEqual } from '../js/blake3.js';
import { generateCompress, splice } from './gen-blake3-compress.mjs';

const json = (name) => JSON.parse(readFileSync(new URL(`../testdata/${name}`, import.meta.url), 'utf8'));

function pattern251(n) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

// The input generator of sw/vectors_test.go (xorshiftBytes).
function xorshiftBytes(seed, n) {
  const b = new Uint8Array(n + 3);
  const dv = new DataView(b.buffer);
  let x = seed >>> 0;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    dv.setUint32(i, x, true);
  }
  return b.subarray(0, n);
}

// A small deterministic PRNG for piece sizes.
function prng(seed) {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

test('BLAKE3("") is af1349b9...', () => {
  assert.equal(toHex(blake3(new Uint8Array(0))), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  assert.equal(toHex(new Hasher().digest()), 'af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
});

test('official BLAKE3 test vectors (hash mode, first 32 bytes)', () => {
  const v = json('blake3_vectors.json');
  let official = 0;
  for (const c of v.cases) {
    assert.equal(toHex(blake3(pattern251(c.input_len))), c.hash, `length ${c.input_len} (${c.source})`);
    if (c.source === 'official') official++;
  }
  assert.ok(official >= 22, `${official} official cases`);
  assert.ok(v.cases.length >= 35);
});

test('official vectors, streamed one byte at a time and in odd pieces', () => {
  for (const c of json('blake3_vectors.json').cases) {
    if (c.input_len > 20000) continue;
    const b = pattern251(c.input_len);
    const h = new Hasher();
    for (let i = 0; i < b.length; i++) h.update(b.subarray(i, i + 1));
    assert.equal(toHex(h.digest()), c.hash, `bytewise, length ${c.input_len}`);
    for (const piece of [3, 63, 64, 65, 1023, 1024, 1025]) {
      const g = new Hasher();
      for (let i = 0; i < b.length; i += piece) g.update(b.subarray(i, i + piece));
      assert.equal(toHex(g.digest()), c.hash, `pieces of ${piece}, length ${c.input_len}`);
    }
  }
});

test('random inputs up to 3 MiB match Go (blake3_random.json)', () => {
  const v = json('blake3_random.json');
  assert.equal(v.cases.length, 50);
  for (const c of v.cases) {
    const b = xorshiftBytes(c.seed, c.length);
    assert.equal(toHex(blake3(b)), c.hash, `seed ${c.seed} length ${c.length}`);
  }
});

test('random inputs, unaligned and streamed in random-size pieces, match Go', () => {
  const v = json('blake3_random.json');
  const rnd = prng(12345);
  const sizes = [0, 1, 2, 3, 31, 63, 64, 65, 127, 1023, 1024, 1025, 2048, 4095, 65536];
  for (const [k, c] of v.cases.entries()) {
    const src = xorshiftBytes(c.seed, c.length);
    // The same bytes at an odd offset: no aligned word view possible.
    const buf = new Uint8Array(c.length + 1);
    buf.set(src, 1);
    const b = buf.subarray(1);
    assert.equal(toHex(blake3(b)), c.hash, `unaligned, length ${c.length}`);
    if (k % 3 !== 0 && c.length > 300000) continue; // keep the run short
    const h = new Hasher();
    for (let i = 0; i < b.length; ) {
      const n = rnd(4) === 0 ? sizes[rnd(sizes.length)] : rnd(200000);
      h.update(b.subarray(i, i + n));
      i += n;
    }
    assert.equal(toHex(h.digest()), c.hash, `pieces, length ${c.length}`);
  }
});

test('digest does not change the state; other views and ArrayBuffers', () => {
  const b = pattern251(5000);
  const h = new Hasher();
  h.update(b.subarray(0, 2500));
  assert.equal(toHex(h.digest()), toHex(blake3(b.subarray(0, 2500))));
  assert.equal(toHex(h.digest()), toHex(blake3(b.subarray(0, 2500))));
  h.update(b.subarray(2500));
  assert.equal(toHex(h.digest()), toHex(blake3(b)));
  const copy = b.slice();
  assert.equal(toHex(blake3(copy.buffer)), toHex(blake3(b)));
  assert.equal(toHex(blake3(new DataView(copy.buffer))), toHex(blake3(b)));
  assert.throws(() => blake3('text'), TypeError);
});

test('hash text form: b3- and 64 lower-case hex digits, nothing else', () => {
  const h = blake3(new Uint8Array(0));
  const s = formatHash(h);
  assert.equal(s, 'b3-af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  assert.ok(bytesEqual(parseHash(s), h));
  for (const bad of ['', 'b3-', s.toUpperCase(), 'B3-' + s.slice(3), s.slice(0, -1), s + '0', 'b3_' + s.slice(3),
    s.slice(0, -1) + 'g', s.slice(0, -1) + 'A', ' ' + s, 'blake3-' + s.slice(3)]) {
    assert.throws(() => parseHash(bad), TypeError, bad);
  }
  assert.deepEqual(fromHex('00ffA0'), Uint8Array.from([0, 255, 160]));
  assert.throws(() => fromHex('abc'));
  assert.throws(() => fromHex('zz'));
  assert.equal(toHex(Uint8Array.from([0, 1, 254, 255])), '0001feff');
  assert.ok(bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)));
  assert.ok(!bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)));
  assert.ok(!bytesEqual(Uint8Array.of(1, 2), Uint8Array.of(1)));
});

test('the compression function is what the generator writes', () => {
  const src = readFileSync(new URL('../js/blake3.js', import.meta.url), 'utf8');
  assert.equal(src, splice(src, generateCompress()), 'run node sw/test/gen-blake3-compress.mjs --write');
});

// The WebAssembly SIMD engine and the JavaScript one give the same
// answers, the official vectors and Go's, one-shot and streamed; Node
// (V8) has WebAssembly SIMD, so here both must run.
test('both engines: official vectors and Go\'s random inputs', () => {
  assert.ok(['wasm-simd', 'js'].includes(engine()));
  for (const name of ['js', 'wasm-simd']) {
    for (const c of json('blake3_vectors.json').cases) {
      assert.equal(toHex(blake3With(name, pattern251(c.input_len))), c.hash, `${name}, length ${c.input_len}`);
    }
    for (const c of json('blake3_random.json').cases) {
      const src = xorshiftBytes(c.seed, c.length);
      assert.equal(toHex(blake3With(name, src)), c.hash, `${name}, seed ${c.seed} length ${c.length}`);
      const buf = new Uint8Array(c.length + 3);
      buf.set(src, 3);
      assert.equal(toHex(blake3With(name, buf.subarray(3))), c.hash, `${name}, unaligned, length ${c.length}`);
    }
  }
});

test('JavaScript-only hasher, streamed, matches the chosen engine across 64-chunk groups', () => {
  const rnd = prng(777);
  for (const n of [8 * 1024 + 1, 64 * 1024, 64 * 1024 + 1, 65 * 1024 + 7, 129 * 1024, 300000, (1 << 20) + 5]) {
    const b = xorshiftBytes(n, n);
    const want = toHex(blake3With('js', b));
    assert.equal(toHex(blake3(b)), want, `one-shot ${n}`);
    for (const h of [new Hasher(null), new Hasher()]) {
      for (let i = 0; i < n; ) {
        const k = rnd(3) === 0 ? 1 + rnd(70000) : 1024 * (1 + rnd(80));
        h.update(b.subarray(i, i + k));
        i += k;
      }
      assert.equal(toHex(h.digest()), want, `streamed ${n}`);
    }
  }
});

test('the SIMD module is what gen-blake3-simd.mjs and wat2wasm make', () => {
  try {
    execFileSync('wat2wasm', ['--version']);
  } catch {
    assert.fail('wat2wasm is missing: apt-get install wabt (.ci/run does)');
  }
  execFileSync(process.execPath, [new URL('./gen-blake3-simd.mjs', import.meta.url).pathname, '--check'], { env: { ...process.env, NODE_TEST_CONTEXT: '' } });
});
