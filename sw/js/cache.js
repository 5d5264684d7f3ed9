// A bounded, content-addressed cache of verified blocks and tree nodes
// for the grits service worker, and the local lookup that walks it.
//
// Pure module: the storage is a tiny interface (below) so Node tests run
// the cache, its eviction and the local walk against MemoryStore; the
// worker uses Cache Storage (CacheStorageStore in grits-sw.js).
//
// Store interface (all async):
//   list()          -> [{key, size}] every entry, oldest first
//   get(key, size)  -> Uint8Array or null
//   put(key, bytes) -> undefined
//   delete(key, size) -> undefined
// Keys are lower-case hex hashes. size is passed back to get/delete
// because a store may need it to name the entry.
//
// Trust: what the cache holds was verified before it was put, but
// storage can rot or be tampered with, so get() hashes the bytes again
// and discards an entry that no longer matches its name. A small
// in-memory layer (opts.memoryBytes) keeps recent blocks as they were
// verified: the worker's own memory, no store read and no re-hash, for
// the blocks a page asks for again within the worker's life.

import { blake3, toHex, bytesEqual, fromHex } from './blake3.js';
import { decodeNode, findEntry, nameHash, nibble, shardChild, parsePath, validName, verifyProof, parseHash, GritsError } from './grits.js';

export const DEFAULT_CACHE_BYTES = 256 << 20;

/** MemoryStore is the Store interface over a Map (tests). */
export class MemoryStore {
  constructor() {
    this.m = new Map();
  }

  async list() {
    return [...this.m].map(([key, b]) => ({ key, size: b.length }));
  }

  async get(key) {
    const b = this.m.get(key);
    return b ? b.slice() : null;
  }

  async put(key, bytes) {
    this.m.delete(key);
    this.m.set(key, bytes.slice());
  }

  async delete(key) {
    this.m.delete(key);
  }
}

/**
 * BlockCache keeps verified blocks by hash within maxBytes, evicting the
 * least recently used first. The index (hash -> size, in LRU order: a
 * Map's insertion order, moved to the end on every hit) lives in memory
 * and is rebuilt from the store by init(); after a restart the order is
 * the store's, oldest stored first.
 */
export class BlockCache {
  constructor(store, opts = {}) {
    this.store = store;
    this.maxBytes = opts.maxBytes > 0 ? opts.maxBytes : DEFAULT_CACHE_BYTES;
    this.index = new Map(); // hex -> size
    this.bytes = 0;
    this.stats = { hits: 0, misses: 0, corrupt: 0, evicted: 0 };
    this.ready = null;
    /** @type {Promise<unknown>} */
    this.queue = Promise.resolve(); // serialises puts and evictions
    this.memoryMax = opts.memoryBytes > 0 ? opts.memoryBytes : 0;
    /** @type {Map<string, Uint8Array>} */
    this.hot = new Map(); // hex -> verified bytes, least recently used first
    this.hotBytes = 0;
  }

  // remember keeps verified bytes in memory, within memoryMax.
  remember(key, bytes) {
    if (bytes.length > this.memoryMax / 4) return;
    const old = this.hot.get(key);
    if (old) {
      this.hot.delete(key);
      this.hotBytes -= old.length;
    }
    this.hot.set(key, bytes);
    this.hotBytes += bytes.length;
    for (const [k, b] of this.hot) {
      if (this.hotBytes <= this.memoryMax) break;
      this.hot.delete(k);
      this.hotBytes -= b.length;
    }
  }

  /** init rebuilds the index from the store (once) and trims it to maxBytes. */
  init() {
    if (!this.ready) {
      this.ready = (async () => {
        try {
          for (const { key, size } of await this.store.list()) {
            if (!this.index.has(key)) this.bytes += size;
            else this.bytes += size - this.index.get(key);
            this.index.delete(key);
            this.index.set(key, size);
          }
        } catch {
          // An unreadable store is an empty cache.
        }
        await this.evict(0);
      })();
    }
    return this.ready;
  }

  has(hash) {
    return this.index.has(typeof hash === 'string' ? hash : toHex(hash));
  }

  /**
   * get returns the bytes stored under hash if they still hash to it,
   * else null (a corrupt entry is deleted). A hit becomes the most
   * recently used.
   */
  async get(hash) {
    const key = typeof hash === 'string' ? hash : toHex(hash);
    const mem = this.hot.get(key);
    if (mem) {
      this.hot.delete(key);
      this.hot.set(key, mem);
      const size = this.index.get(key);
      if (size !== undefined) {
        this.index.delete(key);
        this.index.set(key, size);
      }
      this.stats.hits++;
      return mem;
    }
    await this.init();
    const size = this.index.get(key);
    if (size === undefined) {
      this.stats.misses++;
      return null;
    }
    let b = null;
    try {
      b = await this.store.get(key, size);
    } catch {
      b = null;
    }
    if (!b || !bytesEqual(blake3(b), typeof hash === 'string' ? fromHex(hash) : hash)) {
      if (b) this.stats.corrupt++;
      else this.stats.misses++;
      this.forget(key);
      return null;
    }
    this.index.delete(key);
    this.index.set(key, size);
    this.stats.hits++;
    this.remember(key, b);
    return b;
  }

  forget(key) {
    const mem = this.hot.get(key);
    if (mem) {
      this.hot.delete(key);
      this.hotBytes -= mem.length;
    }
    const size = this.index.get(key);
    if (size === undefined) return;
    this.index.delete(key);
    this.bytes -= size;
    this.store.delete(key, size).catch(() => {});
  }

  /**
   * put stores verified bytes under their hash, evicting the least
   * recently used entries to stay within maxBytes. The caller vouches
   * that bytes hash to hash. Blocks larger than the whole cache are not
   * kept. Resolves when stored (errors are swallowed: a cache).
   */
  put(hash, bytes) {
    const key = typeof hash === 'string' ? hash : toHex(hash);
    this.remember(key, bytes);
    if (bytes.length > this.maxBytes) return Promise.resolve(false);
    this.queue = this.queue.then(async () => {
      await this.init();
      if (this.index.has(key)) {
        const size = this.index.get(key);
        this.index.delete(key);
        this.index.set(key, size);
        return false;
      }
      await this.evict(bytes.length);
      try {
        await this.store.put(key, bytes);
      } catch {
        return false;
      }
      this.index.set(key, bytes.length);
      this.bytes += bytes.length;
      return true;
    });
    return this.queue;
  }

  // evict removes least recently used entries until `room` more bytes fit.
  async evict(room) {
    for (const [key, size] of this.index) {
      if (this.bytes + room <= this.maxBytes) break;
      this.index.delete(key);
      this.bytes -= size;
      this.stats.evicted++;
      try {
        await this.store.delete(key, size);
      } catch {
        // gone or not: the index no longer counts it
      }
    }
  }

  /** keys lists the cached hashes, least recently used first. */
  keys() {
    return [...this.index.keys()];
  }
}

/**
 * localLookup resolves a path in a tree from cached nodes only, with no
 * network: it walks from treeHash as a volunteer would to build a
 * proof, fetching each node with `await getNode(hash)` (bytes already
 * checked against the hash, or null when not held), then verifies that
 * proof with verifyProof, so the answer is exactly what a verified
 * lookup would give: {status, depth, entry, node, root: null, inline: null}.
 * Returns null if a node on the way is missing (ask a volunteer).
 * Throws GritsError('bad_name') for an invalid path, like verifyProof.
 */
export async function localLookup(treeHash, path, getNode) {
  if (typeof treeHash === 'string') treeHash = parseHash(treeHash);
  const names = typeof path === 'string' ? parsePath(path) : path;
  const nameBytes = names.map(validName);
  const nodes = [];
  const load = async (h) => {
    const raw = await getNode(h);
    if (!raw) return null;
    nodes.push(raw);
    return decodeNode(raw);
  };
  // findIn walks one directory (dir node or shard tree) to a name's entry.
  const findIn = async (top, nb) => {
    const nh = nameHash(nb);
    let h = top;
    for (let depth = 0; ; depth++) {
      const n = await load(h);
      if (n === null) return { miss: true };
      if (n.type === 'dir') return { entry: findEntry(n, nb) };
      if (n.type !== 'shard') return { entry: null }; // malformed: verifyProof will say so
      const c = shardChild(n, nibble(nh, depth));
      if (c === null) return { entry: null };
      h = c.hash;
    }
  };
  try {
    let dir = treeHash;
    let done = false;
    for (let c = 0; c < names.length && !done; c++) {
      const r = await findIn(dir, nameBytes[c]);
      if (r.miss) return null;
      const e = r.entry;
      if (e === null) break; // absent
      if (c === names.length - 1) {
        // A direct file's hash is its chunk: no node to load.
        if ((e.kind === 'file' && !e.direct) || e.kind === 'dir') {
          if ((await load(e.hash)) === null) return null;
        }
        done = true;
      } else if (e.kind !== 'dir') {
        break; // notdir or symlink: nothing more in the proof
      } else {
        dir = e.hash;
      }
    }
    if (names.length === 0 && (await load(treeHash)) === null) return null;
  } catch (e) {
    if (e instanceof GritsError) return null; // a node that does not decode: let a volunteer answer
    throw e;
  }
  let res;
  try {
    res = verifyProof(treeHash, names, { nodes });
  } catch (e) {
    if (e instanceof GritsError && e.code === 'bad_proof') return null;
    throw e;
  }
  return { ...res, root: null, inline: null };
}
