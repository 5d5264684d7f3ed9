// Proof verification (sw/js/grits.js verifyProof, decodeProof, parsePath)
// against tree.Verify: the proofs of tree/testdata/vectors.json, and every
// case of sw/testdata/proof_cases.json (mutated proofs, proofs used for
// other paths, crafted proofs, paths), with exactly Go's verdicts.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  verifyProof, decodeProof, encodeProof, parsePath, validName, GritsError,
  fromHex, formatHash, parseHash, MAX_PROOF_NODES,
} from '../js/grits.js';

const read = (path) => JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8'));
const vectors = read('../../tree/testdata/vectors.json');
const cases = read('../testdata/proof_cases.json');

const STATUS = { found: 'found', absent: 'absent', not_a_directory: 'notdir', symlink_in_path: 'symlink' };

// verdict is what TestVectorsProofs records: {status, depth} or {error}.
function verdict(tree, path, proof) {
  try {
    const r = verifyProof(tree, path, proof);
    return { status: r.status, depth: r.depth };
  } catch (e) {
    if (!(e instanceof GritsError)) throw e;
    return { depth: 0, error: e.code };
  }
}

function mutate(enc, m) {
  if (m.op.startsWith('enc_')) {
    let b = enc.slice();
    if (m.op === 'enc_flip') b[m.args[0]] ^= m.args[1];
    else if (m.op === 'enc_cut') b = b.subarray(0, m.args[0]);
    else if (m.op === 'enc_append') {
      b = new Uint8Array(enc.length + 1);
      b.set(enc);
      b[enc.length] = m.args[0];
    } else throw new Error(m.op);
    return b;
  }
  const nodes = decodeProof(enc).nodes.map((n) => n.slice());
  const [a, b] = m.args;
  switch (m.op) {
    case 'flip':
      nodes[a][b] ^= m.args[2];
      break;
    case 'drop':
      nodes.splice(a, 1);
      break;
    case 'swap':
      [nodes[a], nodes[b]] = [nodes[b], nodes[a]];
      break;
    case 'dup':
      nodes.push(nodes[a].slice());
      break;
    case 'insert':
      nodes.splice(a, 0, nodes[b].slice());
      break;
    default:
      throw new Error(m.op);
  }
  return encodeProof({ nodes });
}

test('every proof of tree/testdata/vectors.json verifies with its status, depth and entry', () => {
  const root = parseHash(vectors.root);
  assert.equal(vectors.lookups.length, 18);
  for (const l of vectors.lookups) {
    const enc = fromHex(l.proof_hex);
    assert.equal(enc.length, l.proof_size);
    const r = verifyProof(vectors.root, l.path, enc);
    assert.equal(r.status, STATUS[l.status], l.path);
    assert.equal(r.depth, l.depth, l.path);
    // the same from the decoded proof, the hash as bytes, the path as names
    const r2 = verifyProof(root, parsePath(l.path), decodeProof(enc));
    assert.equal(r2.status, r.status);
    if (l.status === 'found') {
      assert.equal(r.entry.kind, l.kind, l.path);
      assert.equal(r.entry.size, l.size, l.path);
      assert.equal(r.entry.type, l.type || null, l.path);
      if (l.kind === 'symlink') assert.equal(r.node, null);
      else {
        assert.equal(formatHash(r.entry.hash), l.hash, l.path);
        assert.ok(r.node, l.path);
        assert.equal(r.node.type === 'file', l.kind === 'file', l.path);
      }
    }
    if (r.status === 'notdir') assert.equal(r.entry.kind, 'file');
    if (r.status === 'symlink') assert.equal(r.entry.kind, 'symlink');
  }
  // the sharded directory is resolved through its shard node
  const many = verifyProof(vectors.root, 'many', fromHex(vectors.lookups[0].proof_hex));
  assert.equal(many.node.type, 'shard');
});

test('mutated proofs and proofs for other paths: exactly tree.Verify\'s verdicts', () => {
  const counts = {};
  for (const c of cases.cases) {
    const enc = fromHex(vectors.lookups[c.lookup].proof_hex);
    const proof = c.mut ? mutate(enc, c.mut) : enc;
    const got = verdict(cases.root, c.path, proof);
    const what = `lookup ${c.lookup} (${vectors.lookups[c.lookup].path}) for ${JSON.stringify(c.path)} ${c.mut ? JSON.stringify(c.mut) : ''}`;
    assert.deepEqual(got, c.go, what);
    const k = c.go.error || c.go.status;
    counts[k] = (counts[k] || 0) + 1;
  }
  assert.ok(cases.cases.length > 900);
  assert.ok(counts.bad_proof > 800 && counts.found > 10 && counts.absent > 0 && counts.notdir > 0 && counts.symlink > 0, JSON.stringify(counts));
});

test('crafted proofs (shard depths, wrong node types, non-top file nodes, 64-level shards)', () => {
  assert.ok(cases.crafted.length >= 25);
  for (const c of cases.crafted) {
    assert.deepEqual(verdict(c.tree, c.path, fromHex(c.proof_hex)), c.go, c.name);
  }
});

test('paths are parsed as tree.ParsePath parses them', () => {
  for (const c of cases.paths) {
    let names = null;
    try {
      names = parsePath(c.path);
    } catch (e) {
      if (!(e instanceof GritsError) || e.code !== 'bad_name') throw e;
    }
    assert.equal(names !== null, c.ok, JSON.stringify(c.path.slice(0, 40)));
    if (c.ok) assert.deepEqual(names, c.names);
  }
});

test('names that cannot be UTF-8 are refused, in paths and in name lists', () => {
  for (const bad of ['\ud800', 'a\udc00b', 'x/\ud83d', '\ud83d/x']) {
    assert.throws(() => parsePath(bad), (e) => e.code === 'bad_name', JSON.stringify(bad));
  }
  assert.deepEqual(parsePath('\ud83d\ude00/x'), ['\u{1f600}', 'x']);
  for (const bad of ['', '.', '..', 'a/b', 'a\0b', 'é'.repeat(128), '\udfff']) {
    assert.throws(() => validName(bad), (e) => e.code === 'bad_name', JSON.stringify(bad));
  }
  assert.equal(validName('é'.repeat(127) + 'a').length, 255);
  const l = vectors.lookups.find((x) => x.path === 'index.html');
  assert.throws(() => verifyProof(vectors.root, ['..'], fromHex(l.proof_hex)), (e) => e.code === 'bad_name');
  assert.throws(() => verifyProof(vectors.root, 'a//b', fromHex(l.proof_hex)), (e) => e.code === 'bad_name');
});

test('proof framing limits', () => {
  assert.throws(() => decodeProof(new Uint8Array(0)), (e) => e.code === 'bad_proof');
  assert.deepEqual(decodeProof(Uint8Array.of(0)).nodes, []);
  // count over the limit, or over the bytes left
  assert.throws(() => decodeProof(Uint8Array.of(0x81, 0x10, ...new Uint8Array(3000))), (e) => e.code === 'bad_proof');
  assert.throws(() => decodeProof(Uint8Array.of(2, 0)), (e) => e.code === 'bad_proof');
  // a node over 64 KiB
  assert.throws(() => decodeProof(Uint8Array.of(1, 0x81, 0x80, 0x04)), (e) => e.code === 'bad_proof');
  // a non-minimal length
  assert.throws(() => decodeProof(Uint8Array.of(1, 0x80, 0x00)), (e) => e.code === 'bad_proof');
  // more nodes than a proof may have, handed over decoded
  const many = { nodes: new Array(MAX_PROOF_NODES + 1).fill(Uint8Array.of(1, 1, 0)) };
  assert.throws(() => verifyProof(vectors.root, '', many), (e) => e.code === 'bad_proof');
  // an empty proof proves nothing, even about the root
  assert.throws(() => verifyProof(vectors.root, '', { nodes: [] }), (e) => e.code === 'bad_proof');
  assert.throws(() => verifyProof('b3-00', '', { nodes: [] }), (e) => e.code === 'invalid_hash');
});
