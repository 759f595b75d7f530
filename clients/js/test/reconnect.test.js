// Reconnection: a daemon restart in the middle of a subscription loses no
// event; a resume the server cannot replay reloads the snapshot; session-bound
// registrations are renewed (or replaced) from the new connection.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { client, next, service, sleep, until } from './helpers/common.js';
import { Proxy } from './helpers/proxy.js';
import { startRegistryd } from './helpers/registryd.js';

// Runs `body` with a fresh daemon (and a proxy in front of it), then cleans up.
async function withDaemon(config, body) {
  const daemon = await startRegistryd({ config });
  const proxy = await new Proxy(daemon.host, daemon.port).listen();
  const clients = [];
  const make = (url, options) => {
    const c = client(url, options);
    clients.push(c);
    return c;
  };
  try {
    await body({ daemon, proxy, make });
  } finally {
    for (const c of clients) await c.close();
    await proxy.close();
    await daemon.dispose();
  }
}

test('a daemon restart in the middle of a subscription loses no event', async () => {
  await withDaemon('', async ({ daemon, make }) => {
    // The watcher reconnects slowly, so the changes made right after the
    // restart happen while it is away and must come from the replay.
    const watcher = make(daemon.url, { reconnect: { initialDelayMs: 1500, maxDelayMs: 1500 } });
    const opened = [];
    watcher.on('open', () => opened.push(Date.now()));
    const sub = await watcher.subscribe({ services: ['rs'], snapshot: false });
    const seen = [];
    sub.on('*', (e) => seen.push(`${e.event}:${e.data.service?.instance_id ?? ''}:${e.revision}`));
    sub.on(['resync_required', 'registry_loaded'], (e) => seen.push(`UNEXPECTED ${e.event}`));

    const writer = make(daemon.url);
    await writer.register({ service: service('rs', 'rs-1') });
    await writer.register({ service: service('rs', 'rs-2') });
    await until(() => seen.length === 2, 5000, 'the first two events');
    // A session-bound registration of another client rides the restart out.
    // Being no event for the watcher, it moves the registry's revision past
    // the watcher's last event: only the bookmark registryd sends when it
    // shuts down lets the watcher resume without a resync.
    const owner = make(daemon.url);
    const renewed = [];
    owner.on('reregistered', (d) => renewed.push(d));
    const bound = await owner.registerService(service('bound', 'bound-1'), { ttlSeconds: 60, sessionBound: true });

    await daemon.restart();
    const fresh = make(daemon.url);
    const revisions = [];
    for (const id of ['rs-3', 'rs-4']) revisions.push((await fresh.register({ service: service('rs', id) })).revision);
    revisions.push((await fresh.setState('rs-3', 'running')).revision);
    assert.equal(opened.length, 1, 'the watcher was still away while the changes were made');

    await until(() => seen.length >= 5, 10_000, 'the events made while the watcher was away');
    revisions.push((await fresh.deregister('rs-1')).revision); // and live events after the resume
    await until(() => seen.length >= 6, 5000, 'a live event after the resume');
    await sleep(100);
    assert.deepEqual(
      seen.map((s) => s.split(':').slice(0, 2).join(':')),
      [
        'service_registered:rs-1',
        'service_registered:rs-2',
        'service_registered:rs-3',
        'service_registered:rs-4',
        'service_state_changed:rs-3',
        'service_deregistered:rs-1',
      ],
    );
    assert.deepEqual(
      seen.slice(2).map((s) => Number(s.split(':')[2])),
      revisions,
    );
    assert.equal(opened.length, 2);
    assert.deepEqual([...sub.services.keys()].sort(), ['rs-2', 'rs-3', 'rs-4']);

    await until(() => renewed.length === 1, 5000, 'the session-bound registration to be renewed');
    assert.equal(renewed[0].lease_id, bound.leaseId, 'the same lease, moved to the new connection');
    const kept = (await fresh.getService('bound-1')).service;
    assert.equal(kept.lease.id, bound.leaseId);
    assert.equal(kept.lease.session_bound, true);
  });
});

test('events made during a network cut are replayed, in order, once', async () => {
  await withDaemon('', async ({ daemon, proxy, make }) => {
    const watcher = make(proxy.url);
    const reconnecting = [];
    watcher.on('reconnecting', (r) => reconnecting.push(r));
    const sub = await watcher.subscribe({ services: ['cut'] });
    const it = sub.events();
    assert.equal((await next(it)).event, 'registry_loaded');
    const writer = make(daemon.url);
    await writer.register({ service: service('cut', 'cut-1') });
    assert.equal((await next(it)).data.service.instance_id, 'cut-1');

    proxy.cut();
    await until(() => watcher.state !== 'open', 5000, 'the watcher to notice the cut');
    for (const id of ['cut-2', 'cut-3', 'cut-4']) await writer.register({ service: service('cut', id) });
    await until(() => reconnecting.length >= 3, 5000, 'refused reconnect attempts');
    proxy.restore();
    for (const id of ['cut-2', 'cut-3', 'cut-4']) {
      const e = await next(it, 10_000, id);
      assert.equal(e.event, 'service_registered');
      assert.equal(e.data.service.instance_id, id);
    }
    await writer.register({ service: service('cut', 'cut-5') });
    assert.equal((await next(it)).data.service.instance_id, 'cut-5');
    assert.ok(proxy.connections >= 2, 'the watcher reconnected');
    // Attempts while the proxy refused: growing delays (50 ms doubling up to
    // 500 ms, each drawn from the upper half of its step), each with its error.
    assert.ok(reconnecting.length >= 2, `${reconnecting.length} reconnect attempts`);
    reconnecting.forEach((r, i) => {
      const step = Math.min(500, 50 * 2 ** i);
      assert.equal(r.attempt, i + 1);
      assert.ok(r.delayMs >= step / 2 && r.delayMs <= step, `attempt ${r.attempt}: ${r.delayMs} ms`);
      assert.ok(r.error instanceof Error);
    });
  });
});

test('a resume beyond the history gets resync_required and a fresh snapshot', async () => {
  await withDaemon('registry:\n  history_limit: 2\n', async ({ daemon, proxy, make }) => {
    const watcher = make(proxy.url);
    const writer = make(daemon.url);
    await writer.register({ service: service('rsy', 'rsy-old') });
    const sub = await watcher.subscribe({ services: ['rsy'] });
    const it = sub.events();
    assert.equal((await next(it)).event, 'registry_loaded');

    proxy.cut();
    await until(() => watcher.state !== 'open', 5000, 'the watcher to notice the cut');
    await writer.deregister('rsy-old');
    for (let i = 1; i <= 5; i++) await writer.register({ service: service('rsy', `rsy-${i}`) });
    proxy.restore();

    const resync = await next(it, 10_000, 'resync_required');
    assert.equal(resync.event, 'resync_required');
    const loaded = await next(it, 5000, 'the new snapshot');
    assert.equal(loaded.event, 'registry_loaded');
    const ids = ['rsy-1', 'rsy-2', 'rsy-3', 'rsy-4', 'rsy-5'];
    assert.deepEqual(
      loaded.data.services.map((s) => s.instance_id),
      ids,
    );
    assert.deepEqual([...sub.services.keys()], ids, 'the view is reloaded (rsy-old is gone)');

    await writer.setState('rsy-1', 'running');
    const live = await next(it);
    assert.equal(live.event, 'service_state_changed');
    assert.equal(sub.services.get('rsy-1').state, 'running');
  });
});

test('session-bound registrations move to the new connection, or are replaced when their lease is gone', async () => {
  await withDaemon('registry:\n  session_grace_seconds: 1\n', async ({ daemon, proxy, make }) => {
    const owner = make(proxy.url);
    const observer = make(daemon.url);
    const renewals = [];
    owner.on('reregistered', (d) => renewals.push(d));

    // A short cut: the same lease is renewed from the new connection.
    const r = await owner.register({ service: service('sb', 'sb-1'), ttl_seconds: 60, session_bound: true });
    proxy.cut();
    await sleep(200);
    proxy.restore();
    await until(() => renewals.length === 1, 5000, 'the re-registration');
    assert.equal(renewals[0].lease_id, r.lease_id);
    await sleep(1500); // longer than the grace: the lease now belongs to the new connection
    const kept = await observer.getService('sb-1');
    assert.equal(kept.service.lease.id, r.lease_id);
    assert.equal(kept.service.lease.session_bound, true);

    // A cut longer than the grace: the lease expires; the handle registers anew.
    const handle = await owner.registerService(service('sb', 'sb-2'), { ttlSeconds: 60, sessionBound: true });
    const handleEvents = [];
    handle.on('reregistered', (d) => handleEvents.push(d));
    const firstLease = handle.leaseId;
    const gone = await observer.subscribe({ services: ['sb'], events: ['service_deregistered'], snapshot: false });
    const goneIt = gone.events();
    proxy.cut();
    const d1 = await next(goneIt, 10_000, 'the first expiry');
    const d2 = await next(goneIt, 10_000, 'the second expiry');
    assert.deepEqual([d1.data.service.instance_id, d2.data.service.instance_id].sort(), ['sb-1', 'sb-2']);
    proxy.restore();
    await until(() => handleEvents.length === 1, 10_000, 'the handle to register again');
    assert.notEqual(handle.leaseId, firstLease);
    const back = await observer.getService('sb-2');
    assert.equal(back.service.lease.id, handle.leaseId);
    await until(async () => (await observer.listServices({ name: 'sb' })).services.length === 2, 5000, 'sb-1 back');

    // After close() the registration is gone and not renewed again.
    await handle.close();
    await owner.deregister('sb-1');
    proxy.cut();
    proxy.restore();
    await sleep(500);
    assert.equal((await observer.listServices({ name: 'sb' })).services.length, 0);
  });
});
