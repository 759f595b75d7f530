// How client.execute() routes an execution's events: registryd sends
// repl_queued, repl_output and repl_finished after the repl_execute response,
// marked with the request's id as request_id (docs/protocol.md, "REPL
// execution"). A scripted WebSocket server sends those frames, including the
// cases a real daemon makes hard to time (a drop mid-execution, a response
// after the client's timeout); cli_podman.test.js runs real executions.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { WebSocketServer } from 'ws';

import { RegistryError } from '../src/index.js';
import { client, next, until } from './helpers/common.js';

let server;
let url;
let script = null; // (request, send, ws) => void for repl_execute
const cancels = []; // execution ids of the repl_cancel requests
const clients = [];

before(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => server.once('listening', r));
  url = `ws://127.0.0.1:${server.address().port}/`;
  server.on('connection', (ws) => {
    ws.on('message', (raw) => {
      const req = JSON.parse(String(raw));
      const send = (frame) => ws.send(JSON.stringify(frame));
      if (req.action === 'repl_execute') {
        script(req, send, ws);
      } else if (req.action === 'repl_cancel') {
        cancels.push(req.params.execution_id);
        send({ id: req.id, type: 'response', data: { execution_id: req.params.execution_id } });
      }
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

const event = (name, requestId, data) => ({ type: 'event', event: name, request_id: requestId, data });

test('the events after the response reach the execution: queue positions, output in order, the finish', async () => {
  script = (req, send) => {
    send({ id: req.id, type: 'response', data: { execution_id: 'x-1', created: true } });
    send(event('repl_queued', req.id, { execution_id: 'x-1', position: 2 }));
    send(event('repl_queued', req.id, { execution_id: 'x-1', position: 1 }));
    send(event('repl_output', 'another-request', { execution_id: 'x-9', stream: 'stdout', seq: 1, data: 'not ours\n' }));
    send(event('repl_output', req.id, { execution_id: 'x-1', stream: 'stdout', seq: 1, data: 'first\n' }));
    setTimeout(() => {
      send(event('repl_output', req.id, { execution_id: 'x-1', stream: 'stderr', seq: 2, data: 'oops\n' }));
      send(event('repl_finished', req.id, {
        execution_id: 'x-1', language: 'sh', engine: 'local', exit_code: 3, signal: null, stdout: 'first\n',
        stderr: 'oops\n', truncated: false, timed_out: false, cancelled: false, duration_ms: 12,
      }));
    }, 100);
  };
  const c = make();
  const unrouted = [];
  c.on('event', (e) => unrouted.push(e));
  const positions = [];
  const execution = await c.execute({ language: 'sh', code: 'echo first' }, { onQueued: (p) => positions.push(p) });
  assert.equal(execution.id, 'x-1');
  assert.equal(execution.created, true);

  const chunks = [];
  for await (const chunk of execution.output) chunks.push(chunk);
  assert.deepEqual(chunks, [
    { stream: 'stdout', seq: 1, data: 'first\n' },
    { stream: 'stderr', seq: 2, data: 'oops\n' },
  ]);
  const finished = await execution.finished;
  assert.equal(finished.exit_code, 3);
  assert.deepEqual(positions, [2, 1]);
  assert.equal(execution.queuePosition, null, 'it ran');

  // An iterator started after the end still gets every chunk.
  const again = [];
  for await (const chunk of execution.output) again.push(chunk.data);
  assert.deepEqual(again, ['first\n', 'oops\n']);
  // The other request's event was not this execution's: the client hands it on.
  assert.deepEqual(unrouted, [
    { event: 'repl_output', request_id: 'another-request',
      data: { execution_id: 'x-9', stream: 'stdout', seq: 1, data: 'not ours\n' } },
  ]);
});

test('a connection lost mid-execution ends its output and its finish with connection_lost', async () => {
  script = (req, send, ws) => {
    send({ id: req.id, type: 'response', data: { execution_id: 'x-2', created: true } });
    send(event('repl_output', req.id, { execution_id: 'x-2', stream: 'stdout', seq: 1, data: 'started\n' }));
    setTimeout(() => ws.terminate(), 50);
  };
  const c = make();
  const execution = await c.execute({ language: 'sh', code: 'sleep 30' });
  const output = execution.output[Symbol.asyncIterator]();
  assert.equal((await next(output)).data, 'started\n');
  await assert.rejects(output.next(), (err) => err instanceof RegistryError && err.code === 'connection_lost');
  await assert.rejects(execution.finished, { code: 'connection_lost', message: /execution x-2/ });
});

test('closing the client ends a running execution with closed', async () => {
  script = (req, send) => send({ id: req.id, type: 'response', data: { execution_id: 'x-3', created: true } });
  const c = make();
  const execution = await c.execute({ language: 'sh', code: 'sleep 30' });
  await c.close();
  await assert.rejects(execution.finished, { code: 'closed' });
});

test("a refused repl_execute rejects with the server's error", async () => {
  script = (req, send) =>
    send({ id: req.id, type: 'response', error: { code: 'invalid_request', message: "params.language: unknown language 'cobol'" } });
  const c = make();
  await assert.rejects(c.execute({ language: 'cobol', code: 'x' }), { code: 'invalid_request', message: /cobol/ });
});

test('an execution accepted after the request timed out is cancelled: nobody follows it', async () => {
  script = (req, send) =>
    setTimeout(() => send({ id: req.id, type: 'response', data: { execution_id: 'x-late', created: true } }), 300);
  const c = make();
  await assert.rejects(c.execute({ language: 'sh', code: 'sleep 30' }, { timeoutMs: 100 }), { code: 'timeout' });
  await until(() => cancels.includes('x-late'), 3000, 'the repl_cancel of the late execution');
});
