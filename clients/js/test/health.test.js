// Health checks through the client and registryctl, against a real daemon:
// report_health for a ttl check, and discovery filtered by health.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { RegistryError } from '../src/index.js';
import { client, service, until } from './helpers/common.js';
import { startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, '../bin/registryctl.js');

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

function registryctl(args) {
  return new Promise((done, fail) => {
    const p = spawn(process.execPath, [bin, ...args], { env: { ...process.env, REGISTRY_URL: daemon.url } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', fail);
    p.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const ttlCheck = { name: 'alive', kind: 'ttl', interval_ms: 60000 };

test('reportHealth sets a ttl check; listServices, listEndpoints and getService filter by health', async () => {
  const up = await c.register({ service: { ...service('hj', 'hj-1', 9101), checks: [ttlCheck] }, ttl_seconds: 600 });
  await c.register({ service: { ...service('hj', 'hj-2', 9102), checks: [ttlCheck] }, ttl_seconds: 600 });
  const r = await c.reportHealth({ lease_id: up.lease_id, instance_id: 'hj-1', status: 'passing', output: 'ok' });
  assert.equal(r.health.status, 'healthy');
  const { service: s } = await c.getService('hj-1');
  assert.equal(s.checks[0].name, 'alive');
  assert.equal(s.checks[0].result.status, 'healthy');

  const ids = (list) => list.map((x) => x.instance_id);
  assert.deepEqual(ids((await c.listServices({ name: 'hj' })).services), ['hj-1', 'hj-2']);
  assert.deepEqual(ids((await c.listServices({ name: 'hj', health: 'passing' })).services), ['hj-1']);
  assert.deepEqual(ids((await c.getService({ name: 'hj', health: 'passing_or_warning' })).services), ['hj-1']);
  assert.deepEqual(ids((await c.listEndpoints({ service: 'hj', health: 'passing' })).endpoints), ['hj-1']);

  await assert.rejects(
    c.reportHealth({ lease_id: up.lease_id + 1000, instance_id: 'hj-1', status: 'passing' }),
    (err) => err instanceof RegistryError && err.code === 'lease_not_found',
  );
});

test('registryctl: report-health, and --health on services, endpoints and get --name', async () => {
  await c.register({ service: { ...service('hc', 'hc-1', 9201), checks: [ttlCheck] }, ttl_seconds: 600 });
  const second = await c.register({ service: { ...service('hc', 'hc-2', 9202), checks: [ttlCheck] }, ttl_seconds: 600 });
  const reported = await registryctl(['report-health', 'hc-2', String(second.lease_id), 'warning', '--output', 'slow']);
  assert.equal(reported.code, 0, reported.stderr);
  assert.match(reported.stdout, /^hc-2: warning/);
  await until(async () => (await c.getService('hc-2')).service.health?.status === 'warning');

  const listed = await registryctl(['services', '--name', 'hc', '--health', 'passing_or_warning', '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(JSON.parse(listed.stdout).services.map((s) => s.instance_id), ['hc-2']);
  const none = await registryctl(['endpoints', '--service', 'hc', '--health', 'passing', '--json']);
  assert.equal(none.code, 0, none.stderr);
  assert.deepEqual(JSON.parse(none.stdout).endpoints, []);
  const byName = await registryctl(['get', '--name', 'hc', '--health', 'passing']);
  assert.notEqual(byName.code, 0);
  assert.match(byName.stderr, /not_found: no instance of service 'hc' is passing/);
});
