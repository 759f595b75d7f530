// The seed's example client class (test/fixtures/seed_client.js, verbatim)
// against registryd: the protocol envelope is the seed's.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

import { startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const seedFile = resolve(here, '../../../../shared/seeds/004_c6b72cdcac8c43ea.txt');

// The class uses the platform's WebSocket and crypto.randomUUID (browsers,
// Node 22); Node 20 gets the `ws` package as its global WebSocket.
globalThis.WebSocket ??= WebSocket;
globalThis.crypto ??= (await import('node:crypto')).webcrypto; // Node 18
const { RegistryClient } = await import('./fixtures/seed_client.js');

let daemon;
let client;
const events = [];

before(async () => {
  daemon = await startRegistryd();
  // The seed's class calls this.emit() without defining it (the design leaves
  // the emitter to the application); it is provided from outside the class.
  RegistryClient.prototype.emit = (event, data) => events.push({ event, data });
  client = new RegistryClient(daemon.url);
  // The seed's usage sends right after `new`, which no WebSocket allows
  // before the connection is open; wait for it like any caller must.
  await new Promise((res, rej) => {
    client.ws.addEventListener('open', res, { once: true });
    client.ws.addEventListener('error', rej, { once: true });
  });
});

after(async () => {
  client?.ws.close();
  await daemon?.dispose();
});

test('the fixture is the seed class, unchanged', (t) => {
  if (!existsSync(seedFile)) {
    t.skip(`seed not found at ${seedFile}`);
    return;
  }
  const seed = readFileSync(seedFile, 'utf8');
  const start = seed.indexOf('class RegistryClient {');
  const cls = seed.slice(start, seed.indexOf('// Usage', start)).trimEnd();
  const fixture = readFileSync(resolve(here, 'fixtures/seed_client.js'), 'utf8');
  const copied = fixture.slice(fixture.indexOf('class RegistryClient {'), fixture.indexOf('// --- end seed ---')).trimEnd();
  assert.equal(copied, cls);
});

test('the seed client lists, registers, subscribes and receives events', async () => {
  const empty = await client.request('list_services', {});
  assert.equal(empty.type, 'response');
  assert.deepEqual(empty.data.services, []);

  const sub = await client.request('subscribe', {});
  assert.match(sub.data.subscription, /^s\d+$/);

  const reg = await client.request('register', {
    service: {
      name: 'api',
      instance_id: 'api-1',
      endpoints: [{ name: 'http', address: '127.0.0.1', port: 8081, protocol: 'http' }],
    },
    ttl_seconds: 30,
  });
  assert.equal(reg.data.instance_id, 'api-1');

  const got = await client.request('get_service', { instance_id: 'api-1' });
  assert.equal(got.data.service.endpoints[0].port, 8081);
  const eps = await client.request('list_endpoints', {});
  assert.equal(eps.data.endpoints[0].instance_id, 'api-1');

  const bad = await client.request('get_service', { instance_id: 'nope' });
  assert.equal(bad.error.code, 'not_found');

  const deadline = Date.now() + 5000;
  while (events.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(
    events.map((e) => e.event),
    ['registry_loaded', 'service_registered'],
  );
  assert.equal(events[1].data.service.instance_id, 'api-1');
});
