// registerService(): the handle keeps the lease alive until close().
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { RegistryError } from '../src/index.js';
import { client, next, service, sleep, until } from './helpers/common.js';
import { startRegistryd } from './helpers/registryd.js';

let daemon;
let c;
let observer;

before(async () => {
  daemon = await startRegistryd();
  c = client(daemon.url);
  observer = client(daemon.url);
});

after(async () => {
  await c?.close();
  await observer?.close();
  await daemon?.dispose();
});

test('the lease outlives its TTL while the handle is open; close() deregisters', async () => {
  const handle = await c.registerService(service('hnd', 'hnd-1'), { ttlSeconds: 1 });
  assert.equal(handle.instanceId, 'hnd-1');
  assert.equal(handle.ttlSeconds, 1);
  const renewals = [];
  handle.on('renewed', (d) => renewals.push(d.expires_at_ms));
  await sleep(2500);
  const { service: s } = await observer.getService('hnd-1');
  assert.equal(s.lease.id, handle.leaseId);
  assert.ok(renewals.length >= 5, `renewed ${renewals.length} times`);
  assert.ok(handle.expiresAtMs > Date.now());

  await handle.setState('running');
  assert.equal((await observer.getService('hnd-1')).service.state, 'running');
  await handle.update({ version: '1.1', endpoints: [] });
  const updated = (await observer.getService('hnd-1')).service;
  assert.equal(updated.version, '1.1');
  assert.deepEqual(updated.endpoints, []);
  assert.equal(updated.lease.id, handle.leaseId);

  await handle.close();
  assert.equal(handle.closed, true);
  await assert.rejects(observer.getService('hnd-1'), (e) => e instanceof RegistryError && e.code === 'not_found');
});

test('a lease lost behind the handle is replaced by a new registration', async () => {
  const handle = await c.registerService({ name: 'lost' }, { ttlSeconds: 30, keepaliveIntervalMs: 100 });
  assert.match(handle.instanceId, /^lost-\d+$/, 'the generated instance id');
  const replaced = [];
  handle.on('reregistered', (d) => replaced.push(d));
  const old = handle.leaseId;
  await observer.deregister(handle.instanceId);
  await until(() => replaced.length === 1, 5000, 'the re-registration');
  assert.notEqual(handle.leaseId, old);
  assert.equal(replaced[0].instance_id, handle.instanceId, 'the same instance id');
  assert.equal((await observer.getService(handle.instanceId)).service.lease.id, handle.leaseId);
  await handle.close();
});

test('close({deregister: false}) stops renewing and lets the lease run out', async () => {
  const sub = await observer.subscribe({ services: ['drift'], snapshot: false });
  const it = sub.events({ types: 'service_deregistered' });
  const handle = await c.registerService(service('drift', 'drift-1'), { ttlSeconds: 1 });
  await handle.close({ deregister: false });
  const e = await next(it, 5000, 'the expiry');
  assert.equal(e.data.reason, 'lease_expired');
  await sub.close();
});
