// How the client routes the two kinds of events that registryd's coming
// capabilities send besides subscription events: events of a subscription the
// server opens in its response (followed container logs, image pulls), and
// events marked with a request's id (deployment progress). registryd on this
// branch has no such action yet, so a scripted WebSocket server replays the
// frames those capabilities send (taken from their protocol tests); this
// tests the client's routing only, not the actions.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WebSocketServer } from 'ws';

import { RegistryClient, RegistryError } from '../src/index.js';
import { client, next } from './helpers/common.js';

let server;
let url;
const scripts = new Map(); // action -> (request, send) => void
const clients = [];
const authorizations = []; // the Authorization header of each connection

before(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => server.once('listening', r));
  url = `ws://127.0.0.1:${server.address().port}/`;
  server.on('connection', (ws, req) => {
    authorizations.push(req.headers.authorization ?? null);
    ws.on('message', (raw) => {
      const req = JSON.parse(String(raw));
      const send = (frame) => ws.send(JSON.stringify(frame));
      const script = scripts.get(req.action);
      if (script) script(req, send, ws);
      else send({ id: req.id, type: 'response', error: { code: 'unknown_action', message: `unknown action '${req.action}'` } });
    });
  });
});

after(async () => {
  for (const c of clients) await c.close();
  for (const ws of server.clients) ws.terminate();
  await new Promise((r) => server.close(r));
});

function make() {
  const c = client(url, { reconnect: { initialDelayMs: 5000, maxDelayMs: 5000 } });
  clients.push(c);
  return c;
}

test('a subscription opened by a response gets its events, in the same read as the response', async () => {
  scripts.set('container_logs', (req, send) => {
    send({ id: req.id, type: 'response', data: { subscription: 's2', container_id: 'a-c1' } });
    send({ type: 'event', subscription: 's2', event: 'container_log', revision: 2,
      data: { container_id: 'a-c1', lease_id: 1, stream: 'stderr', data: 'bad \ufffd byte\n' } });
    send({ type: 'event', subscription: 's2', event: 'container_log', revision: 3,
      data: { container_id: 'a-c1', lease_id: 1, end: true } });
  });
  const c = make();
  const { data, subscription } = await c.requestStream('container_logs', { container_id: 'a-c1', follow: true });
  assert.equal(data.container_id, 'a-c1');
  assert.equal(subscription.id, 's2');
  const it = subscription.events();
  assert.equal((await next(it)).data.data, 'bad \ufffd byte\n');
  assert.equal((await next(it)).data.end, true);
});

test('such a stream ends with connection_lost when the connection drops', async () => {
  scripts.set('image_pull', (req, send, ws) => {
    send({ id: req.id, type: 'response', data: { subscription: 's3', reference: 'app:1' } });
    setTimeout(() => ws.terminate(), 50);
  });
  const c = make();
  const { subscription } = await c.requestStream('image_pull', { reference: 'app:1' });
  const ended = new Promise((r) => subscription.onEnd(r));
  const err = await ended;
  assert.ok(err instanceof RegistryError);
  assert.equal(err.code, 'connection_lost');
  await assert.rejects(subscription.events().next(), { code: 'connection_lost' });
});

test('imagePull and containerLogs with follow are such streams: their events reach the subscription', async () => {
  scripts.set('image_pull', (req, send) => {
    send({ id: req.id, type: 'response', data: { subscription: 's4', reference: req.params.reference } });
    send({ type: 'event', subscription: 's4', event: 'image_pull_progress', revision: 4,
      data: { engine: 'a', reference: 'app:1', id: 'layer1', status: 'Downloading', progress: '[==>   ]', current: 10, total: 100 } });
    send({ type: 'event', subscription: 's4', event: 'image_pull_progress', revision: 4,
      data: { engine: 'a', reference: 'app:1', end: true } });
  });
  scripts.set('container_logs', (req, send) => {
    if (!req.params.follow) {
      send({ id: req.id, type: 'response', data: { container_id: 'a-c1', output: [{ stream: 'stdout', data: 'x\n' }] } });
      return;
    }
    send({ id: req.id, type: 'response', data: { subscription: 's5', container_id: 'a-c1' } });
    send({ type: 'event', subscription: 's5', event: 'container_log', revision: 4,
      data: { container_id: 'a-c1', lease_id: 1, stream: 'stdout', data: 'hello\n' } });
  });
  const c = make();
  const pull = await c.imagePull({ reference: 'app:1' });
  assert.deepEqual(pull.data, { subscription: 's4', reference: 'app:1' });
  const pulled = pull.subscription.events();
  assert.equal((await next(pulled)).data.current, 10);
  assert.equal((await next(pulled)).data.end, true);
  const logs = await c.containerLogs({ container_id: 'a-c1', follow: true });
  assert.equal(logs.subscription.id, 's5');
  assert.equal((await next(logs.subscription.events())).data.data, 'hello\n');
  assert.deepEqual(await c.containerLogs({ container_id: 'a-c1' }), { container_id: 'a-c1', output: [{ stream: 'stdout', data: 'x\n' }] });
});

test('events marked with a request id go to that request, before its response', async () => {
  scripts.set('deploy_package', (req, send) => {
    for (const stage of ['validating', 'installing', 'starting', 'done']) {
      send({ type: 'event', event: 'deployment_progress', request_id: req.id,
        data: { stage, package: 'api', version: '1.0.0', target: 'local', message: '' } });
    }
    send({ type: 'event', event: 'deployment_progress', request_id: 'someone-else', data: { stage: 'failed' } });
    send({ id: req.id, type: 'response', data: { instance_id: 'api-1', name: 'api', version: '1.0.0' } });
  });
  const c = make();
  const stages = [];
  const data = await c.deployPackage({ path: '/tmp/api-1.0.0.tar.gz', target: 'local' }, {
    onEvent: (e) => stages.push(`${e.event}:${e.data.stage}`),
  });
  assert.equal(data.instance_id, 'api-1');
  assert.deepEqual(stages, [
    'deployment_progress:validating',
    'deployment_progress:installing',
    'deployment_progress:starting',
    'deployment_progress:done',
  ]);
});

test('a stream answered after its timeout is unsubscribed', async () => {
  const unsubscribed = [];
  scripts.set('container_logs', (req, send) => {
    setTimeout(() => send({ id: req.id, type: 'response', data: { subscription: 's9', container_id: 'slow' } }), 300);
  });
  scripts.set('unsubscribe', (req, send) => {
    unsubscribed.push(req.params.subscription);
    send({ id: req.id, type: 'response', data: { subscription: req.params.subscription } });
  });
  const c = make();
  await assert.rejects(c.requestStream('container_logs', { container_id: 'slow', follow: true }, { timeoutMs: 100 }), {
    code: 'timeout',
  });
  const deadline = Date.now() + 3000;
  while (unsubscribed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(unsubscribed, ['s9']);
});

test('with the ws package the token is an Authorization: Bearer header', async () => {
  const c = new RegistryClient(url, { token: 't0ken' });
  clients.push(c);
  const before = authorizations.length;
  await c.connect();
  assert.deepEqual(authorizations.slice(before), ['Bearer t0ken']);
});
