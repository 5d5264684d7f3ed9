// Signed roots (sw/js/grits.js decodeRoot, verifyRoot, checkSuccessor)
// against tree/testdata/root.golden.json, with WebCrypto Ed25519. The
// test signs further roots itself with the golden seed, through WebCrypto
// too, to reach every rule of tree.Root.Verify and CheckSuccessor.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  decodeRoot, verifyRoot, verifyKeptRoot, checkSuccessor, rootSignedMessage, parsePublicKey, formatPublicKey, ed25519Verify,
  GritsError, fromHex, toHex, formatHash, parseHash, bytesEqual, ROOT_SIZE,
} from '../js/grits.js';

const golden = JSON.parse(readFileSync(new URL('../../tree/testdata/root.golden.json', import.meta.url), 'utf8'));
const siteKey = parsePublicKey(golden.public_key);
const DAY = 86400;

async function signer(seedHex) {
  // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
  const der = fromHex('302e020100300506032b657004220420' + seedHex);
  const key = await crypto.subtle.importKey('pkcs8', der, { name: 'Ed25519' }, false, ['sign']);
  const pub = golden.seed === seedHex ? siteKey : null;
  return { key, pub };
}

// encodeRoot writes the 186 bytes of tree/root.go and signs them.
async function makeRoot(s, pub, { seq, time, expires, tree, prev }) {
  const b = new Uint8Array(ROOT_SIZE);
  const dv = new DataView(b.buffer);
  b[0] = 0x52;
  b[1] = 1;
  b.set(pub, 2);
  dv.setBigUint64(34, BigInt(seq));
  dv.setBigInt64(42, BigInt(time));
  dv.setBigInt64(50, BigInt(expires));
  b.set(tree, 58);
  b.set(prev || new Uint8Array(32), 90);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, s.key, rootSignedMessage(b)));
  b.set(sig, 122);
  return b;
}

async function code(p) {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (!(e instanceof GritsError)) throw e;
    return e.code;
  }
}

const codeOf = (fn) => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (!(e instanceof GritsError)) throw e;
    return e.code;
  }
};

test('golden roots decode field by field and hash as Go says', () => {
  for (const g of golden.roots) {
    const r = decodeRoot(fromHex(g.encoding));
    assert.equal(r.seq, BigInt(g.seq));
    assert.equal(r.time, BigInt(g.time));
    assert.equal(r.expires, BigInt(g.expires));
    assert.equal(formatHash(r.tree), g.tree);
    assert.equal(formatHash(r.prev), g.prev);
    assert.equal(toHex(r.sig), g.signature);
    assert.equal(formatPublicKey(r.siteKey), golden.public_key);
    assert.equal(formatHash(r.hash), g.hash);
    assert.equal(toHex(rootSignedMessage(r.bytes)), g.signed_message);
    assert.ok(toHex(rootSignedMessage(r.bytes)).startsWith(golden.signature_context));
  }
});

test('golden roots verify under the site key with WebCrypto', async () => {
  for (const g of golden.roots) {
    const now = (g.time + DAY) * 1000;
    const r = await verifyRoot(fromHex(g.encoding), golden.public_key, now);
    assert.equal(r.seq, BigInt(g.seq));
    await verifyRoot(decodeRoot(fromHex(g.encoding)), siteKey, new Date(now));
  }
});

test('every flipped byte of a golden root is refused', async () => {
  const g = golden.roots[1];
  const enc = fromHex(g.encoding);
  const now = (g.time + DAY) * 1000;
  for (let i = 0; i < ROOT_SIZE; i++) {
    const b = enc.slice();
    b[i] ^= 0x01;
    const want = i < 2 ? 'malformed_root' : i < 34 ? 'wrong_key' : 'bad_signature';
    const got = i < 2 ? codeOf(() => decodeRoot(b)) : await code(verifyRoot(b, siteKey, now));
    assert.equal(got, want, `byte ${i}`);
  }
});

test('framing: length, tag, version', () => {
  const enc = fromHex(golden.roots[0].encoding);
  assert.equal(codeOf(() => decodeRoot(enc.subarray(0, 185))), 'malformed_root');
  assert.equal(codeOf(() => decodeRoot(Uint8Array.from([...enc, 0]))), 'malformed_root');
  assert.equal(codeOf(() => decodeRoot(new Uint8Array(0))), 'malformed_root');
});

test('keys: another key, the zero key, key text', async () => {
  const enc = fromHex(golden.roots[0].encoding);
  const now = (golden.roots[0].time + 1) * 1000;
  const other = siteKey.slice();
  other[0] ^= 1;
  assert.equal(await code(verifyRoot(enc, other, now)), 'wrong_key');
  assert.equal(await code(verifyRoot(enc, new Uint8Array(32), now)), 'wrong_key');
  assert.equal(await ed25519Verify(new Uint8Array(32), new Uint8Array(1), new Uint8Array(64)), false);
  for (const bad of ['', 'ed25519-', golden.public_key.toUpperCase(), golden.public_key + '0', golden.public_key.slice(1), 'ed448-' + golden.public_key.slice(8)]) {
    assert.equal(codeOf(() => parsePublicKey(bad)), 'invalid_key', bad);
  }
  assert.equal(formatPublicKey(parsePublicKey(golden.public_key)), golden.public_key);
});

test('WebCrypto signatures with the golden seed reproduce the golden roots', async () => {
  const s = await signer(golden.seed);
  for (const g of golden.roots) {
    const b = await makeRoot(s, siteKey, { seq: g.seq, time: g.time, expires: g.expires, tree: parseHash(g.tree), prev: parseHash(g.prev) });
    assert.equal(toHex(b), g.encoding);
  }
});

test('expiry and clock skew, to the second', async () => {
  const g = golden.roots[0];
  const enc = fromHex(g.encoding);
  assert.equal(await code(verifyRoot(enc, siteKey, g.expires * 1000)), 'expired');
  assert.equal(await code(verifyRoot(enc, siteKey, g.expires * 1000 + 123456)), 'expired');
  assert.equal(await code(verifyRoot(enc, siteKey, g.expires * 1000 - 1)), 'ok');
  assert.equal(await code(verifyRoot(enc, siteKey, (g.time - 300) * 1000)), 'ok');
  assert.equal(await code(verifyRoot(enc, siteKey, (g.time - 300) * 1000 - 1)), 'from_future');
  assert.equal(await code(verifyRoot(enc, siteKey, (g.time - 301) * 1000)), 'from_future');
});

test('signed but nonsensical roots are malformed', async () => {
  const s = await signer(golden.seed);
  const g = golden.roots[0];
  const tree = parseHash(g.tree);
  const prev = parseHash(golden.roots[1].hash);
  const now = (g.time + 1) * 1000;
  const base = { seq: 1, time: g.time, expires: g.expires, tree };
  const cases = [
    [{ ...base }, 'ok'],
    [{ ...base, seq: 0 }, 'malformed_root'],
    [{ ...base, tree: new Uint8Array(32) }, 'malformed_root'],
    [{ ...base, expires: g.time }, 'malformed_root'],
    [{ ...base, expires: g.time - 1 }, 'malformed_root'],
    [{ ...base, prev }, 'malformed_root'],
    [{ ...base, seq: 2 }, 'malformed_root'],
    [{ ...base, seq: 2, prev }, 'ok'],
    [{ ...base, seq: '18446744073709551615', prev }, 'ok'],
    [{ ...base, time: '-9223372036854775808' }, 'ok'],
  ];
  for (const [fields, want] of cases) {
    const b = await makeRoot(s, siteKey, fields);
    assert.equal(await code(verifyRoot(b, siteKey, now)), want, JSON.stringify(fields, (k, v) => (v instanceof Uint8Array ? toHex(v) : v)));
  }
});

test('successor rules: rollback, equivocation, same root, gaps', async () => {
  const s = await signer(golden.seed);
  const [r1, r2] = golden.roots.map((g) => decodeRoot(fromHex(g.encoding)));
  const g = golden.roots[1];
  const mk = (f) => makeRoot(s, siteKey, { time: g.time, expires: g.expires, tree: r2.tree, ...f }).then(decodeRoot);
  const r2b = await mk({ seq: 2, prev: r1.hash, time: g.time + 1 });
  const r3 = await mk({ seq: 3, prev: r2.hash });
  const r3bad = await mk({ seq: 3, prev: r1.hash });
  const r9 = await mk({ seq: 9, prev: r1.hash });
  assert.equal(codeOf(() => checkSuccessor(r2, r1)), 'ok');
  assert.equal(codeOf(() => checkSuccessor(r1, r2)), 'rollback');
  assert.equal(codeOf(() => checkSuccessor(r1, r1)), 'same_root');
  assert.equal(codeOf(() => checkSuccessor(fromHex(golden.roots[1].encoding), r2)), 'same_root');
  assert.equal(codeOf(() => checkSuccessor(r2b, r2)), 'equivocation');
  assert.equal(codeOf(() => checkSuccessor(r2b, r1)), 'ok');
  assert.equal(codeOf(() => checkSuccessor(r3, r2)), 'ok');
  assert.equal(codeOf(() => checkSuccessor(r3bad, r2)), 'equivocation');
  assert.equal(codeOf(() => checkSuccessor(r3bad, r1)), 'ok'); // a gap: roots in between may have been missed
  assert.equal(codeOf(() => checkSuccessor(r9, r3)), 'ok');
  assert.equal(codeOf(() => checkSuccessor(r3, r9)), 'rollback');
  assert.ok(bytesEqual(r2.prev, r1.hash));
});

// The worker keeps its newest root in Cache Storage. After that root
// expires and the worker restarts (the origin down), a volunteer offers
// an older root that is still valid: the kept root, checked by
// verifyKeptRoot (signature, not expiry), still bounds what may follow,
// so the older one is a rollback. verifyRoot alone, as the worker used
// to restore the kept root, refuses it as expired, and the worker then
// held nothing to compare with.
test('a kept root bounds its successors after it expires', async () => {
  const s = await signer(golden.seed);
  const t = 1_800_000_000;
  const tree = parseHash(golden.roots[0].tree);
  // seq 7 signed long ago with a long life; seq 8 later, with a short one.
  const old = await makeRoot(s, siteKey, { seq: 7, time: t, expires: t + 30 * DAY, tree, prev: tree });
  const kept = await makeRoot(s, siteKey, { seq: 8, time: t + DAY, expires: t + 2 * DAY, tree, prev: decodeRoot(old).hash });
  const now = (t + 3 * DAY) * 1000; // the kept root has expired, the older one has not
  assert.equal(await code(verifyRoot(kept, siteKey, now)), 'expired', 'what the worker used to restore with');
  const held = await verifyKeptRoot(kept, siteKey);
  assert.equal(held.seq, 8n);
  const offered = await verifyRoot(old, siteKey, now);
  assert.equal(codeOf(() => checkSuccessor(offered, held)), 'rollback');
  // Another root with the kept seq is equivocation; a newer one is fine.
  const twin = await makeRoot(s, siteKey, { seq: 8, time: t + 2 * DAY, expires: t + 9 * DAY, tree, prev: decodeRoot(old).hash });
  const twinV = await verifyRoot(twin, siteKey, now);
  assert.equal(codeOf(() => checkSuccessor(twinV, held)), 'equivocation');
  const next = await makeRoot(s, siteKey, { seq: 9, time: t + 2 * DAY, expires: t + 9 * DAY, tree, prev: held.hash });
  const nextV = await verifyRoot(next, siteKey, now);
  assert.equal(codeOf(() => checkSuccessor(nextV, held)), 'ok');
  // A kept root that does not verify (a flipped byte, another key) bounds nothing.
  const bad = kept.slice();
  bad[100] ^= 1;
  assert.equal(await code(verifyKeptRoot(bad, siteKey)), 'bad_signature');
  const other = siteKey.slice();
  other[0] ^= 1;
  assert.equal(await code(verifyKeptRoot(kept, other)), 'wrong_key');
});
