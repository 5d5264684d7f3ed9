// LookupResult frames (proto/SPEC.md 4.11 and 8a) as the gateway sends
// them, decoded and verified by sw/js/grits.js as transport.Client.Lookup
// does: sw/testdata/lookup_frames.json, built and judged by Go.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  decodeLookupFrame, decodeLookupResult, verifyLookup, checkInline, decodeNode, GritsError,
  fromHex, toHex, formatHash, blake3,
} from '../js/grits.js';

const v = JSON.parse(readFileSync(new URL('../testdata/lookup_frames.json', import.meta.url), 'utf8'));

async function jsVerdict(c) {
  try {
    const r = decodeLookupFrame(fromHex(c.hex));
    const res = await verifyLookup(r, {
      path: c.path,
      treeHash: c.tree || null,
      siteKey: v.site_key,
      lastRoot: c.last_root ? fromHex(c.last_root) : null,
      now: c.now * 1000,
    });
    return { status: res.status, depth: res.depth, inline_len: res.inline === null ? -1 : res.inline.length };
  } catch (e) {
    if (!(e instanceof GritsError)) throw e;
    return { depth: 0, inline_len: 0, error: e.code };
  }
}

test('every frame: the verdict of the Go client (zstd refused)', async () => {
  assert.ok(v.frames.length >= 55);
  const seen = new Set();
  for (const c of v.frames) {
    assert.deepEqual(await jsVerdict(c), c.expect, c.name);
    seen.add(c.expect.error || c.expect.status);
  }
  for (const k of ['found', 'absent', 'notdir', 'symlink', 'rollback', 'equivocation', 'wrong_key', 'bad_signature', 'expired',
    'from_future', 'missing_root', 'bad_proof', 'bad_name', 'status_mismatch', 'bad_inline', 'unsupported', 'malformed_frame',
    'frame_too_large', 'unexpected_type', 'unknown_type', 'remote']) {
    assert.ok(seen.has(k), `no case for ${k}`);
  }
  // the zstd frame is the only one where the worker differs from Go
  const differ = v.frames.filter((c) => JSON.stringify(c.go) !== JSON.stringify(c.expect));
  assert.deepEqual(differ.map((c) => c.name), ['app.js, zstd inline']);
});

test('a latest lookup: root, proof and inline content in one frame', async () => {
  const c = v.frames.find((f) => f.name === 'latest index.html, inline');
  const frame = fromHex(c.hex);
  assert.equal(frame[0], 0x43);
  const r = decodeLookupFrame(frame);
  assert.equal(r.status, 'found');
  assert.equal(toHex(r.root.bytes), v.roots[1]);
  const res = await verifyLookup(r, { path: 'index.html', siteKey: v.site_key, now: c.now * 1000 });
  assert.equal(new TextDecoder().decode(res.inline), '<!doctype html>\n<title>grits</title>\n<p>version 2</p>\n');
  assert.equal(res.entry.kind, 'file');
  assert.equal(res.entry.size, res.inline.length);
  assert.equal(res.node.type, 'file');
  assert.equal(toHex(res.root.bytes), v.roots[1]);
  // the payload alone decodes the same
  const again = decodeLookupResult(frame.subarray(3));
  assert.equal(again.proof.nodes.length, r.proof.nodes.length);
});

test('a multi-chunk file inline is checked chunk by chunk', async () => {
  const c = v.frames.find((f) => f.name === 'app.js, 3 chunks inline');
  const r = decodeLookupFrame(fromHex(c.hex));
  const res = await verifyLookup(r, { path: 'app.js', treeHash: c.tree });
  assert.equal(res.node.hashes.length, 3);
  assert.equal(res.node.chunkSize, 4096);
  checkInline(res.node, r.inline);
  const bad = r.inline.slice();
  bad[8999] ^= 1;
  assert.throws(() => checkInline(res.node, bad), (e) => e.code === 'bad_inline');
  assert.throws(() => checkInline(res.node, r.inline.subarray(1)), (e) => e.code === 'bad_inline');
});

test('zstd inline data is refused as unsupported after the frame checked out', () => {
  const c = v.frames.find((f) => f.name === 'app.js, zstd inline');
  assert.throws(() => decodeLookupFrame(fromHex(c.hex)), (e) => e.code === 'unsupported');
});

test('an Error frame carries its code and message', () => {
  const c = v.frames.find((f) => f.name === 'Error UnknownRoot');
  assert.throws(() => decodeLookupFrame(fromHex(c.hex)), (e) => e.code === 'remote' && e.remoteCode === 6 && e.remoteMessage === 'tree not on this node');
});

test('found directory and symlink targets', async () => {
  const dir = v.frames.find((f) => f.name === 'docs');
  const rd = await verifyLookup(decodeLookupFrame(fromHex(dir.hex)), { path: dir.path, treeHash: dir.tree });
  assert.equal(rd.entry.kind, 'dir');
  assert.equal(rd.node.type, 'dir');
  assert.deepEqual(rd.node.entries.map((e) => e.name), ['readme.md']);
  const link = v.frames.find((f) => f.name === 'link');
  const rl = await verifyLookup(decodeLookupFrame(fromHex(link.hex)), { path: link.path, treeHash: link.tree });
  assert.equal(rl.entry.kind, 'symlink');
  assert.equal(rl.entry.target, 'index.html');
  assert.equal(rl.node, null);
  const root = v.frames.find((f) => f.name === 'root directory');
  const rr = await verifyLookup(decodeLookupFrame(fromHex(root.hex)), { path: '', treeHash: root.tree });
  assert.equal(formatHash(rr.entry.hash), root.tree);
  assert.equal(formatHash(blake3(decodeLookupFrame(fromHex(root.hex)).proof.nodes[0])), root.tree);
  assert.equal(decodeNode(decodeLookupFrame(fromHex(root.hex)).proof.nodes[0]).type, 'dir');
});
