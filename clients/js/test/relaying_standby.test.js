// The client on a standby that relays (docs/protocol.md, "Several
// registryd"): writes through the standby are the writer's, answered where
// the client is, so the connection stays on the standby (no `moved`); a
// session-bound registration made there lives on the client's connection to
// the standby. Needs Debian's `etcd` and the registryd build.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import { client, service, until } from './helpers/common.js';
import { Etcd } from './helpers/etcd.js';
import { Registryd } from './helpers/registryd.js';

let etcd;
let writer;
let standby;
const clients = [];

function make(urls, options) {
  const c = client(urls, options);
  clients.push(c);
  return c;
}

before(async () => {
  etcd = await new Etcd().start();
  const prefix = `/js-relay-${randomBytes(6).toString('hex')}/`;
  const config =
    'registry:\n  session_grace_seconds: 1\n' +
    'store:\n  kind: etcd\n' +
    `  etcd: {endpoints: ["${etcd.clientUrl}"], prefix: "${prefix}", writer_lease_ttl_seconds: 2}\n`;
  writer = await new Registryd({ config }).start();
  standby = await new Registryd({ config }).start();
  // Its log names the writer's published address once it has seen it.
  await until(() => standby.stderr.includes(` at ${writer.url}`), 5000, "the writer's address on the standby");
});

after(async () => {
  for (const c of clients) await c.close();
  await standby?.dispose();
  await writer?.dispose();
  await etcd?.stop();
});

test('writes through a relaying standby stay on it and are the writer\'s', async () => {
  const c = make([standby.url, writer.url]);
  const moved = [];
  c.on('moved', (m) => moved.push(m));
  const r = await c.register({ service: service('r', 'r-1') });
  assert.equal(r.instance_id, 'r-1');
  assert.equal(c.url, standby.url);
  await c.setState('r-1', 'running');
  const onWriter = make(writer.url);
  const got = await onWriter.getService('r-1');
  assert.equal(got.service.state, 'running');
  assert.equal((await c.getService('r-1')).service.state, 'running');
  await c.deregister('r-1');
  await assert.rejects(onWriter.getService('r-1'), { code: 'not_found' });
  assert.deepEqual(moved, []);
});

test('a session-bound registration made through the standby ends after its grace when the client closes', async () => {
  const c = make(standby.url);
  await c.register({ service: service('s', 's-1'), ttl_seconds: 30, session_bound: true });
  const watcher = make(writer.url);
  assert.equal((await watcher.getService('s-1')).service.lease.session_bound, true);
  await c.close();
  await until(
    async () => {
      try {
        await watcher.getService('s-1');
        return false;
      } catch (e) {
        return e.code === 'not_found';
      }
    },
    10_000,
    'the session-bound registration to end after its grace',
  );
});
