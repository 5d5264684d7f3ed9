// Tree node decoding (sw/js/grits.js decodeNode) against tree.Decode:
// every node of tree/testdata/vectors.json, the files they describe
// rebuilt and hashed, and the verdicts of sw/testdata/decode_cases.json.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  decodeNode, findEntry, fileIsTop, nameHash, nibble, shardChild, GritsError,
  blake3, toHex, fromHex, formatHash, parseHash, bytesEqual,
} from '../js/grits.js';
import { Hasher } from '../js/blake3.js';

const read = (path) => JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8'));
const vectors = read('../../tree/testdata/vectors.json');
const cases = read('../testdata/decode_cases.json');

function decodes(b) {
  try {
    decodeNode(b);
    return true;
  } catch (e) {
    if (!(e instanceof GritsError) || e.code !== 'malformed') throw e;
    return false;
  }
}

// The summary TestVectorsDecode writes, with Go's omitempty rules.
function summarize(n) {
  if (n.type === 'dir') {
    const s = { type: 'dir' };
    if (n.entries.length > 0) {
      s.entries = n.entries.map((e) => {
        const o = { name_hex: toHex(e.nameBytes), kind: e.kind, mode: e.mode, size: String(e.size) };
        if (e.mtimeNs !== null) o.mtime_ns = String(e.mtimeNs);
        if (e.type !== null) o.type = e.type;
        if (e.kind === 'symlink') o.target_hex = toHex(e.targetBytes);
        else o.hash = formatHash(e.hash);
        return o;
      });
    }
    return s;
  }
  if (n.type === 'shard') {
    return {
      type: 'shard',
      depth: n.depth,
      children: n.children.map((c) => ({ index: c.index, hash: formatHash(c.hash), count: String(c.count), bytes: String(c.bytes) })),
    };
  }
  const d = new Hasher();
  for (const h of n.hashes) d.update(h);
  return {
    type: 'file', level: n.level, chunk_size: n.chunkSize, size: String(n.size),
    hashes: n.hashes.length, hashes_digest: toHex(d.digest()), top: fileIsTop(n),
  };
}

function spelled(parts) {
  const chunks = parts.map(([h, n]) => {
    const b = fromHex(h);
    const out = new Uint8Array(b.length * n);
    for (let i = 0; i < n; i++) out.set(b, i * b.length);
    return out;
  });
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

const nodes = new Map(vectors.nodes.map((n) => [n.hash, fromHex(n.hex)]));

test('every node of tree/testdata/vectors.json decodes and hashes to its name', () => {
  // 26: one-chunk files are direct entries (no file node of their own).
  assert.equal(vectors.nodes.length, 26);
  const types = {};
  for (const n of vectors.nodes) {
    const b = nodes.get(n.hash);
    assert.equal(formatHash(blake3(b)), n.hash);
    const d = decodeNode(b);
    types[d.type] = (types[d.type] || 0) + 1;
  }
  assert.ok(types.dir > 0 && types.shard > 0 && types.file > 0, JSON.stringify(types));
});

// walk finds a path's entry using only the vectors' nodes.
function walk(names) {
  let h = parseHash(vectors.root);
  let entry = { kind: 'dir', hash: h };
  for (const name of names) {
    assert.equal(entry.kind, 'dir');
    const nh = nameHash(name);
    let n = decodeNode(nodes.get(formatHash(entry.hash)));
    for (let depth = 0; n.type === 'shard'; depth++) {
      assert.equal(n.depth, depth);
      n = decodeNode(nodes.get(formatHash(shardChild(n, nibble(nh, depth)).hash)));
    }
    assert.equal(n.type, 'dir');
    entry = findEntry(n, name);
    assert.ok(entry, name);
  }
  return entry;
}

test('the vectors\' files, rebuilt and chunked, hash to their file nodes', () => {
  const cs = vectors.chunk_size;
  const enc = new TextEncoder();
  for (const f of vectors.files) {
    const e = walk(f.path.split('/'));
    if (f.kind === 'symlink') {
      assert.equal(e.kind, 'symlink');
      assert.equal(e.target, f.target);
      assert.equal(e.size, enc.encode(f.target).length);
      continue;
    }
    if (f.kind === 'dir') {
      assert.equal(e.kind, 'dir');
      continue;
    }
    let data;
    if (f.pattern_length) {
      data = new Uint8Array(f.pattern_length);
      for (let i = 0; i < data.length; i++) data[i] = i % 251;
    } else {
      data = enc.encode(f.text || '');
    }
    assert.equal(e.kind, 'file');
    assert.equal(e.size, data.length, f.path);
    // One chunk: a direct entry, whose hash is the chunk's.
    assert.equal(e.direct, data.length > 0 && data.length <= cs, f.path);
    if (e.direct) {
      assert.ok(bytesEqual(e.hash, blake3(data)), `${f.path}: direct entry's hash`);
      continue;
    }
    const fn = decodeNode(nodes.get(formatHash(e.hash)));
    assert.equal(fn.type, 'file');
    assert.equal(fn.level, 0);
    assert.equal(fn.chunkSize, cs);
    assert.equal(fn.size, data.length);
    assert.ok(fileIsTop(fn));
    assert.equal(fn.hashes.length, Math.ceil(data.length / cs));
    fn.hashes.forEach((h, i) => assert.ok(bytesEqual(h, blake3(data.subarray(i * cs, (i + 1) * cs))), `${f.path} chunk ${i}`));
  }
});

test('synthetic nodes: the same verdict and content as tree.Decode', () => {
  assert.ok(cases.nodes.length > 90);
  for (const c of cases.nodes) {
    const b = spelled(c.parts);
    let n = null;
    try {
      n = decodeNode(b);
    } catch (e) {
      if (!(e instanceof GritsError) || e.code !== 'malformed') throw e;
    }
    assert.equal(n !== null, c.ok, `${c.name}: Go says ${c.ok ? 'valid' : 'malformed'}`);
    if (c.ok) assert.deepEqual(summarize(n), c.summary, c.name);
  }
});

test('every single-byte change of vector nodes: the same verdict as tree.Decode', () => {
  let changes = 0;
  for (const f of cases.flips) {
    const b = nodes.get(f.node);
    assert.equal(f.ok.length, b.length);
    let got = '';
    for (let i = 0; i < b.length; i++) {
      const m = b.slice();
      m[i] ^= f.xor;
      got += decodes(m) ? '1' : '0';
    }
    assert.equal(got, f.ok, `${f.node} xor ${f.xor}`);
    changes += b.length;
  }
  assert.ok(changes > 5000, `${changes} changes`);
});

test('every prefix of vector nodes is refused, and a trailing byte too', () => {
  for (const c of cases.cuts) {
    const b = nodes.get(c.node);
    let got = '';
    for (let i = 0; i < b.length; i++) got += decodes(b.subarray(0, i)) ? '1' : '0';
    const plus = new Uint8Array(b.length + 1);
    plus.set(b);
    got += decodes(plus) ? '1' : '0';
    assert.equal(got, c.ok, c.node);
    assert.ok(!got.includes('1'));
  }
});

test('names are compared as UTF-8 bytes, not UTF-16 code units', () => {
  const c = cases.nodes.find((n) => n.name === 'names U+FFFF, U+10000 (byte order)');
  const d = decodeNode(spelled(c.parts));
  assert.equal(findEntry(d, '\uffff').name, '\uffff');
  assert.equal(findEntry(d, '\u{10000}').name, '\u{10000}');
  assert.equal(findEntry(d, '\u{10001}'), null);
  assert.equal(findEntry(d, ''), null);
});

test('a name starting with a byte order mark keeps it', () => {
  const c = cases.nodes.find((n) => n.name === 'name "\\ufeffbom"');
  const d = decodeNode(spelled(c.parts));
  assert.equal(d.entries[0].name, '\ufeffbom');
});

test('64-bit sizes decode exactly (BigInt above 2^53-1)', () => {
  const get = (name) => decodeNode(spelled(cases.nodes.find((n) => n.name === name).parts));
  assert.equal(get('size 2^53-1').entries[0].size, Number.MAX_SAFE_INTEGER);
  assert.equal(get('size 2^53').entries[0].size, 2n ** 53n);
  assert.equal(get('size 2^64-1').entries[0].size, 2n ** 64n - 1n);
  assert.equal(get('file level 4, 2^62 bytes').size, 2n ** 62n);
  assert.equal(get('mtime -1 s').entries[0].mtimeNs, -1000000000n);
});
