// Where the worker inserts the registration script into a page it
// serves from the tree (inject_sw_tree), against the origin's own
// gateway.InjectHTML (sw/testdata/inject.json).
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { injectHTML } from '../js/respond.js';

const vectors = JSON.parse(readFileSync(new URL('../testdata/inject.json', import.meta.url), 'utf8'));
const fromHex = (h) => Uint8Array.from(h.match(/../g) || [], (x) => parseInt(x, 16));
const toHex = (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');

test('injectHTML matches the origin', () => {
  assert.ok(vectors.cases.length >= 10);
  for (const c of vectors.cases) {
    assert.equal(toHex(injectHTML(fromHex(c.page_hex), vectors.tag)), c.want_hex, `page ${c.page_hex}`);
  }
});
