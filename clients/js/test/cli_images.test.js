// `registryctl images pull` pulling for real: registryd on a real Podman API
// service, which pulls from a small image registry of the test's own on a
// loopback port (test/helpers/image_registry.js; marked insecure in a
// registries.conf the service is started with). Piped, the progress is a
// line per layer and status; on a terminal (a pseudo-terminal made by
// script(1)) a bar redrawn in place. Without podman the tests are skipped.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test as nodeTest } from 'node:test';
import { fileURLToPath } from 'node:url';

import { client, until } from './helpers/common.js';
import { ImageRegistry } from './helpers/image_registry.js';
import { podmanMissing, startPodman } from './helpers/podman.js';
import { startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, '../bin/registryctl.js');
const missing = podmanMissing() ?? (spawnSync('script', ['--version']).error ? 'script(1) is not installed' : null);
const test = (name, fn) => nodeTest(name, { skip: missing ?? false }, fn);

let dir;
let images;
let podman;
let daemon;
let c;
const savedConf = process.env.CONTAINERS_REGISTRIES_CONF;

before(async () => {
  if (missing) return;
  dir = await mkdtemp(join(tmpdir(), 'registryctl-images-'));
  images = await new ImageRegistry().start();
  // About 4 s a layer: Podman reports a download's bytes once a second.
  images.pieces = 64;
  // The Podman service reads the registries.conf named in its environment.
  const conf = join(dir, 'registries.conf');
  await writeFile(conf, images.registriesConf());
  process.env.CONTAINERS_REGISTRIES_CONF = conf;
  podman = await startPodman();
  daemon = await startRegistryd({
    config:
      'containers:\n' +
      `  instance_id: js-images-${process.pid}\n` +
      '  heartbeat_interval_ms: 200\n' +
      '  engines:\n' +
      `    - name: node-1\n      endpoint: ${podman.uri}\n      capacity: 2\n`,
  });
  c = client(daemon.url);
  await until(async () => (await c.listNodes()).nodes[0]?.status === 'online', 10_000, 'the engine online');
});

after(async () => {
  if (savedConf === undefined) delete process.env.CONTAINERS_REGISTRIES_CONF;
  else process.env.CONTAINERS_REGISTRIES_CONF = savedConf;
  await c?.close();
  await daemon?.dispose();
  await podman?.dispose();
  await images?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function runProcess(argv) {
  return new Promise((res, rej) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, REGISTRY_URL: daemon.url, REGISTRY_TOKEN: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
    child.on('error', rej);
    child.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

async function removeImage(reference) {
  await podman.podman(['rmi', '--force', reference]);
}

// An image of a fresh random layer: the engine downloads it.
function newImage(tag) {
  images.add('registry-test/random', tag, ImageRegistry.randomLayer(2 * 1024 * 1024));
  return `${images.address}/registry-test/random:${tag}`;
}

test('images pull, piped: a line per layer and status, then the node pulled; the image is there', async () => {
  const reference = newImage('piped');
  const r = await runProcess([process.execPath, bin, 'images', 'pull', reference]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `pulled ${reference} on node-1\n`);
  assert.doesNotMatch(r.stderr, /[\r\x1b]/);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.at(-1), `node-1: pulled ${reference}`);
  // Each line differs from the one before (no flood of byte counts).
  for (let i = 1; i < lines.length; i++) assert.notEqual(lines[i], lines[i - 1]);
  assert.ok(lines.every((l) => l.startsWith('node-1: ')), r.stderr);
  const inspected = await podman.podman(['image', 'exists', reference]);
  assert.equal(inspected.status, 0, 'the image is in the engine');
  await removeImage(reference);
});

test('images pull on a terminal: the bar redrawn in place within the width', async () => {
  const reference = newImage('tty');
  const quote = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = `stty cols 70; ${[process.execPath, bin, 'images', 'pull', reference].map(quote).join(' ')}`;
  const r = await runProcess(['script', '-qefc', command, '/dev/null']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const screen = r.stdout.replace(/\r\n/g, '\n');
  const lines = screen.split('\n');
  const pulled = lines.findIndex((l) => l.endsWith(`node-1: pulled ${reference}`));
  assert.ok(pulled >= 0, JSON.stringify(screen));
  // Everything before "pulled" was one line redrawn in place; the bar reached the layer's size.
  const draws = lines[pulled].split('\r').map((d) => d.replace(/\x1b\[K/g, '')).filter(Boolean);
  assert.ok(draws.length >= 3, JSON.stringify(lines[pulled]));
  for (const d of draws) assert.ok(d.length <= 69, `fits 70 columns: ${JSON.stringify(d)}`);
  assert.ok(draws.some((d) => /^\[#* *\] +\d+% node-1: /.test(d)), JSON.stringify(draws));
  assert.ok(draws.some((d) => /^\[#+\] 100% node-1: /.test(d)), `the bar reaches 100 %: ${JSON.stringify(draws)}`);
  assert.match(screen, new RegExp(`^pulled ${reference.replace(/[.]/g, '\\.')} on node-1$`, 'm'));
  await removeImage(reference);
});
