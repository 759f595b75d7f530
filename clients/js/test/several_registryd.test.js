// The client given several real registryd on one etcd (docs/protocol.md,
// "Several registryd"): a writer and two standbys. Writes land on the
// writer, a subscription on a standby gets the writer's events, and when
// the writer is killed the client ends up on the standby that took over
// with its subscription resumed (nothing missing, nothing twice) and its
// session-bound registration renewed. Needs Debian's `etcd` and the
// registryd build; skipped, saying which is missing, without them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, test } from 'node:test';

import { client, service, sleep, until } from './helpers/common.js';
import { Etcd, etcdBinary } from './helpers/etcd.js';
import { Registryd, registrydBin } from './helpers/registryd.js';

const skip = !etcdBinary()
  ? 'etcd is not installed (Debian: etcd-server; or set ETCD_BIN)'
  : !existsSync(registrydBin)
    ? `registryd is not built at ${registrydBin} (or set REGISTRYD_BIN)`
    : false;

let etcd;
let writer; // the registryd that wrote first
let standbys = [];
const daemons = []; // every registryd started, disposed of by after()
const clients = [];

function make(urls, options) {
  const c = client(urls, options);
  clients.push(c);
  return c;
}

// 'writer' or 'standby': what the registryd's log said last.
function role(d) {
  const w = d.stderr.lastIndexOf('"msg":"listening"');
  const s = d.stderr.lastIndexOf('standby: serving reads');
  return w > s ? 'writer' : 'standby';
}

before(async () => {
  if (skip) return;
  etcd = await new Etcd().start();
  const prefix = `/js-test-${randomBytes(6).toString('hex')}/`;
  // Standbys that answer writes not_writer (not relaying them): the client moves.
  const config =
    'store:\n  kind: etcd\n' +
    `  etcd: {endpoints: ["${etcd.clientUrl}"], prefix: "${prefix}", writer_lease_ttl_seconds: 2, relay_writes: false}\n`;
  // The first writes its port file once it listens as the writer; the
  // others once they serve reads as standbys.
  for (let i = 0; i < 3; i++) daemons.push(await new Registryd({ config }).start());
  // Its log line comes before its port file, but node reads stderr as it gets to it.
  for (const d of daemons) {
    await until(() => d.stderr.includes('"msg":"listening"') || d.stderr.includes('standby: serving reads'), 5000,
      'the role in the log');
  }
  [writer, ...standbys] = daemons;
  assert.equal(role(writer), 'writer', writer.stderr);
  for (const s of standbys) assert.equal(role(s), 'standby', s.stderr);
});

after(async () => {
  for (const c of clients) await c.close();
  for (const d of daemons) await d.dispose();
  await etcd?.stop();
});

test('a client given [standby, writer] registers on the writer: moved, and reads work there', { skip }, async () => {
  const [standby] = standbys;
  const c = make([standby.url, writer.url]);
  const moved = [];
  c.on('moved', (m) => moved.push(m));
  await c.connect();
  assert.equal(c.url, standby.url);
  const r = await c.register({ service: service('a', 'a-1') });
  assert.equal(r.instance_id, 'a-1');
  assert.equal(c.url, writer.url);
  assert.deepEqual(moved, [{ from: standby.url, to: writer.url, reason: 'not_writer' }]);
  assert.equal((await c.getService('a-1')).service.instance_id, 'a-1');
  // The standby answers the read too (after the writer acknowledged it), and
  // a client that only reads stays there.
  const reader = make([standby.url, writer.url]);
  assert.equal((await reader.getService('a-1')).service.instance_id, 'a-1');
  assert.equal(reader.url, standby.url);
  // A client given only the standby gets the error: there is nowhere to move.
  const only = make(standby.url);
  await assert.rejects(only.register({ service: service('a', 'a-2') }), { code: 'not_writer' });
});

test("a subscription on a standby gets the writer's events, and moves along with a write", { skip }, async () => {
  const [, standby] = standbys;
  const c = make([standby.url, writer.url]);
  const sub = await c.subscribe({ services: ['b'], snapshot: false });
  assert.equal(c.url, standby.url);
  const seen = [];
  sub.on('*', (e) => seen.push([e.event, e.data.service?.instance_id, e.revision]));
  const w = make(writer.url);
  const revisions = [];
  revisions.push((await w.register({ service: service('b', 'b-1') })).revision);
  revisions.push((await w.setState('b-1', 'running')).revision);
  await until(() => seen.length === 2, 10_000, "the writer's events on the standby");
  assert.equal(c.url, standby.url, 'the subscription did not move the connection');
  // A write of the subscriber moves its connection, and the subscription.
  revisions.push((await c.register({ service: service('b', 'b-2') })).revision);
  assert.equal(c.url, writer.url);
  revisions.push((await w.deregister('b-1')).revision);
  await until(() => seen.length >= 4, 10_000, 'the events after the move');
  await sleep(200); // nothing more (no event twice)
  assert.deepEqual(seen, [
    ['service_registered', 'b-1', revisions[0]],
    ['service_state_changed', 'b-1', revisions[1]],
    ['service_registered', 'b-2', revisions[2]],
    ['service_deregistered', 'b-1', revisions[3]],
  ]);
});

test('the writer killed: the client ends up on the new writer, its subscription resumed, writes go on', { skip }, async () => {
  const all = [writer, ...standbys];
  const c = make(
    all.map((d) => d.url),
    { requestTimeoutMs: 10_000, connectWaitMs: 20_000 },
  );
  const moved = [];
  const renewed = [];
  c.on('moved', (m) => moved.push(m));
  c.on('reregistered', (d) => renewed.push(d));
  const sub = await c.subscribe({ services: ['c'], snapshot: false });
  const seen = [];
  sub.on('*', (e) => seen.push([e.event, e.data.service?.instance_id, e.revision]));
  sub.on(['resync_required', 'registry_loaded'], (e) => seen.push(['UNEXPECTED', e.event, e.revision]));
  const revisions = [];
  revisions.push((await c.register({ service: service('c', 'c-1') })).revision);
  const bound = await c.register({ service: service('cb', 'cb-1'), ttl_seconds: 60, session_bound: true });
  assert.equal(c.url, writer.url);
  await until(() => seen.length === 1, 10_000, 'the first event');

  const old = writer;
  await old.kill9(); // SIGKILL by pid; its dir goes with dispose()
  // One of the standbys takes over, on its own address.
  const next = await until(() => standbys.find((s) => role(s) === 'writer'), 30_000, 'a standby to take over');
  const other = standbys.find((s) => s !== next);
  // A change made through another client while the subscriber may still be away.
  const w = make([other.url, next.url]);
  revisions.push((await w.register({ service: service('c', 'c-2') })).revision);
  // The subscriber's own write succeeds and lands on the new writer.
  revisions.push((await c.register({ service: service('c', 'c-3') })).revision);
  assert.equal(c.url, next.url);
  assert.ok(moved.length >= 1 && moved.every((m) => m.from !== m.to), JSON.stringify(moved));
  assert.equal(moved[0].from, old.url);
  assert.equal(moved.at(-1).to, next.url);
  await until(() => seen.length >= 3, 15_000, 'the events around the failover');
  await sleep(200);
  assert.deepEqual(seen, [
    ['service_registered', 'c-1', revisions[0]],
    ['service_registered', 'c-2', revisions[1]],
    ['service_registered', 'c-3', revisions[2]],
  ]);
  // The session-bound registration was renewed under its lease on the new writer.
  await until(() => renewed.some((d) => d.instance_id === 'cb-1'), 15_000, 'the session-bound registration renewed');
  assert.equal(renewed.find((d) => d.instance_id === 'cb-1').lease_id, bound.lease_id);
  assert.equal((await c.getService('cb-1')).service.lease.session_bound, true);
  // The old writer is gone for good: the rest of this file does not use it.
  writer = null;
  standbys = [next, other];
});
