// Hostile bytes: every decoder the worker runs on network or Cache
// Storage input must either decode or throw a GritsError, never another
// exception (a TypeError or RangeError would escape the worker's error
// handling as a bug, not as "this volunteer lied"). Inputs are the
// shared Go vectors with random flips, cuts, splices and lengths, from
// a fixed seed so a failure replays.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { decodeNode, decodeProof, decodeRoot, decodeLookupFrame, GritsError, fromHex } from '../js/grits.js';

const lookupVectors = JSON.parse(readFileSync(new URL('../testdata/lookup_frames.json', import.meta.url), 'utf8'));
const frames = lookupVectors.frames;
const cases = JSON.parse(readFileSync(new URL('../testdata/decode_cases.json', import.meta.url), 'utf8'));

// xorshift32: deterministic, seedable.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return (n) => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

function mutate(b, r) {
  const out = Uint8Array.from(b);
  switch (r(5)) {
    case 0: // flip bytes
      for (let i = 0, n = 1 + r(4); i < n && out.length; i++) out[r(out.length)] ^= 1 + r(255);
      return out;
    case 1: // cut
      return out.subarray(0, r(out.length + 1));
    case 2: { // splice a run from elsewhere
      if (out.length < 2) return out;
      const from = r(out.length), to = r(out.length), n = r(Math.min(16, out.length - Math.max(from, to)) + 1);
      out.copyWithin(to, from, from + n);
      return out;
    }
    case 3: // set a byte to an extreme (length and count fields)
      if (out.length) out[r(out.length)] = [0x00, 0x7f, 0x80, 0xff][r(4)];
      return out;
    default: { // random bytes of a random length
      const n = r(300);
      const x = new Uint8Array(n);
      for (let i = 0; i < n; i++) x[i] = r(256);
      return x;
    }
  }
}

// GRITS_FUZZ_SCALE=100 node --test sw/test/robust.test.js runs a longer
// session (about a minute); GRITS_FUZZ_SEED another sequence.
const SCALE = Number(process.env.GRITS_FUZZ_SCALE) || 1;
const SEED = Number(process.env.GRITS_FUZZ_SEED) || 0x9e3779b9;

function robust(name, decode, seeds, rounds) {
  rounds *= SCALE;
  test(`${name}: only GritsError on ${rounds} mutated inputs`, () => {
    const r = rng(SEED ^ name.length);
    let decoded = 0, refused = 0;
    for (let i = 0; i < rounds; i++) {
      const input = mutate(seeds[r(seeds.length)], r);
      try {
        decode(input);
        decoded++;
      } catch (e) {
        if (!(e instanceof GritsError)) {
          assert.fail(`${name} threw ${e && e.constructor && e.constructor.name}: ${e && e.message} on ${Buffer.from(input).toString('hex').slice(0, 400)}`);
        }
        refused++;
      }
    }
    // Both outcomes occur: the mutations reach past the first check.
    assert.ok(refused > 0, 'nothing refused');
    assert.ok(decoded > 0 || name === 'decodeLookupFrame', 'nothing decoded');
  });
}

const frameBytes = frames.map((f) => fromHex(f.hex));
// Node cases are spelled as [hex, repeat] parts (big nodes stay small in
// the file); only small ones make useful seeds.
const spelled = (parts) => fromHex(parts.map(([h, n]) => h.repeat(n)).join(''));
const nodeBytes = cases.nodes.filter((c) => c.ok && c.parts.reduce((a, [h, n]) => a + h.length * n, 0) < 20000).map((c) => spelled(c.parts));

robust('decodeLookupFrame', decodeLookupFrame, frameBytes, 6000);
robust('decodeNode', decodeNode, nodeBytes, 6000);
// Roots inside the frames: tag 0x52, version 1, then the site key.
const keyHex = lookupVectors.site_key.replace(/^ed25519-/, '');
const rootBytes = frameBytes.map((b) => {
  const at = Buffer.from(b).toString('hex').indexOf('5201' + keyHex);
  return at >= 0 && at % 2 === 0 ? b.subarray(at / 2, at / 2 + 186) : null;
}).filter((b) => b && b.length === 186);
test('root seeds found', () => assert.ok(rootBytes.length > 10, `${rootBytes.length} roots`));
robust('decodeRoot', decodeRoot, rootBytes, 4000);
robust('decodeProof', decodeProof, frameBytes.map((b) => b.subarray(3)), 4000);
