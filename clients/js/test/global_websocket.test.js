// The client on the platform's WebSocket (the browsers' API), here Node's own
// global WebSocket (--experimental-websocket on Node 20, default on 22+).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const flag = process.allowedNodeEnvironmentFlags.has('--experimental-websocket') ? ['--experimental-websocket'] : [];
const available = typeof globalThis.WebSocket === 'function' || flag.length > 0;

let daemon;

before(async () => {
  daemon = await startRegistryd();
});

after(async () => {
  await daemon?.dispose();
});

test('with a global WebSocket the client uses it and sends the token as access_token', { skip: !available && 'this Node has no global WebSocket' }, async () => {
  const script = resolve(here, 'fixtures/global_websocket_client.js');
  const { stdout } = await promisify(execFile)(process.execPath, [...flag, script, daemon.url], { timeout: 20_000 });
  const seen = JSON.parse(stdout.trim().split('\n').pop());
  assert.deepEqual(seen.urls, [`${daemon.url}?access_token=s3cret`]);
  assert.equal(seen.loaded, 'registry_loaded');
  assert.equal(seen.registered, 'browser-1');
  assert.equal(seen.created, true);
  assert.equal(seen.errorCode, 'not_found');
});
