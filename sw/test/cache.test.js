// The block cache (sw/js/cache.js): eviction by size in LRU order,
// rebuilding its index from the store, refusing corrupt entries; and the
// local lookup over cached nodes, against the lookups of
// tree/testdata/vectors.json (the whole tree's nodes, by hash).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BlockCache, MemoryStore, localLookup, DEFAULT_CACHE_BYTES } from '../js/cache.js';
import { blake3, toHex, fromHex, parseHash, formatHash, verifyProof } from '../js/grits.js';

const vectors = JSON.parse(readFileSync(new URL('../../tree/testdata/vectors.json', import.meta.url), 'utf8'));

function blockOf(n, seed) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17) & 0xff;
  return { hash: blake3(b), bytes: b };
}

test('put and get; a miss is null; the default limit is 256 MiB', async () => {
  const c = new BlockCache(new MemoryStore());
  assert.equal(c.maxBytes, DEFAULT_CACHE_BYTES);
  assert.equal(DEFAULT_CACHE_BYTES, 256 << 20);
  const x = blockOf(1000, 1);
  assert.equal(await c.get(x.hash), null);
  assert.equal(await c.put(x.hash, x.bytes), true);
  assert.deepEqual(await c.get(x.hash), x.bytes);
  assert.deepEqual(await c.get(toHex(x.hash)), x.bytes, 'by hex too');
  assert.equal(c.bytes, 1000);
  assert.equal(await c.put(x.hash, x.bytes), false, 'stored once');
  assert.equal(c.bytes, 1000);
  assert.deepEqual(c.stats.hits, 2);
  assert.deepEqual(c.stats.misses, 1);
});

test('eviction by size, least recently used first', async () => {
  const store = new MemoryStore();
  const c = new BlockCache(store, { maxBytes: 10_000 });
  const bs = [0, 1, 2, 3].map((i) => blockOf(3000, i));
  for (const b of bs.slice(0, 3)) await c.put(b.hash, b.bytes); // 9000 bytes
  assert.equal(c.bytes, 9000);
  // Use block 0: block 1 is now the least recently used.
  assert.ok(await c.get(bs[0].hash));
  await c.put(bs[3].hash, bs[3].bytes);
  assert.equal(c.bytes, 9000);
  assert.equal(c.has(bs[1].hash), false, 'LRU evicted');
  assert.equal(store.m.has(toHex(bs[1].hash)), false, 'and deleted from the store');
  assert.deepEqual(c.keys(), [bs[2], bs[0], bs[3]].map((b) => toHex(b.hash)), 'LRU order');
  // A big block evicts as many as it needs.
  const big = blockOf(7000, 9);
  await c.put(big.hash, big.bytes);
  assert.deepEqual(c.keys(), [bs[3], big].map((b) => toHex(b.hash)));
  assert.ok(c.bytes <= c.maxBytes);
  assert.equal(c.stats.evicted, 3);
  // One larger than the whole cache is not kept and evicts nothing.
  const huge = blockOf(10_001, 3);
  assert.equal(await c.put(huge.hash, huge.bytes), false);
  assert.equal(c.keys().length, 2);
});

test('the index is rebuilt from the store, oldest first, and trimmed to a smaller limit', async () => {
  const store = new MemoryStore();
  const c1 = new BlockCache(store, { maxBytes: 100_000 });
  const bs = [0, 1, 2, 3, 4].map((i) => blockOf(2000 + i, i));
  for (const b of bs) await c1.put(b.hash, b.bytes);
  // A new worker: same store, fresh index.
  const c2 = new BlockCache(store, { maxBytes: 100_000 });
  await c2.init();
  assert.equal(c2.bytes, bs.reduce((n, b) => n + b.bytes.length, 0));
  assert.deepEqual(c2.keys(), bs.map((b) => toHex(b.hash)));
  assert.deepEqual(await c2.get(bs[2].hash), bs[2].bytes);
  // A smaller limit drops the oldest at start.
  const c3 = new BlockCache(store, { maxBytes: 6100 });
  await c3.init();
  assert.deepEqual(c3.keys(), bs.slice(2).map((b) => toHex(b.hash)));
  assert.equal(store.m.size, 3);
});

test('a corrupt cached block is refused, deleted and counted', async () => {
  const store = new MemoryStore();
  const c = new BlockCache(store);
  const x = blockOf(5000, 7);
  await c.put(x.hash, x.bytes);
  store.m.get(toHex(x.hash))[100] ^= 1; // storage rot
  assert.equal(await c.get(x.hash), null);
  assert.equal(c.stats.corrupt, 1);
  assert.equal(c.has(x.hash), false);
  assert.equal(store.m.has(toHex(x.hash)), false);
  assert.equal(c.bytes, 0);
  // Bytes stored under another block's name are just as corrupt.
  const y = blockOf(100, 8);
  store.m.set(toHex(y.hash), x.bytes);
  const c2 = new BlockCache(store);
  assert.equal(await c2.get(y.hash), null);
  assert.equal(c2.stats.corrupt, 1);
});

test('a store that fails is an empty cache, not an error', async () => {
  const bad = {
    list: async () => { throw new Error('no'); },
    get: async () => { throw new Error('no'); },
    put: async () => { throw new Error('quota'); },
    delete: async () => { throw new Error('no'); },
  };
  const c = new BlockCache(bad);
  const x = blockOf(10, 1);
  assert.equal(await c.put(x.hash, x.bytes), false);
  assert.equal(await c.get(x.hash), null);
  assert.equal(c.bytes, 0);
});

// ---- local lookups over cached nodes ----

const tree = parseHash(vectors.root);
const STATUS = { found: 'found', absent: 'absent', not_a_directory: 'notdir', symlink_in_path: 'symlink' };

async function treeCache() {
  const c = new BlockCache(new MemoryStore());
  for (const n of vectors.nodes) await c.put(parseHash(n.hash), fromHex(n.hex));
  return c;
}

test('local lookup from cached nodes gives the verified answer for every vector path', async () => {
  const c = await treeCache();
  assert.equal(vectors.lookups.length, 18);
  for (const l of vectors.lookups) {
    const res = await localLookup(tree, l.path, (h) => c.get(h));
    assert.ok(res, `${l.path}: a miss with every node cached`);
    assert.equal(res.status, STATUS[l.status], l.path);
    assert.equal(res.depth, Number(l.depth), l.path);
    assert.equal(res.inline, null);
    // Exactly what the volunteer's proof proves.
    const want = verifyProof(tree, l.path, fromHex(l.proof_hex));
    assert.equal(res.status, want.status);
    if (want.entry) {
      assert.equal(res.entry.kind, want.entry.kind, l.path);
      if (want.entry.hash) assert.equal(formatHash(res.entry.hash), formatHash(want.entry.hash), l.path);
    }
    if (l.status === 'found' && l.kind !== 'symlink') {
      assert.equal(formatHash(res.entry.hash), l.hash, l.path);
      assert.equal(res.node.type === 'file' ? 'file' : 'dir', l.kind, l.path);
    }
  }
});

test('local lookup misses (null) when a node on the path is not cached, and only then', async () => {
  const nodes = new Map(vectors.nodes.map((n) => [n.hash.slice(3), fromHex(n.hex)]));
  const get = (missing) => async (h) => (toHex(h) === missing ? null : nodes.get(toHex(h)) || null);
  const l = vectors.lookups.find((x) => x.path === 'docs/guide/intro.md');
  const proof = verifyProof(tree, l.path, fromHex(l.proof_hex));
  assert.equal(proof.status, 'found');
  // Every node of the path's proof is needed...
  const proofNodes = (await import('../js/grits.js')).decodeProof(fromHex(l.proof_hex)).nodes;
  assert.ok(proofNodes.length >= 3); // root, docs, guide: intro.md is a direct file, no node of its own
  for (const n of proofNodes) {
    assert.equal(await localLookup(tree, l.path, get(toHex(blake3(n)))), null, 'missing node: ask a volunteer');
  }
  // ... and no other: a node elsewhere in the tree may be gone.
  const other = vectors.nodes.find((n) => !proofNodes.some((p) => toHex(blake3(p)) === n.hash.slice(3)));
  const res = await localLookup(tree, l.path, get(other.hash.slice(3)));
  assert.equal(res.status, 'found');
  // The top file node comes with the answer: its chunks are next.
  assert.equal(res.node.type, 'file');
  assert.equal(res.node.size, Number(l.size));
});

test('local lookup with only a proof\'s nodes cached (what a volunteer lookup leaves behind)', async () => {
  const { decodeProof } = await import('../js/grits.js');
  const c = new BlockCache(new MemoryStore());
  const l = vectors.lookups.find((x) => x.path === 'many/f-123.txt');
  for (const n of decodeProof(fromHex(l.proof_hex)).nodes) await c.put(blake3(n), n);
  const res = await localLookup(tree, l.path, (h) => c.get(h));
  assert.equal(res.status, 'found');
  assert.equal(formatHash(res.entry.hash), l.hash);
  // A sibling shares the directory's nodes but not its own: a miss.
  assert.equal(await localLookup(tree, 'many/f-000.txt', (h) => c.get(h)), null);
  // Another tree (a new root) whose top node is not cached: a miss.
  assert.equal(await localLookup(blake3(new Uint8Array([1])), l.path, (h) => c.get(h)), null);
});

test('local lookup never trusts a cached node that does not match: corrupt entries make a miss', async () => {
  const store = new MemoryStore();
  const c = new BlockCache(store);
  for (const n of vectors.nodes) await c.put(parseHash(n.hash), fromHex(n.hex));
  store.m.get(tree.reduce((s, b) => s + b.toString(16).padStart(2, '0'), ''))[5] ^= 0x10;
  assert.equal(await localLookup(tree, 'index.html', (h) => c.get(h)), null);
  assert.equal(c.stats.corrupt, 1);
});

test('local lookup refuses invalid paths as verifyProof does', async () => {
  const c = await treeCache();
  await assert.rejects(localLookup(tree, 'a/../b', (h) => c.get(h)), { code: 'bad_name' });
});
