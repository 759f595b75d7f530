// Bounded waits: request timeouts, requests made while disconnected, requests
// lost with their connection, a closed client.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';

import { RegistryError } from '../src/index.js';
import { client, service, sleep, until } from './helpers/common.js';
import { Proxy } from './helpers/proxy.js';
import { startRegistryd } from './helpers/registryd.js';

let daemon;
let proxy;
const clients = [];

function make(options) {
  const c = client(proxy.url, options);
  clients.push(c);
  return c;
}

async function rejection(promise) {
  const started = performance.now();
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RegistryError, `expected a RegistryError, got ${err}`);
    err.afterMs = performance.now() - started;
    return err;
  }
  assert.fail('expected the request to fail');
}

before(async () => {
  daemon = await startRegistryd();
  proxy = await new Proxy(daemon.host, daemon.port).listen();
});

after(async () => {
  for (const c of clients) await c.close();
  await proxy?.close();
  await daemon?.dispose();
});

test('a request without a response times out; the connection stays usable', async () => {
  const c = make();
  await c.connect();
  proxy.stall();
  try {
    const err = await rejection(c.listServices({}, { timeoutMs: 300 }));
    assert.equal(err.code, 'timeout');
    assert.match(err.message, /list_services: no response within 300 ms/);
    assert.ok(err.afterMs >= 250 && err.afterMs < 3000, `timed out after ${err.afterMs} ms`);
  } finally {
    proxy.stall(false);
  }
  const r = await c.register({ service: service('late', 'late-1') });
  assert.equal(r.instance_id, 'late-1');
  assert.equal(c.state, 'open');
});

test('a request made while disconnected waits for the reconnect', async () => {
  const c = make();
  await c.register({ service: service('wait', 'wait-1') });
  proxy.cut();
  await until(() => c.state !== 'open', 5000, 'the client to notice the cut');
  const pending = c.listServices({ name: 'wait' });
  await sleep(400);
  proxy.restore();
  const r = await pending;
  assert.deepEqual(
    r.services.map((s) => s.instance_id),
    ['wait-1'],
  );
});

test('the wait for a connection is bounded and says why it failed', async () => {
  proxy.cut();
  try {
    const c = make();
    const err = await rejection(c.listServices({}, { connectWaitMs: 400 }));
    assert.equal(err.code, 'not_connected');
    assert.match(err.message, new RegExp(`not connected to ${proxy.url.replace(/[/.]/g, '\\$&')} within 400 ms`));
    assert.ok(err.afterMs >= 350 && err.afterMs < 3000, `failed after ${err.afterMs} ms`);

    const now = await rejection(c.listServices({}, { connectWaitMs: 0 }));
    assert.equal(now.code, 'not_connected');
    assert.ok(now.afterMs < 100);

    const connectErr = await rejection(c.connect({ connectWaitMs: 300 }));
    assert.equal(connectErr.code, 'not_connected');
  } finally {
    proxy.restore();
  }
});

test('nothing listening: not_connected names the socket error', async () => {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  await new Promise((r) => server.close(r));
  const c = client(`ws://127.0.0.1:${port}/`);
  clients.push(c);
  const err = await rejection(c.listServices({}, { connectWaitMs: 500 }));
  assert.equal(err.code, 'not_connected');
  assert.match(err.message, /ECONNREFUSED/);
});

test('a request in flight when the connection drops fails with connection_lost', async () => {
  const c = make();
  await c.connect();
  proxy.stall();
  const inflight = c.listServices({}, { timeoutMs: 5000 });
  await sleep(100);
  proxy.cut();
  proxy.stall(false);
  const err = await rejection(inflight);
  assert.equal(err.code, 'connection_lost');
  assert.ok(err.afterMs < 3000);
  proxy.restore();
  await c.connect();
  assert.equal((await c.register({ service: service('after', 'after-1') })).instance_id, 'after-1');
});

test('a closed client rejects pending, waiting and new requests with closed', async () => {
  const c = make();
  await c.connect();
  proxy.stall();
  const inflight = c.listServices();
  await sleep(50);
  const closing = c.close();
  proxy.stall(false);
  assert.equal((await rejection(inflight)).code, 'closed');
  await closing;
  assert.equal(c.state, 'closed');
  assert.equal((await rejection(c.listServices())).code, 'closed');
  assert.equal((await rejection(c.connect())).code, 'closed');
});

test('a handshake that never completes: connectTimeoutMs ends the attempt; close() while connecting is clean', async () => {
  const held = new Set();
  const silent = net.createServer((s) => held.add(s)); // accepts, never answers the upgrade
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const url = `ws://127.0.0.1:${silent.address().port}/`;
    const c = client(url, { connectTimeoutMs: 200 });
    clients.push(c);
    const err = await rejection(c.listServices({}, { connectWaitMs: 700 }));
    assert.equal(err.code, 'not_connected');
    assert.match(err.message, /connection not established within 200 ms/);

    const d = client(url);
    clients.push(d);
    const waiting = d.listServices({}, { connectWaitMs: 5000 });
    await until(() => d.state === 'connecting' && held.size >= 2, 2000, 'the second handshake to start');
    await d.close();
    assert.equal((await rejection(waiting)).code, 'closed');
    await sleep(100); // an 'error' event of the closed socket would surface here as an uncaught exception
  } finally {
    for (const s of held) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('a subscribe answered after its timeout is ended on the server, not leaked', async () => {
  const metrics = async () => {
    const text = await (await fetch(`http://${daemon.host}:${daemon.port}/metrics`)).text();
    const m = /^registryd_requests_total\{action="unsubscribe",code="ok"\} (\d+)$/m.exec(text);
    return m ? Number(m[1]) : 0;
  };
  const c = make();
  await c.connect();
  const before = await metrics();
  proxy.stall();
  const err = await rejection(c.subscribe({ services: ['late-sub'] }, { timeoutMs: 200 }));
  assert.equal(err.code, 'timeout');
  proxy.stall(false);
  await until(async () => (await metrics()) === before + 1, 5000, 'the unsubscribe of the late subscription');
});
