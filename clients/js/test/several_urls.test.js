// A client given several URLs (docs/protocol.md, "Several registryd"), each
// a scripted WebSocket server playing a writer, a standby (every write
// answered not_writer) or nothing at all (a port nobody listens on): the
// round robin over the URLs, the backoff once per round, a write moved to
// the writer and bounded to one round, what was in flight on the connection
// left. The real thing (registryd on etcd) is several_registryd.test.js.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import net from 'node:net';
import { dirname, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WebSocketServer } from 'ws';

import { RegistryClient, RegistryError } from '../src/index.js';
import { client, sleep, until } from './helpers/common.js';

const registryctl = resolve(dirname(fileURLToPath(import.meta.url)), '../bin/registryctl.js');
const writes = new Set(['register', 'keepalive', 'deregister', 'set_state', 'report_health']);
const servers = [];
const clients = [];

// A scripted registryd: `role` 'writer' or 'standby'; `held` actions get no
// answer; `requests` records the actions it got, `connections` how many
// connections it accepted.
async function fake(role) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const s = { wss, role, held: new Set(), requests: [], connections: 0, url: `ws://127.0.0.1:${wss.address().port}/` };
  wss.on('connection', (ws) => {
    s.connections += 1;
    ws.on('message', (raw) => {
      const req = JSON.parse(String(raw));
      s.requests.push(req.action);
      if (s.held.has(req.action)) return;
      const answer = (data) => ws.send(JSON.stringify({ id: req.id, type: 'response', data }));
      if (writes.has(req.action) && s.role !== 'writer') {
        ws.send(JSON.stringify({
          id: req.id,
          type: 'response',
          error: { code: 'not_writer', message: 'this registryd is a standby: w pid 1 listen 127.0.0.1:0 writes the registry; send writes there' },
        }));
      } else if (req.action === 'register') {
        answer({ lease_id: req.params.lease_id ?? 1, instance_id: req.params.service.instance_id, ttl_seconds: 30, revision: 1, created: true });
      } else if (req.action === 'subscribe') {
        answer({ subscription: 's1', revision: 0 });
      } else {
        answer({ revision: 0, services: [] });
      }
    });
  });
  servers.push(s);
  return s;
}

// A URL nobody listens on: connecting is refused.
async function deadUrl() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return `ws://127.0.0.1:${port}/`;
}

function make(urls, options) {
  const c = client(urls, options);
  clients.push(c);
  return c;
}

// Records the client's `moved` and `reconnecting` events.
function watch(c) {
  const seen = { moved: [], reconnecting: [] };
  c.on('moved', (m) => seen.moved.push(m));
  c.on('reconnecting', (r) => seen.reconnecting.push(r));
  return seen;
}

after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers) {
    for (const ws of s.wss.clients) ws.terminate();
    await new Promise((r) => s.wss.close(r));
  }
});

test('one URL or several: url is the current one, urls all of them', async () => {
  const one = make('ws://127.0.0.1:1/');
  assert.equal(one.url, 'ws://127.0.0.1:1/');
  assert.deepEqual(one.urls, ['ws://127.0.0.1:1/']);
  const several = make(['ws://127.0.0.1:1/', new URL('ws://127.0.0.1:2/')]);
  assert.equal(several.url, 'ws://127.0.0.1:1/');
  assert.deepEqual(several.urls, ['ws://127.0.0.1:1/', 'ws://127.0.0.1:2/']);
  assert.throws(() => new RegistryClient([]), TypeError);
});

test('a URL that refuses is skipped at once: the backoff waits once per round, not per URL', async () => {
  const live = await fake('standby');
  const dead = await deadUrl();
  // A backoff far longer than the test would wait if it applied per URL.
  const c = make([dead, live.url], { reconnect: { initialDelayMs: 20_000, maxDelayMs: 20_000 } });
  const seen = watch(c);
  const started = performance.now();
  const r = await c.listServices();
  assert.equal(r.revision, 0);
  assert.ok(performance.now() - started < 5000, `connected after ${performance.now() - started} ms`);
  assert.equal(c.url, live.url);
  assert.deepEqual(
    seen.reconnecting.map((e) => [e.url, e.delayMs]),
    [[live.url, 0]],
  );
  assert.deepEqual(seen.moved, [], 'no connection opened before: nothing to move from');
});

test('with every URL refusing, each round starts after a backoff delay and tries every URL in turn', async () => {
  const [a, b, d] = [await deadUrl(), await deadUrl(), await deadUrl()];
  const c = make([a, b, d], { reconnect: { initialDelayMs: 100, maxDelayMs: 100 }, connectWaitMs: 60_000 });
  const seen = watch(c);
  c.connect().catch(() => {});
  await until(() => seen.reconnecting.length >= 6, 10_000, 'two rounds of attempts');
  const attempts = seen.reconnecting.slice(0, 6);
  assert.deepEqual(
    attempts.map((e) => e.url),
    [b, d, a, b, d, a],
  );
  assert.deepEqual(
    attempts.map((e) => e.delayMs > 0),
    [false, false, true, false, false, true],
    JSON.stringify(attempts.map((e) => e.delayMs)),
  );
  assert.deepEqual(
    attempts.map((e) => e.attempt),
    [0, 0, 1, 1, 1, 2],
  );
  await c.close();
});

test('a write answered not_writer moves to the next URL and is sent there; reads stay where they are', async () => {
  const standby = await fake('standby');
  const writer = await fake('writer');
  const reader = make([standby.url, writer.url]);
  const readerSeen = watch(reader);
  await reader.listServices();
  await reader.getService('x-1');
  assert.equal(reader.url, standby.url, 'reads are fine on a standby');
  assert.deepEqual(readerSeen.moved, []);

  const c = make([standby.url, writer.url]);
  const seen = watch(c);
  const sub = await c.subscribe({ services: ['x'] });
  assert.equal(c.url, standby.url);
  const r = await c.register({ service: { name: 'x', instance_id: 'x-1' } });
  assert.equal(r.instance_id, 'x-1');
  assert.equal(c.url, writer.url);
  assert.deepEqual(seen.moved, [{ from: standby.url, to: writer.url, reason: 'not_writer' }]);
  // The subscription went along (subscribed again on the writer).
  await until(() => writer.requests.includes('subscribe'), 5000, 'the subscription on the writer');
  assert.equal(sub.closed, false);
  // Once on the writer the client stays: a read and a write more, no move.
  await c.listServices();
  await c.setState('x-1', 'running');
  assert.equal(c.url, writer.url);
  assert.equal(seen.moved.length, 1);
  assert.equal(writer.connections, 1);
});

test('a write no URL takes gets not_writer after one round: each registryd asked once', async () => {
  const standbys = [await fake('standby'), await fake('standby'), await fake('standby')];
  const c = make(standbys.map((s) => s.url));
  const seen = watch(c);
  const err = await c.register({ service: { name: 'y', instance_id: 'y-1' } }).catch((e) => e);
  assert.ok(err instanceof RegistryError, `expected a RegistryError, got ${err}`);
  assert.equal(err.code, 'not_writer');
  assert.match(err.message, /standby/);
  assert.deepEqual(
    standbys.map((s) => s.requests.filter((a) => a === 'register').length),
    [1, 1, 1],
  );
  assert.deepEqual(
    seen.moved.map((m) => [m.from, m.to, m.reason]),
    [
      [standbys[0].url, standbys[1].url, 'not_writer'],
      [standbys[1].url, standbys[2].url, 'not_writer'],
    ],
  );
  // The connection stays where the round ended; the next write starts a round of its own.
  assert.equal(c.url, standbys[2].url);
  assert.equal(c.state, 'open');
  standbys[0].role = 'writer';
  const r = await c.register({ service: { name: 'y', instance_id: 'y-1' } });
  assert.equal(r.instance_id, 'y-1');
  assert.equal(c.url, standbys[0].url);
});

test('with one URL a not_writer answer goes to the caller and the connection stays', async () => {
  const standby = await fake('standby');
  const c = make(standby.url);
  const seen = watch(c);
  await assert.rejects(c.register({ service: { name: 'z', instance_id: 'z-1' } }), { code: 'not_writer' });
  assert.equal(c.state, 'open');
  assert.equal(standby.connections, 1);
  assert.deepEqual(seen.reconnecting, []);
});

test('a request that may not wait for a connection (connectWaitMs 0) is not moved', async () => {
  const standby = await fake('standby');
  const writer = await fake('writer');
  const c = make([standby.url, writer.url]);
  await c.connect();
  await assert.rejects(c.register({ service: { name: 'z', instance_id: 'z-2' } }, { connectWaitMs: 0 }), { code: 'not_writer' });
  assert.equal(c.url, standby.url);
  assert.equal(writer.connections, 0);
});

test('writes sent at once to a standby are all answered not_writer and all move to the writer', async () => {
  const standby = await fake('standby');
  const writer = await fake('writer');
  const c = make([standby.url, writer.url]);
  const seen = watch(c);
  await c.connect();
  const ids = Array.from({ length: 8 }, (_, i) => `p-${i}`);
  const results = await Promise.all(ids.map((id) => c.register({ service: { name: 'p', instance_id: id } })));
  assert.deepEqual(results.map((r) => r.instance_id), ids);
  assert.equal(standby.requests.filter((a) => a === 'register').length, ids.length);
  assert.equal(writer.requests.filter((a) => a === 'register').length, ids.length);
  assert.equal(seen.moved.length, 1);
});

test('a request in flight on the connection left that is not answered within the grace fails with connection_lost; the moved write succeeds', async () => {
  const standby = await fake('standby');
  const writer = await fake('writer');
  standby.held.add('list_services');
  const c = make([standby.url, writer.url]);
  await c.connect();
  const inFlight = c.listServices().catch((e) => e);
  await until(() => standby.requests.includes('list_services'), 5000, 'the listing on the standby');
  const r = await c.register({ service: { name: 'w', instance_id: 'w-1' } });
  assert.equal(r.instance_id, 'w-1');
  assert.equal((await inFlight).code, 'connection_lost');
  assert.equal(c.url, writer.url);
});

test('a lost connection goes on to the next URL at once and says so with moved', async () => {
  const first = await fake('writer');
  const second = await fake('writer');
  const c = make([first.url, second.url], { reconnect: { initialDelayMs: 50, maxDelayMs: 50 } });
  const seen = watch(c);
  await c.connect();
  assert.equal(c.url, first.url);
  for (const ws of first.wss.clients) ws.terminate();
  await until(() => seen.moved.length === 1, 5000, 'the move');
  assert.deepEqual(seen.moved, [{ from: first.url, to: second.url, reason: 'connection_lost' }]);
  assert.equal(c.url, second.url);
});

test('a session-bound registration no registryd takes yet (a takeover under way) is renewed once one does', async () => {
  const a = await fake('writer');
  const b = await fake('standby');
  const c = make([a.url, b.url], { reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
  const renewed = [];
  c.on('reregistered', (d) => renewed.push(d));
  const errors = [];
  c.on('error', (e) => errors.push(e));
  await c.register({ service: { name: 'sb', instance_id: 'sb-1' }, session_bound: true, lease_id: 7 });
  // The writer stops writing and drops its connections: nobody writes for a while.
  a.role = 'standby';
  for (const ws of a.wss.clients) ws.terminate();
  await until(() => b.requests.filter((x) => x === 'register').length >= 2, 10_000, 'the renewal asked again');
  assert.deepEqual(renewed, []);
  b.role = 'writer';
  await until(() => renewed.length === 1, 10_000, 'the renewal once b writes');
  await sleep(200); // renewed once, not once per connection it went through
  assert.equal(renewed.length, 1);
  assert.equal(renewed[0].lease_id, 7);
  assert.deepEqual(errors, []);
});

test('registryctl takes several URLs, comma-separated or --url repeated (and in REGISTRY_URL)', async () => {
  const standby = await fake('standby');
  const writer = await fake('writer');
  const dead = await deadUrl();
  const run = (args, env = {}) =>
    promisify(execFile)(process.execPath, [registryctl, '--wait', '5000', ...args], {
      env: { ...process.env, REGISTRY_TOKEN: '', REGISTRY_URL: '', ...env },
      timeout: 20_000,
    }).then((r) => ({ code: 0, ...r }), (e) => e);
  const register = (id) => ['--json', 'register', 'cli', '--id', id];
  for (const [id, args, env] of [
    ['cli-1', ['--url', `${standby.url},${writer.url}`], {}],
    ['cli-2', ['--url', dead, '--url', standby.url, '--url', writer.url], {}],
    ['cli-3', [], { REGISTRY_URL: `${dead}, ${standby.url}, ${writer.url}` }],
  ]) {
    const r = await run([...args, ...register(id)], env);
    assert.equal(r.code, 0, `${args.join(' ')} ${JSON.stringify(env)}: ${r.stderr}`);
    assert.equal(JSON.parse(r.stdout).instance_id, id);
  }
  assert.deepEqual(
    [standby, writer].map((s) => s.requests.filter((a) => a === 'register').length),
    [3, 3],
  );
  // version asks GET /metrics of the first registryd that answers.
  const metrics = createServer((req, res) => res.end('registryd_build_info{version="9.9.9",compiler="cc"} 1\n'));
  await new Promise((r) => metrics.listen(0, '127.0.0.1', r));
  try {
    const v = await run(['--url', `${dead},ws://127.0.0.1:${metrics.address().port}/`, '--json', 'version']);
    assert.equal(v.code, 0, v.stderr);
    assert.deepEqual(JSON.parse(v.stdout).daemon, { url: `ws://127.0.0.1:${metrics.address().port}/`, version: '9.9.9', compiler: 'cc' });
  } finally {
    await new Promise((r) => metrics.close(r));
  }
  const empty = await run(['--url', ',', 'services']);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /--url: no URL given/);
});
