// src/sha256.js (the browsers' incremental SHA-256) against node:crypto, at
// the padding boundaries and fed in uneven pieces.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { Sha256 } from '../src/sha256.js';

test('sha256 matches node:crypto at every padding boundary, fed in uneven pieces', () => {
  for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, 65_537]) {
    const bytes = randomBytes(n);
    const whole = new Sha256().update(bytes).hex();
    const pieces = new Sha256();
    for (let at = 0, step = 1; at < n; at += step, step = (step * 7) % 97 + 1) pieces.update(bytes.subarray(at, at + step));
    const expected = createHash('sha256').update(bytes).digest('hex');
    assert.equal(whole, expected, `${n} bytes in one piece`);
    assert.equal(pieces.hex(), expected, `${n} bytes in pieces`);
  }
  assert.equal(new Sha256().update(new TextEncoder().encode('abc')).hex(),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});
