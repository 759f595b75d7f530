// Every action registryd has, through the client's methods, against a real daemon.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { RegistryError } from '../src/index.js';
import { client, service } from './helpers/common.js';
import { startRegistryd } from './helpers/registryd.js';

let daemon;
let c;

before(async () => {
  daemon = await startRegistryd();
  c = client(daemon.url);
});

after(async () => {
  await c?.close();
  await daemon?.dispose();
});

// Resolves to the RegistryError `promise` rejects with (fails if it resolves).
async function rejection(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RegistryError, `expected a RegistryError, got ${err}`);
    return err;
  }
  assert.fail('expected the request to fail');
}

describe('register', () => {
  test('creates an instance under a new lease', async () => {
    const r = await c.register({ service: service('api', 'api-1'), ttl_seconds: 30 });
    assert.equal(r.instance_id, 'api-1');
    assert.equal(r.created, true);
    assert.equal(r.ttl_seconds, 30);
    assert.ok(Number.isSafeInteger(r.lease_id) && r.lease_id > 0);
    assert.ok(r.revision > 0);
    assert.ok(r.expires_at_ms > Date.now());
  });

  test('generates an instance id from the name and lease', async () => {
    const r = await c.register({ service: { name: 'gen' } });
    assert.equal(r.instance_id, `gen-${r.lease_id}`);
    assert.equal(r.ttl_seconds, 30, 'the server default TTL');
  });

  test('re-registers under the current lease', async () => {
    const first = await c.register({ service: service('web', 'web-1', 9000), ttl_seconds: 30 });
    const again = await c.register({
      service: { ...service('web', 'web-1', 9001), version: '2.0.0' },
      ttl_seconds: 30,
      lease_id: first.lease_id,
    });
    assert.equal(again.created, false);
    assert.equal(again.lease_id, first.lease_id);
    assert.ok(again.revision > first.revision);
    const { service: s } = await c.getService('web-1');
    assert.equal(s.version, '2.0.0');
    assert.equal(s.endpoints[0].port, 9001);
  });

  test('a taken instance id is a conflict', async () => {
    const err = await rejection(c.register({ service: service('api', 'api-1') }));
    assert.equal(err.code, 'conflict');
    assert.equal(err.action, 'register');
  });

  test('a wrong lease id is lease_not_found', async () => {
    const err = await rejection(c.register({ service: service('api', 'api-1'), lease_id: 987654 }));
    assert.equal(err.code, 'lease_not_found');
  });

  test('invalid params name the field', async () => {
    const bad = service('api', 'api-9');
    bad.endpoints[0].port = 70000;
    const err = await rejection(c.register({ service: bad }));
    assert.equal(err.code, 'invalid_request');
    assert.match(err.message, /params\.service\.endpoints\[0\]\.port: must be 1-65535/);
  });
});

describe('keepalive', () => {
  test('renews a lease', async () => {
    const r = await c.register({ service: service('ka', 'ka-1'), ttl_seconds: 60 });
    const k = await c.keepalive(r.lease_id);
    assert.equal(k.lease_id, r.lease_id);
    assert.equal(k.instance_id, 'ka-1');
    assert.equal(k.ttl_seconds, 60);
    assert.ok(k.expires_at_ms >= r.expires_at_ms);
    const same = await c.keepalive({ lease_id: r.lease_id });
    assert.equal(same.lease_id, r.lease_id);
  });

  test('an unknown lease is lease_not_found', async () => {
    const err = await rejection(c.keepalive(424242));
    assert.equal(err.code, 'lease_not_found');
  });
});

describe('get_service', () => {
  test('by instance id and by name', async () => {
    await c.register({ service: service('pair', 'pair-a') });
    await c.register({ service: service('pair', 'pair-b') });
    const one = await c.getService('pair-a');
    assert.equal(one.service.instance_id, 'pair-a');
    assert.equal(one.service.state, 'registered');
    const byObject = await c.getService({ instance_id: 'pair-b' });
    assert.equal(byObject.service.instance_id, 'pair-b');
    const all = await c.getService({ name: 'pair' });
    assert.deepEqual(
      all.services.map((s) => s.instance_id),
      ['pair-a', 'pair-b'],
    );
  });

  test('errors', async () => {
    assert.equal((await rejection(c.getService('nope-1'))).code, 'not_found');
    assert.equal((await rejection(c.getService({ name: 'nope' }))).code, 'not_found');
    const both = await rejection(c.getService({ name: 'pair', instance_id: 'pair-a' }));
    assert.equal(both.code, 'invalid_request');
    assert.match(both.message, /exactly one of instance_id and name/);
  });
});

describe('list_services and list_endpoints', () => {
  test('filters', async () => {
    await c.register({ service: { ...service('lst', 'lst-1', 7001), version: '1.0', metadata: { team: 'a' } } });
    await c.register({ service: { ...service('lst', 'lst-2', 7002), version: '2.0', metadata: { team: 'b' } } });
    const all = await c.listServices();
    assert.ok(all.revision > 0);
    assert.ok(all.services.some((s) => s.instance_id === 'lst-1'));
    const ids = all.services.map((s) => s.instance_id);
    assert.deepEqual(ids, [...ids].sort(), 'instances come in instance_id order');

    const v2 = await c.listServices({ name: 'lst', version: '2.0' });
    assert.deepEqual(
      v2.services.map((s) => s.instance_id),
      ['lst-2'],
    );
    const teamA = await c.listServices({ metadata: { team: 'a' } });
    assert.deepEqual(
      teamA.services.map((s) => s.instance_id),
      ['lst-1'],
    );
    const local = await c.listServices({ name: 'lst', host: 'local' });
    assert.equal(local.services.length, 2);

    const eps = await c.listEndpoints({ service: 'lst' });
    assert.deepEqual(
      eps.endpoints.map((e) => [e.instance_id, e.name, e.port, e.protocol]),
      [
        ['lst-1', 'http', 7001, 'http'],
        ['lst-2', 'http', 7002, 'http'],
      ],
    );
    assert.equal((await c.listEndpoints({ service: 'lst', protocol: 'grpc' })).endpoints.length, 0);
  });

  test('an unknown filter is invalid_request', async () => {
    const err = await rejection(c.listServices({ colour: 'red' }));
    assert.equal(err.code, 'invalid_request');
    assert.match(err.message, /params\.colour: unknown field/);
  });
});

describe('set_state', () => {
  test('walks the state machine', async () => {
    await c.register({ service: service('sm', 'sm-1') });
    const running = await c.setState('sm-1', 'running');
    assert.equal(running.changed, true);
    assert.equal(running.service.state, 'running');
    const again = await c.setState('sm-1', 'running');
    assert.equal(again.changed, false);
    assert.equal(again.revision, running.revision);
    const failed = await c.setState({ instance_id: 'sm-1', state: 'failed', reason: 'disk full' });
    assert.equal(failed.service.failure_reason, 'disk full');
    const listed = await c.listServices({ state: 'failed', name: 'sm' });
    assert.deepEqual(
      listed.services.map((s) => s.instance_id),
      ['sm-1'],
    );
  });

  test('errors', async () => {
    await c.register({ service: service('sm', 'sm-2') });
    await c.setState('sm-2', 'running');
    const err = await rejection(c.setState('sm-2', 'starting'));
    assert.equal(err.code, 'invalid_transition');
    assert.match(err.message, /cannot go from running to starting/);
    assert.equal((await rejection(c.setState('sm-none', 'running'))).code, 'not_found');
  });
});

describe('deregister', () => {
  test('removes the instance', async () => {
    await c.register({ service: service('gone', 'gone-1') });
    const r = await c.deregister('gone-1');
    assert.equal(r.instance_id, 'gone-1');
    assert.ok(r.revision > 0);
    assert.equal((await rejection(c.getService('gone-1'))).code, 'not_found');
    assert.equal((await rejection(c.deregister({ instance_id: 'gone-1' }))).code, 'not_found');
  });
});

describe('subscribe and unsubscribe', () => {
  test('a subscription gets an id and the current revision', async () => {
    const { revision } = await c.listServices();
    const sub = await c.subscribe({ snapshot: false });
    assert.match(sub.id, /^s\d+$/);
    assert.equal(sub.revision, revision);
    const id = sub.id;
    const r = await c.unsubscribe(sub);
    assert.equal(r.subscription, id);
    assert.equal(sub.closed, true);
    const err = await rejection(c.request('unsubscribe', { subscription: id }));
    assert.equal(err.code, 'not_found');
  });

  test('invalid subscribe params reject and leave no subscription', async () => {
    const err = await rejection(c.subscribe({ events: 'all' }));
    assert.equal(err.code, 'invalid_request');
  });
});

describe('the envelope', () => {
  test('an unknown action is unknown_action', async () => {
    const err = await rejection(c.request('regsiter', {}));
    assert.equal(err.code, 'unknown_action');
    assert.match(err.message, /unknown action 'regsiter'/);
  });

  test('an action of a capability this daemon has not configured rejects with unavailable', async () => {
    const err = await rejection(c.listNodes());
    assert.equal(err.code, 'unavailable');
    assert.equal(err.action, 'list_nodes');
  });

  test('pipelined requests resolve to their own responses', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `pipe-${i}`);
    const results = await Promise.all(names.map((n) => c.register({ service: service('pipe', n) })));
    assert.deepEqual(
      results.map((r) => r.instance_id),
      names,
    );
  });
});
