// Media types (sw/js/types.js) against internal/mediatype: the same table,
// the same answer for every name and stored type of
// sw/testdata/media_types.json, so a file of a tree written before
// entries carried a type gets the same type from the worker as from the
// origin.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TYPES, DEFAULT_TYPE, serveType, typeByName } from '../js/types.js';
import { validMediaType } from '../js/grits.js';

const vectors = JSON.parse(readFileSync(new URL('../testdata/media_types.json', import.meta.url), 'utf8'));

test('the table is the Go table', () => {
  assert.deepEqual({ ...TYPES }, vectors.table);
  for (const [ext, t] of Object.entries(TYPES)) assert.ok(validMediaType(t), `.${ext}: ${t}`);
  assert.equal(DEFAULT_TYPE, 'application/octet-stream');
});

test('serveType answers as mediatype.Serve', () => {
  assert.ok(vectors.cases.length > 10);
  for (const c of vectors.cases) {
    assert.equal(serveType(c.stored, c.name), c.want, `${JSON.stringify(c.stored)} ${c.name}`);
  }
  assert.equal(typeByName('constructor'), '');
  assert.equal(typeByName('x.constructor'), '');
  assert.equal(typeByName('x.__proto__'), '');
});
