// Events through a Subscription: async iterators, listeners, server-side and
// client-side filters, the snapshot and the `services` view.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { client, next, service, sleep, until } from './helpers/common.js';
import { startRegistryd } from './helpers/registryd.js';

let daemon;
let c; // the subscriber
let w; // the writer: changes come from another connection

before(async () => {
  daemon = await startRegistryd();
  c = client(daemon.url);
  w = client(daemon.url);
});

after(async () => {
  await c?.close();
  await w?.close();
  await daemon?.dispose();
});

test('a subscription starts with a snapshot, then every change in order (async iterator)', async () => {
  await w.register({ service: service('snap', 'snap-1') });
  const sub = await c.subscribe({ services: ['snap'] });
  const it = sub.events();
  const loaded = await next(it);
  assert.equal(loaded.event, 'registry_loaded');
  assert.deepEqual(
    loaded.data.services.map((s) => s.instance_id),
    ['snap-1'],
  );
  assert.equal(sub.revision, loaded.revision);

  const reg = await w.register({ service: service('snap', 'snap-2', 9002) });
  const e1 = await next(it);
  assert.equal(e1.event, 'service_registered');
  assert.equal(e1.revision, reg.revision);
  assert.equal(e1.data.service.instance_id, 'snap-2');

  await w.setState('snap-2', 'running');
  const e2 = await next(it);
  assert.equal(e2.event, 'service_state_changed');
  assert.equal(e2.data.previous_state, 'registered');
  assert.equal(e2.data.state, 'running');

  await w.register({ service: service('snap', 'snap-2', 9003), lease_id: reg.lease_id });
  const e3 = await next(it);
  assert.equal(e3.event, 'endpoint_updated');
  assert.equal(e3.data.endpoints[0].port, 9003);

  await w.deregister('snap-1');
  const e4 = await next(it);
  assert.equal(e4.event, 'service_deregistered');
  assert.equal(e4.data.reason, 'deregistered');

  // The view follows the events.
  assert.deepEqual([...sub.services.keys()], ['snap-2']);
  assert.equal(sub.services.get('snap-2').state, 'running');
  assert.equal(sub.services.get('snap-2').endpoints[0].port, 9003);
  assert.equal(sub.revision, e4.revision);

  await sub.close();
  assert.deepEqual(await it.next(), { value: undefined, done: true }, 'closing ends the iterator');
});

test('for await over a subscription, ended by close()', async () => {
  const sub = await c.subscribe({ services: ['loop'], snapshot: false });
  const seen = [];
  const consumer = (async () => {
    for await (const e of sub) {
      seen.push(e.data.service.instance_id);
      if (seen.length === 3) await sub.close();
    }
  })();
  for (const id of ['loop-1', 'loop-2', 'loop-3']) await w.register({ service: service('loop', id) });
  await consumer;
  assert.deepEqual(seen, ['loop-1', 'loop-2', 'loop-3']);
});

test('listeners per event type, with a client-side filter, removable', async () => {
  const sub = await c.subscribe({ services: ['lsn'], snapshot: false });
  const registered = [];
  const states = [];
  const all = [];
  sub.on('service_registered', (e) => registered.push(e.data.service.instance_id));
  const off = sub.on(['service_state_changed'], (e) => states.push(e.data.state), {
    filter: (e) => e.data.state !== 'stopping',
  });
  sub.on((e) => all.push(e.event));

  await w.register({ service: service('lsn', 'lsn-1') });
  await w.setState('lsn-1', 'running');
  await w.setState('lsn-1', 'stopping');
  await w.setState('lsn-1', 'stopped');
  await until(() => all.length === 4, 5000, 'four events');
  assert.deepEqual(registered, ['lsn-1']);
  assert.deepEqual(states, ['running', 'stopped']);

  off();
  await w.setState('lsn-1', 'starting');
  await until(() => all.length === 5, 5000, 'the fifth event');
  assert.deepEqual(states, ['running', 'stopped'], 'a removed listener gets nothing');
  await sub.close();
});

test('server-side filters: event types and service names', async () => {
  const sub = await c.subscribe({ events: ['service_deregistered'], services: ['keep'], snapshot: false });
  const it = sub.events();
  await w.register({ service: service('keep', 'keep-1') });
  await w.register({ service: service('drop', 'drop-1') });
  await w.deregister('drop-1');
  await w.deregister('keep-1');
  const e = await next(it);
  assert.equal(e.event, 'service_deregistered');
  assert.equal(e.data.service.instance_id, 'keep-1');
  await sleep(100);
  assert.equal(sub.revision, e.revision);
  await sub.close();
});

test('iterators of one subscription each get every event; filters per iterator', async () => {
  const sub = await c.subscribe({ services: ['two'], snapshot: false });
  const a = sub.events();
  const b = sub.events({ filter: (e) => e.data.service.instance_id.endsWith('-2') });
  await w.register({ service: service('two', 'two-1') });
  await w.register({ service: service('two', 'two-2') });
  assert.equal((await next(a)).data.service.instance_id, 'two-1');
  assert.equal((await next(a)).data.service.instance_id, 'two-2');
  assert.equal((await next(b)).data.service.instance_id, 'two-2');
  await b.return();
  await sub.close();
});

test('from_revision replays the history after it', async () => {
  const first = await w.register({ service: service('hist', 'hist-1') });
  await w.register({ service: service('hist', 'hist-2') });
  await w.setState('hist-1', 'running');
  const sub = await c.subscribe({ services: ['hist'], from_revision: first.revision });
  const it = sub.events();
  const e1 = await next(it);
  const e2 = await next(it);
  assert.deepEqual(
    [e1.event, e1.data.service.instance_id, e2.event, e2.data.service.instance_id],
    ['service_registered', 'hist-2', 'service_state_changed', 'hist-1'],
  );
  await sub.close();
});

test('lease expiry: lease_expired then service_deregistered, same revision', async () => {
  const sub = await c.subscribe({ services: ['short'], snapshot: false });
  const it = sub.events();
  await w.register({ service: service('short', 'short-1'), ttl_seconds: 1 });
  assert.equal((await next(it)).event, 'service_registered');
  const expired = await next(it, 5000, 'lease_expired');
  const gone = await next(it, 5000, 'service_deregistered');
  assert.equal(expired.event, 'lease_expired');
  assert.equal(expired.data.reason, 'ttl');
  assert.equal(gone.event, 'service_deregistered');
  assert.equal(gone.data.reason, 'lease_expired');
  assert.equal(expired.revision, gone.revision);
  await sub.close();
});

test('bookmarks are delivered only when asked for', async () => {
  const ticking = await startRegistryd({ config: 'registry:\n  bookmark_interval_seconds: 1\n' });
  const b = client(ticking.url);
  try {
    const sub = await b.subscribe({ services: ['none'], snapshot: false });
    const plain = [];
    sub.on((e) => plain.push(e.event));
    const marks = sub.events({ types: 'bookmark' });
    // A bookmark tells a filtered subscriber that the registry moved on
    // without anything for it: it comes once there was a change.
    const other = await b.register({ service: service('other', 'other-1') });
    const mark = await next(marks, 5000, 'a bookmark');
    assert.equal(mark.event, 'bookmark');
    assert.equal(mark.revision, other.revision);
    assert.deepEqual(plain, []);
    assert.equal(sub.revision, mark.revision);
  } finally {
    await b.close();
    await ticking.dispose();
  }
});

test('events that arrived before the first consumer are handed to it, even after the end', async () => {
  const sub = await c.subscribe({ services: ['early'] });
  await w.register({ service: service('early', 'early-1') });
  await until(() => sub.services.has('early-1'), 5000, 'the event to arrive');
  await sub.close();
  const seen = [];
  for await (const e of sub) seen.push(e.event);
  assert.deepEqual(seen, ['registry_loaded', 'service_registered']);
});
