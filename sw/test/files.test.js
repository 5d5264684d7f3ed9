// File chunk enumeration (sw/js/grits.js fileChunks) against tree.Chunks:
// sw/testdata/file_chunks.json, a file with one index level.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  fileChunks, listChunks, decodeNode, fileIsTop, checkInline, GritsError,
  fromHex, toHex, formatHash, blake3,
} from '../js/grits.js';
import { Hasher } from '../js/blake3.js';

const v = JSON.parse(readFileSync(new URL('../testdata/file_chunks.json', import.meta.url), 'utf8'));
const top = decodeNode(fromHex(v.top_hex));
const index = new Map(Object.entries(v.index_nodes).map(([h, x]) => [h, fromHex(x)]));
let fetched = 0;
const getNode = async (h) => {
  fetched++;
  return index.get(formatHash(h));
};

function digest(chunks) {
  const h = new Hasher();
  const buf = new Uint8Array(12);
  const dv = new DataView(buf.buffer);
  for (const c of chunks) {
    dv.setBigUint64(0, BigInt(c.offset));
    dv.setUint32(8, c.size);
    h.update(buf);
    h.update(c.hash);
  }
  return toHex(h.digest());
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

test('the top node: level 1, canonical', () => {
  assert.equal(formatHash(blake3(fromHex(v.top_hex))), v.top);
  assert.equal(top.level, 1);
  assert.equal(top.size, 1025 * 4096 + 100);
  assert.ok(fileIsTop(top));
  assert.equal(top.hashes.length, 2);
});

test('chunks of byte ranges: those tree.Chunks lists', async () => {
  for (const r of v.ranges) {
    const what = `[${r.offset}, +${r.length})`;
    if (r.error) {
      assert.equal(await code(listChunks(top, r.offset, r.length, getNode)), 'range', what);
      continue;
    }
    const got = await listChunks(top, r.offset, r.length, getNode);
    assert.equal(got.length, r.count, what);
    assert.equal(digest(got), r.digest, what);
    if (r.chunks) assert.deepEqual(got.map((c) => ({ offset: c.offset, size: c.size, hash: formatHash(c.hash) })), r.chunks, what);
  }
});

test('only the index nodes a range needs are fetched', async () => {
  fetched = 0;
  await listChunks(top, 0, 10, getNode);
  assert.equal(fetched, 1);
  fetched = 0;
  await listChunks(top, top.size - 1, 1, getNode);
  assert.equal(fetched, 1);
  fetched = 0;
  for await (const c of fileChunks(top, 0, Infinity, getNode)) {
    assert.equal(c.offset, 0);
    break; // a consumer may stop early
  }
  assert.equal(fetched, 1);
});

test('index nodes that do not hash to their link are refused', async () => {
  const swapped = async (h) => {
    const [a, b] = [...index.keys()];
    return index.get(formatHash(h) === a ? b : a);
  };
  assert.equal(await code(listChunks(top, 0, 10, swapped)), 'bad_block');
  const flipped = async (h) => {
    const b = index.get(formatHash(h)).slice();
    b[100] ^= 1;
    return b;
  };
  assert.equal(await code(listChunks(top, 0, 10, flipped)), 'bad_block');
  assert.equal(await code(listChunks(top, 0, 10, async () => undefined)), 'bad_block');
});

// A test-only encoder for file nodes.
function fileNode(level, cs, size, hashes) {
  const uv = (x) => {
    const o = [];
    while (x >= 128) {
      o.push((x % 128) | 128);
      x = Math.floor(x / 128);
    }
    o.push(x);
    return o;
  };
  const head = [3, 1, level, ...uv(cs), ...uv(size), ...uv(hashes.length)];
  const b = new Uint8Array(head.length + 32 * hashes.length);
  b.set(head);
  hashes.forEach((h, i) => b.set(h, head.length + 32 * i));
  return b;
}

test('index nodes that hash right but do not fit their parent are refused', async () => {
  const chunk = blake3(Uint8Array.of(1));
  const cs = 4096;
  const size = 1024 * cs + 1;
  const cases = [
    ['wrong size', fileNode(0, cs, cs, [chunk])],
    ['wrong level', fileNode(1, cs, 1024 * cs, [chunk])],
    ['wrong chunk size', fileNode(0, 8192, 1024 * cs, new Array(512).fill(chunk))],
  ];
  for (const [what, child] of cases) {
    const last = fileNode(0, cs, 1, [chunk]);
    const parent = decodeNode(fileNode(1, cs, size, [blake3(child), blake3(last)]));
    const nodes = new Map([[formatHash(blake3(child)), child], [formatHash(blake3(last)), last]]);
    const got = await code(listChunks(parent, 0, 1, async (h) => nodes.get(formatHash(h))));
    assert.equal(got, 'malformed', what);
  }
  // and the same shape done right
  const good = fileNode(0, cs, 1024 * cs, new Array(1024).fill(chunk));
  const last = fileNode(0, cs, 1, [chunk]);
  const parent = decodeNode(fileNode(1, cs, size, [blake3(good), blake3(last)]));
  const nodes = new Map([[formatHash(blake3(good)), good], [formatHash(blake3(last)), last]]);
  const all = await listChunks(parent, 0, Infinity, async (h) => nodes.get(formatHash(h)));
  assert.equal(all.length, 1025);
  assert.deepEqual(all[1024], { offset: 1024 * cs, size: 1, hash: chunk });
});

test('a level-0 file: chunks without fetching, and inline checks', async () => {
  const data = new Uint8Array(10000).map((_, i) => i % 251);
  const hashes = [0, 1, 2].map((i) => blake3(data.subarray(i * 4096, (i + 1) * 4096)));
  const f = decodeNode(fileNode(0, 4096, data.length, hashes));
  const none = async () => {
    throw new Error('no fetch expected');
  };
  const cs = await listChunks(f, 5000, 4000, none);
  assert.deepEqual(cs.map((c) => [c.offset, c.size]), [[4096, 4096], [8192, 10000 - 8192]]);
  assert.equal((await listChunks(f, 10000, 5, none)).length, 0);
  assert.equal(await code(listChunks(f, 10001, 5, none)), 'range');
  checkInline(f, data);
  assert.throws(() => checkInline(f, data.subarray(0, 9999)), (e) => e.code === 'bad_inline');
  const empty = decodeNode(fileNode(0, 4096, 0, []));
  checkInline(empty, new Uint8Array(0));
  assert.equal((await listChunks(empty, 0, 100, none)).length, 0);
});
