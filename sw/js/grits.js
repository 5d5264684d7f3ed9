// Verification core of the grits service worker: the formats of
// docs/design.md (tree nodes, proofs, signed roots) and the LookupResult
// frame of proto/SPEC.md, decoded with the same strictness as the Go code
// (tree/node.go, tree/proof.go, tree/root.go, internal/wire, proto), so
// that the Go and JavaScript sides never read one byte string two ways.
//
// Trust comes only from verification, in this order: a root by its
// ed25519 signature with the site key (verifyRoot, WebCrypto); a tree hash
// by the verified root that names it; a path's status and target by
// verifyProof against that tree hash; a block by its BLAKE3 hash; inline
// data by the file node's chunk hashes (checkInline).
//
// Every failure throws a GritsError whose `code` says what kind it is.
//
// Integers: 64-bit fields of tree nodes (entry and file sizes, shard
// counts) are Numbers when at most Number.MAX_SAFE_INTEGER and BigInts
// above it (so every node Go accepts decodes, exactly); mtimes are BigInt
// nanoseconds; a Root's seq, time and expires are BigInts.
//
// Decoded values alias the input bytes (names, hashes, proof nodes are
// subarrays); do not modify an input after decoding it.
//
// Plain ES module: no Node APIs, only TextEncoder/TextDecoder and
// crypto.subtle, which service workers have.

import { blake3, bytesEqual, formatHash, parseHash, toHex, fromHex, HASH_SIZE } from './blake3.js';

// ---- constants (tree/node.go, tree/name.go, tree/proof.go, tree/root.go, proto) ----

export const FORMAT_VERSION = 0x01;
/** Directory nodes that may hold direct file entries (tree.DirFormatVersion). */
export const DIR_FORMAT_VERSION = 0x02;
export const TAG_DIR = 0x01;
export const TAG_SHARD = 0x02;
export const TAG_FILE = 0x03;
export const MAX_NODE_SIZE = 64 << 10;
export const DIR_LEAF_MAX = 8 << 10;
export const SHARD_FANOUT = 16;
export const MAX_SHARD_DEPTH = 2 * HASH_SIZE; // 64
export const FILE_FANOUT = 1024;
export const MAX_FILE_LEVEL = 4;
export const MIN_CHUNK_SIZE = 4 << 10;
export const MAX_CHUNK_SIZE = 1 << 20;
export const MAX_SYMLINK_LEN = 4096;
export const MAX_MEDIA_TYPE_LEN = 255;
export const MAX_NAME_LEN = 255;
export const MAX_PATH_LEN = 4096;
export const MAX_PATH_DEPTH = 256;
export const MAX_PROOF_NODES = 2048;
export const MAX_PROOF_SIZE = 8 << 20;

export const TAG_ROOT = 0x52;
export const ROOT_VERSION = 0x01;
export const ROOT_SIZE = 186;
export const MAX_CLOCK_SKEW_SECONDS = 300;
export const ROOT_SIG_CONTEXT = 'grits-root-v1\x00';

export const TYPE_LOOKUP_RESULT = 0x43;
export const TYPE_ERROR = 0x7f;
export const INLINE_MAX = 64 << 10;
export const MAX_ERROR_MESSAGE = 512;
export const MAX_LOOKUP_RESULT_PAYLOAD = 1 + 1 + ROOT_SIZE + 10 + MAX_PROOF_SIZE + 1 + 10 + INLINE_MAX;
export const MAX_ERROR_PAYLOAD = 2 + 2 + MAX_ERROR_MESSAGE;

/** Statuses, as verifyProof returns them; index = wire value (proto/SPEC.md 4.11). */
export const STATUS = Object.freeze({ FOUND: 'found', ABSENT: 'absent', NOT_DIR: 'notdir', SYMLINK: 'symlink' });
const STATUS_FROM_WIRE = [null, 'found', 'absent', 'notdir', 'symlink'];

export { blake3, formatHash, parseHash, toHex, fromHex, bytesEqual };

/**
 * GritsError is every refusal. code is one of:
 *   malformed        a tree node that is not a valid canonical encoding
 *   bad_proof        a proof that proves nothing about the tree and path
 *   bad_name         an invalid name or path
 *   malformed_root   a root record that is not 186 well-formed bytes, or has nonsensical fields
 *   wrong_key, bad_signature, expired, from_future      root verification
 *   rollback, equivocation, same_root                   checkSuccessor
 *   malformed_frame, unknown_type, unexpected_type, frame_too_large   frame decoding
 *   unsupported      valid but not handled here (zstd inline data, a file beyond 2^53 bytes, no Ed25519 in WebCrypto)
 *   remote           the server answered with an Error frame (remoteCode, remoteMessage)
 *   status_mismatch, missing_root, bad_inline            a LookupResult that does not check out
 *   bad_block        a fetched node whose bytes do not hash to its name
 *   invalid_key, invalid_hash, range                     bad arguments
 */
export class GritsError extends Error {
  constructor(code, message, extra) {
    super(message);
    this.name = 'GritsError';
    this.code = code;
    if (extra) Object.assign(this, extra);
  }
}

function fail(code, msg) {
  throw new GritsError(code, msg);
}

// ---- bytes and UTF-8 ----

const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Lossy = new TextDecoder('utf-8', { ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Byte-wise comparison (Go's string order): <0, 0, >0. */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

function asHash(h, what) {
  if (typeof h === 'string') {
    try {
      return parseHash(h);
    } catch (e) {
      fail('invalid_hash', `${what}: ${e.message}`);
    }
  }
  if (h instanceof Uint8Array && h.length === HASH_SIZE) return h;
  fail('invalid_hash', `${what}: want 32 bytes or "b3-<hex>"`);
}

function isZero(b) {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

// ---- canonical decoding primitives (internal/wire) ----

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

class Reader {
  constructor(b, code) {
    this.b = b;
    this.off = 0;
    this.code = code;
  }

  fail(msg) {
    throw new GritsError(this.code, `at byte ${this.off}: ${msg}`);
  }

  remaining() {
    return this.b.length - this.off;
  }

  u8() {
    if (this.off >= this.b.length) this.fail('truncated');
    return this.b[this.off++];
  }

  u16() {
    if (this.remaining() < 2) this.fail('truncated');
    const v = (this.b[this.off] << 8) | this.b[this.off + 1];
    this.off += 2;
    return v;
  }

  // uvarint reads a LEB128 uint64 as Go's binary.Uvarint does and refuses
  // overlong encodings (a final 0x00 byte). The value is a Number when it
  // is at most 2^53-1, otherwise a BigInt.
  uvarint() {
    const b = this.b;
    const start = this.off;
    for (let i = 0; ; i++) {
      const p = start + i;
      if (p >= b.length) this.fail('truncated varint');
      if (i === 10) this.fail('varint overflows 64 bits');
      const c = b[p];
      if (c < 0x80) {
        if (i === 9 && c > 1) this.fail('varint overflows 64 bits');
        if (i > 0 && c === 0) this.fail('non-minimal varint');
        this.off = p + 1;
        if (i < 7) {
          // at most 49 bits: exact in a Number
          let x = 0;
          for (let k = i; k >= 0; k--) x = x * 128 + (b[start + k] & 0x7f);
          return x;
        }
        let x = 0n;
        for (let k = i; k >= 0; k--) x = (x << 7n) | BigInt(b[start + k] & 0x7f);
        return x <= SAFE ? Number(x) : x;
      }
    }
  }

  // varintBig reads a zig-zag int64 (binary.AppendVarint) as a BigInt.
  varintBig() {
    const u = BigInt(this.uvarint());
    let x = u >> 1n;
    if (u & 1n) x = ~x;
    return x;
  }

  bytes(n) {
    if (n > this.remaining()) this.fail(`truncated: need ${n} bytes, have ${this.remaining()}`);
    n = Number(n);
    const s = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return s;
  }

  hash() {
    return this.bytes(HASH_SIZE);
  }

  done() {
    if (this.remaining() !== 0) this.fail(`${this.remaining()} trailing bytes`);
  }
}

// ---- names and paths (tree/name.go) ----

function nameError(name, reason) {
  const shown = name.length > 64 ? name.slice(0, 64) + '...' : name;
  return new GritsError('bad_name', `invalid name ${JSON.stringify(shown)}: ${reason}`);
}

// A string is valid UTF-16 (no lone surrogates) exactly when it encodes
// to valid UTF-8; a lone surrogate would otherwise become U+FFFD.
function wellFormed(s) {
  if (typeof s.isWellFormed === 'function') return s.isWellFormed();
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/**
 * validName checks one path component as tree.ValidName does and returns
 * its UTF-8 bytes: 1..255 bytes of valid UTF-8, no NUL or '/', not "." or "..".
 */
export function validName(name) {
  if (typeof name !== 'string') throw nameError(String(name), 'not a string');
  if (name === '') throw nameError(name, 'empty');
  if (name === '.' || name === '..') throw nameError(name, 'dot names are not allowed');
  if (!wellFormed(name)) throw nameError(name, 'not valid UTF-8');
  const b = utf8Encoder.encode(name);
  if (b.length > MAX_NAME_LEN) throw nameError(name, `longer than ${MAX_NAME_LEN} bytes`);
  if (name.includes('\0')) throw nameError(name, 'contains NUL');
  if (name.includes('/')) throw nameError(name, "contains '/'");
  return b;
}

/**
 * parsePath splits a slash-separated path as tree.ParsePath does: one
 * leading and one trailing '/' are ignored; every component must be a
 * valid name ("a//b", "a/../b", "./a" are refused, never cleaned); at most
 * 4096 bytes and 256 components. "" and "/" are the root: [].
 */
export function parsePath(s) {
  if (typeof s !== 'string') throw nameError(String(s), 'path is not a string');
  if (!wellFormed(s)) throw nameError(s, 'not valid UTF-8');
  if (utf8Encoder.encode(s).length > MAX_PATH_LEN) throw nameError(s, `path longer than ${MAX_PATH_LEN} bytes`);
  const orig = s;
  if (s.startsWith('/')) s = s.slice(1);
  if (s.endsWith('/')) s = s.slice(0, -1);
  if (s === '') {
    if (orig.length > 1) throw nameError(orig, 'empty component');
    return [];
  }
  const parts = s.split('/');
  if (parts.length > MAX_PATH_DEPTH) throw nameError(s, `more than ${MAX_PATH_DEPTH} components`);
  for (const p of parts) validName(p);
  return parts;
}

// validNameBytes is ValidName for a name read from a node; it returns
// the name as a string.
function validNameBytes(b) {
  if (b.length === 0) throw new Error('empty name');
  if (b.length > MAX_NAME_LEN) throw new Error(`name longer than ${MAX_NAME_LEN} bytes`);
  if ((b.length === 1 && b[0] === 0x2e) || (b.length === 2 && b[0] === 0x2e && b[1] === 0x2e)) {
    throw new Error('dot names are not allowed');
  }
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0) throw new Error('name contains NUL');
    if (b[i] === 0x2f) throw new Error("name contains '/'");
  }
  try {
    return utf8Strict.decode(b);
  } catch {
    throw new Error('name is not valid UTF-8');
  }
}

// ---- tree nodes (tree/node.go) ----

// A media type in its one stored spelling (tree.ValidMediaType): a
// lower-case type and subtype, then "; name=value" parameters sorted by
// lower-case name, each once; values are tokens.
const LOWER_TOKEN = "[a-z0-9!#$%&'*+.^_`|~-]+";
const MEDIA_TYPE_RE = new RegExp(`^${LOWER_TOKEN}/${LOWER_TOKEN}((?:; ${LOWER_TOKEN}=[A-Za-z0-9!#$%&'*+.^_\`|~-]+)*)$`);

/** validMediaType reports whether s is a media type as tree.ValidMediaType accepts it. */
export function validMediaType(s) {
  if (typeof s !== 'string' || s.length === 0 || s.length > MAX_MEDIA_TYPE_LEN) return false;
  const m = MEDIA_TYPE_RE.exec(s);
  if (!m) return false;
  let last = '';
  for (const p of m[1].split('; ').slice(1)) {
    const name = p.slice(0, p.indexOf('='));
    if (name <= last) return false;
    last = name;
  }
  return true;
}

// mtimes must lie in the years 1678..2261 (UTC) and not be the epoch.
const MTIME_MIN_NS = BigInt(Date.UTC(1678, 0, 1)) * 1000000n;
const MTIME_END_NS = BigInt(Date.UTC(2262, 0, 1)) * 1000000n;

const KINDS = [null, 'file', 'dir', 'symlink'];

function readEntry(r, version) {
  const n = r.uvarint();
  if (n > MAX_NAME_LEN) r.fail(`name length ${n} exceeds ${MAX_NAME_LEN}`);
  const nameBytes = r.bytes(n);
  const kindByte = r.u8();
  const flags = r.u8();
  if ((flags & ~0x07) || (version < DIR_FORMAT_VERSION && (flags & 0x04))) {
    r.fail(`unknown entry flags 0x${flags.toString(16)} in a version ${version} directory`);
  }
  const direct = (flags & 0x04) !== 0;
  const mode = r.uvarint();
  if (mode > 0o777) r.fail(`mode ${mode.toString(8)} exceeds 777`);
  const size = r.uvarint();
  let mtimeNs = null;
  if (flags & 0x01) mtimeNs = r.varintBig();
  let type = null;
  if (flags & 0x02) {
    const tl = r.uvarint();
    if (tl === 0 || tl > MAX_MEDIA_TYPE_LEN) r.fail(`media type length ${tl} outside 1..${MAX_MEDIA_TYPE_LEN}`);
    type = String.fromCharCode(...r.bytes(tl));
  }
  let hash = null;
  let targetBytes = null;
  if (kindByte === 1 || kindByte === 2) {
    hash = r.hash();
  } else if (kindByte === 3) {
    const tl = r.uvarint();
    if (tl > MAX_SYMLINK_LEN) r.fail(`symlink target length ${tl} exceeds ${MAX_SYMLINK_LEN}`);
    targetBytes = r.bytes(tl);
  }
  // Entry.validate
  let name;
  try {
    name = validNameBytes(nameBytes);
  } catch (e) {
    r.fail(e.message);
  }
  if (mtimeNs !== null && (mtimeNs < MTIME_MIN_NS || mtimeNs >= MTIME_END_NS || mtimeNs === 0n)) {
    r.fail(`entry ${JSON.stringify(name)}: mtime ${mtimeNs} cannot be stored (range 1678..2261, not the epoch)`);
  }
  if (type !== null) {
    if (kindByte !== 1) r.fail(`entry ${JSON.stringify(name)}: a ${KINDS[kindByte] || 'Kind(' + kindByte + ')'} with a media type`);
    if (!validMediaType(type)) r.fail(`entry ${JSON.stringify(name)}: media type ${JSON.stringify(type)} is not in its one valid spelling`);
  }
  const kind = KINDS[kindByte] || null;
  if (direct && (kindByte !== 1 || size === 0 || size > MAX_CHUNK_SIZE)) {
    r.fail(`entry ${JSON.stringify(name)}: a direct ${KINDS[kindByte] || 'Kind(' + kindByte + ')'} of ${size} bytes (want a file of 1..${MAX_CHUNK_SIZE})`);
  }
  if (kind === null) r.fail(`entry ${JSON.stringify(name)}: unknown kind ${kindByte}`);
  if (kind === 'symlink') {
    if (targetBytes.length === 0 || targetBytes.indexOf(0) >= 0) {
      r.fail(`entry ${JSON.stringify(name)}: symlink target must be 1..${MAX_SYMLINK_LEN} bytes without NUL`);
    }
    if (size !== targetBytes.length) r.fail(`entry ${JSON.stringify(name)}: symlink size ${size} != target length ${targetBytes.length}`);
  }
  return {
    name,
    nameBytes,
    kind,
    mode,
    size,
    mtimeNs,
    type,
    hash,
    direct,
    target: targetBytes === null ? null : utf8Lossy.decode(targetBytes),
    targetBytes,
  };
}

function decodeDir(r, version) {
  const count = r.uvarint();
  if (count > Math.floor(r.remaining() / 8)) r.fail(`entry count ${count} cannot fit in ${r.remaining()} bytes`);
  const entries = [];
  for (let i = 0; i < count; i++) {
    const e = readEntry(r, version);
    if (entries.length > 0 && compareBytes(entries[entries.length - 1].nameBytes, e.nameBytes) >= 0) {
      r.fail(`entry ${JSON.stringify(e.name)} out of order or duplicated`);
    }
    entries.push(e);
  }
  return { type: 'dir', version, entries };
}

function decodeShard(r) {
  const depth = r.u8();
  if (depth >= MAX_SHARD_DEPTH) r.fail(`shard depth ${depth} exceeds ${MAX_SHARD_DEPTH - 1}`);
  const bitmap = r.u16();
  if (bitmap === 0) r.fail('shard with no children');
  const children = [];
  for (let i = 0; i < SHARD_FANOUT; i++) {
    if ((bitmap & (1 << i)) === 0) continue;
    const hash = r.hash();
    const count = r.uvarint();
    const bytes = r.uvarint();
    if (count === 0 || bytes < count) r.fail(`shard child ${i}: count ${count}, bytes ${bytes}`);
    children.push({ index: i, hash, count, bytes });
  }
  return { type: 'shard', depth, children };
}

/** The bytes covered by one child hash of a file node at level (BigInt). */
function spanBig(chunkSize, level) {
  return BigInt(chunkSize) << BigInt(10 * level);
}

function childCountBig(size, chunkSize, level) {
  const span = spanBig(chunkSize, level);
  return (BigInt(size) + span - 1n) / span;
}

function topLevel(size, chunkSize) {
  let l = 0;
  while (childCountBig(size, chunkSize, l) > BigInt(FILE_FANOUT)) l++;
  return l;
}

function decodeFile(r) {
  const level = r.u8();
  const cs = r.uvarint();
  const size = r.uvarint();
  const count = r.uvarint();
  if (level > MAX_FILE_LEVEL) r.fail(`file level ${level} exceeds ${MAX_FILE_LEVEL}`);
  if (cs < MIN_CHUNK_SIZE || cs > MAX_CHUNK_SIZE) r.fail(`chunk size ${cs} outside ${MIN_CHUNK_SIZE}..${MAX_CHUNK_SIZE}`);
  if (count > FILE_FANOUT) r.fail(`${count} hashes exceed the fanout ${FILE_FANOUT}`);
  if (BigInt(size) > 1n << 62n) r.fail(`file size ${size} too large`);
  const want = childCountBig(size, cs, level);
  if (BigInt(count) !== want) r.fail(`${count} hashes for size ${size} at level ${level}, want ${want}`);
  if (level > 0 && count < 1) r.fail('empty index node');
  if (count > Math.floor(r.remaining() / HASH_SIZE)) r.fail('truncated hash list');
  const hashes = [];
  for (let i = 0; i < count; i++) hashes.push(r.hash());
  return { type: 'file', level, chunkSize: cs, size, hashes };
}

/**
 * decodeNode parses one encoded tree node (tree.Decode): structure and
 * canonical form, not links. Returns
 *   {type: 'dir', version, entries: [{name, nameBytes, kind: 'file'|'dir'|'symlink', mode, size, mtimeNs, type, hash, direct, target, targetBytes}]}
 *   (an entry's type is its media type, or null when the tree stores none;
 *   direct: the hash names the file's one chunk, not a file node)
 *   {type: 'shard', depth, children: [{index, hash, count, bytes}]}
 *   {type: 'file', level, chunkSize, size, hashes: [Uint8Array(32)]}
 * and throws GritsError('malformed') for anything else.
 */
export function decodeNode(b) {
  if (!(b instanceof Uint8Array)) throw new TypeError('decodeNode: want a Uint8Array');
  if (b.length > MAX_NODE_SIZE) fail('malformed', `${b.length} bytes exceeds the node limit ${MAX_NODE_SIZE}`);
  const r = new Reader(b, 'malformed');
  const tag = r.u8();
  const v = r.u8();
  if (v !== FORMAT_VERSION && !(tag === TAG_DIR && v === DIR_FORMAT_VERSION)) fail('malformed', `unsupported format version ${v}`);
  let n;
  switch (tag) {
    case TAG_DIR:
      n = decodeDir(r, v);
      break;
    case TAG_SHARD:
      n = decodeShard(r);
      break;
    case TAG_FILE:
      n = decodeFile(r);
      break;
    default:
      fail('malformed', `unknown node type 0x${tag.toString(16)}`);
  }
  r.done();
  return n;
}

/** findEntry binary-searches a directory node for a name (string or UTF-8 bytes); returns the entry or null. */
export function findEntry(dir, name) {
  const nb = typeof name === 'string' ? utf8Encoder.encode(name) : name;
  const es = dir.entries;
  let lo = 0;
  let hi = es.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (compareBytes(es[m].nameBytes, nb) < 0) lo = m + 1;
    else hi = m;
  }
  return lo < es.length && compareBytes(es[lo].nameBytes, nb) === 0 ? es[lo] : null;
}

/** nameHash is BLAKE3(name), which places a name in a sharded directory. */
export function nameHash(name) {
  return blake3(typeof name === 'string' ? utf8Encoder.encode(name) : name);
}

/** nibble returns nibble number depth of a name hash: high nibble of byte depth/2 for even depth, low for odd. */
export function nibble(h, depth) {
  const b = h[depth >>> 1];
  return depth % 2 === 0 ? b >>> 4 : b & 0x0f;
}

/** shardChild returns the child ref of a shard node for nibble i, or null. */
export function shardChild(shard, i) {
  for (const c of shard.children) if (c.index === i) return c;
  return null;
}

/**
 * directFile is the file node a direct entry stands for (tree.DirectFile):
 * one chunk, the entry's hash, its size; never stored or encoded.
 */
export function directFile(e) {
  return { type: 'file', level: 0, chunkSize: MAX_CHUNK_SIZE, size: e.size, hashes: [e.hash] };
}

/** fileIsTop reports whether a file node has the canonical level of a file's top node. */
export function fileIsTop(f) {
  return f.level === topLevel(f.size, f.chunkSize);
}

// ---- proofs (tree/proof.go) ----

/**
 * decodeProof parses an encoded proof (count uvarint, then per node
 * len uvarint and bytes), checking framing and limits only. Returns
 * {nodes: [Uint8Array]}.
 */
export function decodeProof(b) {
  if (!(b instanceof Uint8Array)) throw new TypeError('decodeProof: want a Uint8Array');
  if (b.length > MAX_PROOF_SIZE) fail('bad_proof', `${b.length} bytes exceeds ${MAX_PROOF_SIZE}`);
  const r = new Reader(b, 'bad_proof');
  const count = r.uvarint();
  if (count > MAX_PROOF_NODES || count > r.remaining()) {
    fail('bad_proof', `${count} nodes (limit ${MAX_PROOF_NODES}) in ${r.remaining()} bytes`);
  }
  const nodes = [];
  for (let i = 0; i < count; i++) {
    const n = r.uvarint();
    if (n > MAX_NODE_SIZE) fail('bad_proof', `node ${i} is ${n} bytes, limit ${MAX_NODE_SIZE}`);
    nodes.push(r.bytes(n));
  }
  r.done();
  return { nodes };
}

/** encodeProof is the inverse of decodeProof. */
export function encodeProof(proof) {
  const parts = [uvarintBytes(proof.nodes.length)];
  for (const n of proof.nodes) parts.push(uvarintBytes(n.length), n);
  return concatBytes(parts);
}

function uvarintBytes(v) {
  const out = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Uint8Array.from(out);
}

function concatBytes(parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

class ProofWalker {
  constructor(nodes) {
    this.nodes = nodes;
    this.i = 0;
  }

  next(want) {
    if (this.i >= this.nodes.length) {
      fail('bad_proof', `ends after ${this.i} nodes, node ${formatHash(want).slice(0, 15)} is missing`);
    }
    const raw = this.nodes[this.i];
    if (!bytesEqual(blake3(raw), want)) {
      fail('bad_proof', `node ${this.i} does not hash to the link ${formatHash(want).slice(0, 15)}`);
    }
    let n;
    try {
      n = decodeNode(raw);
    } catch (e) {
      if (e instanceof GritsError) fail('bad_proof', `node ${this.i}: ${e.message}`);
      throw e;
    }
    this.i++;
    return n;
  }

  finish(result) {
    if (this.i !== this.nodes.length) {
      fail('bad_proof', `${this.nodes.length - this.i} unused nodes after node ${this.i}`);
    }
    return result;
  }

  // findIn walks one directory from its top node to the leaf for a name;
  // returns the entry or null (proven absent).
  findIn(top, nameBytes) {
    const nh = blake3(nameBytes);
    let h = top;
    for (let depth = 0; ; depth++) {
      const n = this.next(h);
      if (n.type === 'dir') return findEntry(n, nameBytes);
      if (n.type === 'shard') {
        if (n.depth !== depth) fail('bad_proof', `shard node ${this.i - 1} at depth ${depth} claims depth ${n.depth}`);
        const c = shardChild(n, nibble(nh, depth));
        if (c === null) return null;
        h = c.hash;
        continue;
      }
      fail('bad_proof', `node ${this.i - 1} is a file node where a directory node belongs`);
    }
  }

  target(e, depth) {
    const r = { status: 'found', depth, entry: e, node: null };
    if (e.kind === 'file' && e.direct) {
      r.node = directFile(e); // the entry names the one chunk: no node follows
    } else if (e.kind === 'file') {
      const n = this.next(e.hash);
      if (n.type !== 'file' || !fileIsTop(n) || n.size !== e.size) {
        fail('bad_proof', `the target's node is not the top file node of a ${e.size}-byte file`);
      }
      r.node = n;
    } else if (e.kind === 'dir') {
      const n = this.next(e.hash);
      if (n.type === 'shard') {
        if (n.depth !== 0) fail('bad_proof', `the target directory's top node has depth ${n.depth}`);
      } else if (n.type !== 'dir') {
        fail('bad_proof', "the target's node is not a directory node");
      }
      r.node = n;
    }
    return this.finish(r);
  }
}

/**
 * verifyProof checks a proof against a tree hash for a path, exactly as
 * tree.Verify does: every node must hash to the link that points at it,
 * starting from treeHash, and the proof must hold exactly the nodes
 * needed. Returns {status, depth, entry, node}:
 *   status 'found'   the path exists; entry is its entry (for the root, a
 *                    synthetic directory entry named ''); node is its
 *                    decoded node (file: top file node; dir: dir or shard
 *                    node; symlink: null)
 *   status 'absent'  a directory on the path has no entry for the next name; depth = its index
 *   status 'notdir'  a component before the last is a file (entry); depth = components that exist
 *   status 'symlink' a component before the last is a symlink (entry), never followed
 * A proof that proves nothing throws GritsError('bad_proof'); an invalid
 * path throws GritsError('bad_name').
 *
 * @param {Uint8Array|string} treeHash  32 bytes or "b3-..."
 * @param {string|string[]} path        a path as parsePath reads it, or its components
 * @param {{nodes: Uint8Array[]}|Uint8Array} proof  decoded or encoded
 */
export function verifyProof(treeHash, path, proof) {
  const root = asHash(treeHash, 'tree hash');
  let names;
  if (typeof path === 'string') names = parsePath(path);
  else if (Array.isArray(path)) names = path;
  else throw new TypeError('verifyProof: path must be a string or an array of names');
  const nameBytes = names.map(validName);
  if (proof instanceof Uint8Array) proof = decodeProof(proof);
  if (proof.nodes.length > MAX_PROOF_NODES) fail('bad_proof', `${proof.nodes.length} nodes exceeds ${MAX_PROOF_NODES}`);
  const w = new ProofWalker(proof.nodes);
  let dir = root;
  for (let c = 0; c < names.length; c++) {
    const e = w.findIn(dir, nameBytes[c]);
    if (e === null) return w.finish({ status: 'absent', depth: c, entry: null, node: null });
    if (c === names.length - 1) return w.target(e, c + 1);
    if (e.kind === 'file') return w.finish({ status: 'notdir', depth: c + 1, entry: e, node: null });
    if (e.kind === 'symlink') return w.finish({ status: 'symlink', depth: c + 1, entry: e, node: null });
    dir = e.hash;
  }
  const rootEntry = {
    name: '',
    nameBytes: new Uint8Array(0),
    kind: 'dir',
    mode: 0o755,
    size: 0,
    mtimeNs: null,
    type: null,
    hash: root,
    direct: false,
    target: null,
    targetBytes: null,
  };
  return w.target(rootEntry, 0);
}

// ---- file content (tree/file.go) ----

/**
 * checkInline checks a whole small file against its top file node, as
 * the Go client does with LookupResult inline data: the length must be
 * the file's size, the node must be level 0, and the bytes, cut into
 * chunk_size pieces, must hash to the node's chunk hashes. Throws
 * GritsError('bad_inline').
 */
export function checkInline(f, data) {
  if (f.size !== data.length) fail('bad_inline', `${data.length} bytes, the file has ${f.size}`);
  if (f.level !== 0) fail('bad_inline', 'inline data for a file with index nodes');
  const cs = f.chunkSize;
  for (let i = 0; i < f.hashes.length; i++) {
    const chunk = data.subarray(i * cs, Math.min(data.length, (i + 1) * cs));
    if (!bytesEqual(blake3(chunk), f.hashes[i])) fail('bad_inline', `chunk ${i} does not match its hash`);
  }
}

/**
 * fileChunks yields, in order, the chunks of the file whose top node is
 * f that overlap bytes [offset, offset+length), as tree.Chunks does:
 * {offset, size, hash}. Index nodes (level > 0) are fetched with
 * `await getNode(hash)` → Uint8Array; their bytes are hashed and checked
 * against the link, decoded, and must match their parent (level − 1,
 * same chunk size, the size the parent says they cover).
 * length may exceed the file (the range is clipped); offset > size throws
 * GritsError('range'). Files beyond 2^53 bytes throw 'unsupported'.
 */
export async function* fileChunks(f, offset, length, getNode) {
  if (f.type !== 'file') throw new TypeError('fileChunks: not a file node');
  if (typeof f.size !== 'number') fail('unsupported', `file of ${f.size} bytes is beyond 2^53`);
  if (!(offset >= 0) || !Number.isSafeInteger(offset)) fail('range', `bad offset ${offset}`);
  if (offset > f.size) fail('range', `offset ${offset} beyond file size ${f.size}`);
  const end = !(length >= 0) || length > f.size - offset ? f.size : offset + length;
  yield* chunksIn(f, 0, offset, end, getNode);
}

async function* chunksIn(f, base, off, end, getNode) {
  const span = f.chunkSize * 1024 ** f.level;
  for (let i = 0; i < f.hashes.length; i++) {
    const rel = i * span;
    const size = rel + span > f.size ? f.size - rel : span;
    const start = base + rel;
    if (start + size <= off) continue;
    if (start >= end) break;
    const h = f.hashes[i];
    if (f.level === 0) {
      yield { offset: start, size, hash: h };
      continue;
    }
    const raw = await getNode(h);
    if (!(raw instanceof Uint8Array) || !bytesEqual(blake3(raw), h)) {
      fail('bad_block', `index node ${formatHash(h)}: bytes do not match the hash`);
    }
    const child = decodeNode(raw);
    if (child.type !== 'file' || child.level !== f.level - 1 || child.chunkSize !== f.chunkSize || child.size !== size) {
      fail('malformed', `index node ${formatHash(h).slice(0, 15)}: does not match its parent`);
    }
    yield* chunksIn(child, start, off, end, getNode);
  }
}

/** listChunks collects fileChunks into an array. */
export async function listChunks(f, offset, length, getNode) {
  const out = [];
  for await (const c of fileChunks(f, offset, length, getNode)) out.push(c);
  return out;
}

// ---- signed roots (tree/root.go, tree/key.go) ----

/** parsePublicKey reads "ed25519-" and 64 lower-case hex digits (tree.ParsePublicKey). */
export function parsePublicKey(s) {
  if (typeof s !== 'string' || !s.startsWith('ed25519-')) fail('invalid_key', 'missing "ed25519-" prefix');
  const rest = s.slice(8);
  if (rest.length !== 64 || !/^[0-9a-f]*$/.test(rest)) fail('invalid_key', 'want 64 lower-case hex digits');
  return fromHex(rest);
}

/** formatPublicKey is the inverse of parsePublicKey. */
export function formatPublicKey(k) {
  return 'ed25519-' + toHex(k);
}

/**
 * decodeRoot parses a 186-byte signed root record (tree.DecodeRoot):
 * framing only, no signature or field checks (see verifyRoot). Returns
 * {bytes, hash, siteKey, seq, time, expires, tree, prev, sig}; seq is a
 * BigInt, time and expires BigInt Unix seconds; hash is BLAKE3 of the 186
 * bytes (the next root's prev).
 */
export function decodeRoot(b) {
  if (!(b instanceof Uint8Array)) throw new TypeError('decodeRoot: want a Uint8Array');
  if (b.length !== ROOT_SIZE) fail('malformed_root', `${b.length} bytes, want ${ROOT_SIZE}`);
  if (b[0] !== TAG_ROOT) fail('malformed_root', `type tag 0x${b[0].toString(16)}, want 0x52`);
  if (b[1] !== ROOT_VERSION) fail('malformed_root', `unknown format version ${b[1]}`);
  const bytes = b.slice();
  const dv = new DataView(bytes.buffer);
  return {
    bytes,
    hash: blake3(bytes),
    siteKey: bytes.subarray(2, 34),
    seq: dv.getBigUint64(34),
    time: dv.getBigInt64(42),
    expires: dv.getBigInt64(50),
    tree: bytes.subarray(58, 90),
    prev: bytes.subarray(90, 122),
    sig: bytes.subarray(122, 186),
  };
}

/** rootSignedMessage is what a root's signature covers: "grits-root-v1\0" || bytes[0:122]. */
export function rootSignedMessage(rootBytes) {
  const ctx = utf8Encoder.encode(ROOT_SIG_CONTEXT);
  const msg = new Uint8Array(ctx.length + 122);
  msg.set(ctx);
  msg.set(rootBytes.subarray(0, 122), ctx.length);
  return msg;
}

const keyCache = new Map(); // hex -> Promise<CryptoKey>

function importEd25519(key) {
  const hex = toHex(key);
  let p = keyCache.get(hex);
  if (!p) {
    p = crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
    keyCache.set(hex, p);
    p.catch(() => keyCache.delete(hex));
  }
  return p;
}

/**
 * ed25519Verify checks sig over msg under a 32-byte public key with
 * WebCrypto. The zero key verifies nothing (tree.PublicKey.Verify). A key
 * WebCrypto cannot import verifies nothing; a platform without Ed25519
 * throws GritsError('unsupported').
 */
export async function ed25519Verify(key, msg, sig) {
  if (key.length !== 32 || sig.length !== 64 || isZero(key)) return false;
  let k;
  try {
    k = await importEd25519(key);
  } catch (e) {
    if (e && e.name === 'NotSupportedError') fail('unsupported', 'this platform has no Ed25519 in WebCrypto');
    return false;
  }
  try {
    return await crypto.subtle.verify({ name: 'Ed25519' }, k, sig, msg);
  } catch {
    return false;
  }
}

function nowSeconds(now) {
  if (now === undefined) now = Date.now();
  if (now instanceof Date) now = now.getTime();
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new TypeError('now: want a Date or milliseconds');
  return BigInt(Math.floor(now / 1000));
}

// validateRoot is Root.validate: fields a signer must get right.
function validateRoot(r) {
  if (r.seq === 0n) fail('malformed_root', 'root seq 0: seq starts at 1');
  if (isZero(r.tree)) fail('malformed_root', `root seq ${r.seq} has no tree hash`);
  if (r.expires <= r.time) fail('malformed_root', `root seq ${r.seq} expires no later than it was signed`);
  if (r.seq === 1n && !isZero(r.prev)) fail('malformed_root', 'root seq 1 names a previous root, but it is the first');
  if (r.seq > 1n && isZero(r.prev)) fail('malformed_root', `root seq ${r.seq} names no previous root`);
}

/**
 * verifyRoot checks that a root (decoded, or its 186 bytes) is signed by
 * siteKey (Uint8Array(32) or "ed25519-<hex>") and valid at now (a Date or
 * milliseconds; default Date.now()), as tree.Root.Verify does: the site
 * key, the signature (WebCrypto Ed25519 over rootSignedMessage), the
 * fields, expiry (now ≥ expires refused), and a signing time at most 5
 * minutes ahead. Resolves to the decoded root; rejects with GritsError
 * wrong_key, bad_signature, malformed_root, expired or from_future.
 */
export async function verifyRoot(root, siteKey, now) {
  if (root instanceof Uint8Array) root = decodeRoot(root);
  const key = typeof siteKey === 'string' ? parsePublicKey(siteKey) : siteKey;
  if (!(key instanceof Uint8Array) || key.length !== 32 || isZero(key)) {
    fail('wrong_key', `verify root seq ${root.seq}: no site key to verify against`);
  }
  if (!bytesEqual(root.siteKey, key)) {
    fail('wrong_key', `root seq ${root.seq} names site key ${formatPublicKey(root.siteKey)}, want ${formatPublicKey(key)}`);
  }
  if (!(await ed25519Verify(key, rootSignedMessage(root.bytes), root.sig))) {
    fail('bad_signature', `root seq ${root.seq}: signature does not verify under ${formatPublicKey(key)}`);
  }
  validateRoot(root);
  const nowSec = nowSeconds(now);
  if (nowSec >= root.expires) fail('expired', `root seq ${root.seq} expired at ${root.expires} (now ${nowSec})`);
  if (root.time > nowSec + BigInt(MAX_CLOCK_SKEW_SECONDS)) {
    fail('from_future', `root seq ${root.seq} was signed at ${root.time}, more than ${MAX_CLOCK_SKEW_SECONDS} s after now (${nowSec})`);
  }
  return root;
}

/**
 * verifyKeptRoot checks a root kept from an earlier run (the newest one
 * accepted) as verifyRoot does, except for expiry: an expired root names
 * no tree to serve any more, but its seq still bounds for good the roots
 * that may follow it (checkSuccessor). Without it, a client restarted
 * after its root expired would take an older root that has not.
 * Resolves to the decoded root; rejects as verifyRoot does (never with
 * expired or from_future).
 */
export async function verifyKeptRoot(root, siteKey) {
  if (root instanceof Uint8Array) root = decodeRoot(root);
  return verifyRoot(root, siteKey, Number(root.time) * 1000);
}

/**
 * checkSuccessor reports whether root may replace last, the latest
 * accepted root (tree.Root.CheckSuccessor); both should have passed
 * verifyRoot. Throws same_root (identical: usually a no-op), rollback
 * (older seq), or equivocation (another root with last's seq, or the
 * next seq not chained to last). A root more than one seq ahead is
 * accepted: roots in between may have been missed.
 */
export function checkSuccessor(root, last) {
  if (root instanceof Uint8Array) root = decodeRoot(root);
  if (last instanceof Uint8Array) last = decodeRoot(last);
  if (root.seq < last.seq) fail('rollback', `root seq ${root.seq} is older than the accepted seq ${last.seq}`);
  if (root.seq === last.seq) {
    if (bytesEqual(root.hash, last.hash)) fail('same_root', `root seq ${root.seq} already accepted`);
    fail('equivocation', `root seq ${root.seq} differs from the accepted root with the same seq`);
  }
  if (root.seq === last.seq + 1n && !bytesEqual(root.prev, last.hash)) {
    fail('equivocation', `root seq ${root.seq} does not follow the accepted seq ${last.seq}`);
  }
}

// ---- LookupResult (proto/SPEC.md 4.11, 8a) ----

const KNOWN_TYPES = new Set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x7f]);

/**
 * decodeLookupResult parses a LookupResult payload (no frame header):
 * status, optional root, proof, optional inline data. Returns
 * {status, root (decoded, unverified) or null, proof: {nodes}, inline: Uint8Array or null}.
 *
 * zstd inline data (inline byte 2) is refused with GritsError('unsupported')
 * after the rest of the payload has been checked: the gateway's HTTP
 * lookups never compress (SPEC 8a, NewLookupResult(..., false)), and the
 * worker carries no zstd decoder.
 */
export function decodeLookupResult(p) {
  const r = new Reader(p, 'malformed_frame');
  const sb = r.u8();
  const status = STATUS_FROM_WIRE[sb];
  if (!status) r.fail(`unknown status ${sb}`);
  let root = null;
  const hr = r.u8();
  if (hr === 1) {
    const rb = r.bytes(ROOT_SIZE);
    try {
      root = decodeRoot(rb);
    } catch (e) {
      fail('malformed_frame', e.message);
    }
  } else if (hr !== 0) {
    r.fail(`root presence byte ${hr}`);
  }
  const n = r.uvarint();
  if (n > MAX_PROOF_SIZE) r.fail(`proof of ${n} bytes exceeds ${MAX_PROOF_SIZE}`);
  const raw = r.bytes(n);
  let proof;
  try {
    proof = decodeProof(raw);
  } catch (e) {
    fail('malformed_frame', e.message);
  }
  let inline = null;
  let zstd = false;
  const ib = r.u8();
  if (ib === 1 || ib === 2) {
    const dn = r.uvarint();
    if (dn > INLINE_MAX) r.fail(`inline data of ${dn} bytes exceeds ${INLINE_MAX}`);
    inline = r.bytes(dn);
    zstd = ib === 2;
  } else if (ib !== 0) {
    r.fail(`unknown inline encoding ${ib}`);
  }
  r.done();
  if (inline !== null && status !== 'found') fail('malformed_frame', `inline data with status ${status}`);
  if (zstd) fail('unsupported', 'zstd-compressed inline data: this client never asks for it');
  return { status, root, proof, inline };
}

/**
 * decodeLookupFrame parses the body of GET /grits/v1/lookup/...: exactly
 * one frame (type 0x43, minimal uvarint length, payload) and nothing
 * after it. An Error frame (0x7f) throws GritsError('remote') with
 * remoteCode and remoteMessage; any other type is refused.
 */
export function decodeLookupFrame(b) {
  if (!(b instanceof Uint8Array)) throw new TypeError('decodeLookupFrame: want a Uint8Array');
  const r = new Reader(b, 'malformed_frame');
  const t = r.u8();
  if (!KNOWN_TYPES.has(t)) fail('unknown_type', `unknown frame type 0x${t.toString(16)}`);
  if (t !== TYPE_LOOKUP_RESULT && t !== TYPE_ERROR) fail('unexpected_type', `frame type 0x${t.toString(16)} does not answer a lookup`);
  const n = r.uvarint();
  const max = t === TYPE_ERROR ? MAX_ERROR_PAYLOAD : MAX_LOOKUP_RESULT_PAYLOAD;
  if (n > max) fail('frame_too_large', `payload of ${n} bytes exceeds the limit of ${max}`);
  const payload = r.bytes(n);
  if (r.remaining() !== 0) fail('malformed_frame', `${r.remaining()} bytes after the frame`);
  if (t === TYPE_ERROR) {
    const e = new Reader(payload, 'malformed_frame');
    const code = e.u16();
    const mn = e.uvarint();
    if (mn > MAX_ERROR_MESSAGE) e.fail(`message of ${mn} bytes exceeds ${MAX_ERROR_MESSAGE}`);
    const mb = e.bytes(mn);
    e.done();
    let message;
    try {
      message = utf8Strict.decode(mb);
    } catch {
      fail('malformed_frame', 'error message is not valid UTF-8');
    }
    throw new GritsError('remote', `remote error ${code}: ${message}`, { remoteCode: code, remoteMessage: message });
  }
  return decodeLookupResult(payload);
}

/**
 * verifyLookup checks a decoded LookupResult as the Go client
 * (transport.Client.Lookup) does and resolves to
 * {status, depth, entry, node, root, inline}.
 *   opts.path      the path asked for (string or names)
 *   opts.treeHash  the tree asked for, from a root verified earlier; omit
 *                  for a `latest` lookup: the result must then carry a
 *                  root, which is verified against opts.siteKey at
 *                  opts.now and, given opts.lastRoot, must not roll back
 *                  or equivocate (the same root again is fine)
 * The proof is verified against the tree; the server's status must equal
 * the proven one (else status_mismatch); inline data must belong to a
 * found file and match its chunk hashes (else bad_inline).
 */
export async function verifyLookup(result, opts) {
  let root = null;
  let tree;
  if (opts.treeHash == null) {
    if (!result.root) fail('missing_root', 'latest lookup answered without a root');
    root = await verifyRoot(result.root, opts.siteKey, opts.now);
    if (opts.lastRoot) {
      try {
        checkSuccessor(root, opts.lastRoot);
      } catch (e) {
        if (!(e instanceof GritsError) || e.code !== 'same_root') throw e;
      }
    }
    tree = root.tree;
  } else {
    tree = asHash(opts.treeHash, 'tree hash');
  }
  const res = verifyProof(tree, opts.path, result.proof);
  if (res.status !== result.status) {
    fail('status_mismatch', `server claims ${result.status}, its proof shows ${res.status}`);
  }
  if (result.inline !== null) {
    if (res.node === null || res.node.type !== 'file') fail('bad_inline', 'inline data for a path that is not a file');
    checkInline(res.node, result.inline);
  }
  return { ...res, root, inline: result.inline };
}
