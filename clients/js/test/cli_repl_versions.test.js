// Language versions through the JS client and registryctl, on a real
// registryd and Podman (test/helpers/podman.js): `registryctl languages`
// lists every version and marks the default, `run --version` and
// replExecute's `version` pick one, an unknown version is refused naming the
// configured ones. Two versions of `sh` on the busybox image whose run
// commands differ, so that the output says which one ran. Without podman
// every test is skipped.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { after, before, describe, test as nodeTest } from 'node:test';
import { fileURLToPath } from 'node:url';

import { client } from './helpers/common.js';
import { podmanMissing, startPodman, testImage } from './helpers/podman.js';
import { startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, '../bin/registryctl.js');
const missing = podmanMissing();
const test = (name, fn) => nodeTest(name, { skip: missing ?? false }, fn);
const owner = `js-versions-${process.pid}`;

function config(engine) {
  return (
    'containers:\n' +
    `  instance_id: ${owner}\n` +
    '  engines:\n' +
    `    - name: node-1\n      endpoint: ${engine}\n      capacity: 4\n` +
    'repl:\n' +
    '  enabled: true\n' +
    '  languages:\n' +
    `    - name: sh\n      image: ${testImage}\n      source_file: main.sh\n` +
    '      defaults: {timeout_ms: 20000, output_bytes: 65536, memory_bytes: 128MiB, pids: 64, cpu_millicores: 1000}\n' +
    '      default_version: plain\n' +
    '      versions:\n' +
    '        - {version: traced, run: [sh, -c, "echo traced; sh \\"$0\\"", "{source}"]}\n' +
    '        - {version: plain, run: [sh, "{source}"], warm_pool: 1}\n'
  );
}

// registryctl to its end: {code, stdout, stderr}.
function registryctl(url, args, input = '') {
  return new Promise((res) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, REGISTRY_URL: url, REGISTRY_TOKEN: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
    child.stdin.end(input);
    child.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

describe('language versions on a real Podman', () => {
  let podman;
  let daemon;
  let c;

  before(async () => {
    if (missing) return;
    podman = await startPodman();
    daemon = await startRegistryd({ config: config(podman.uri) });
    c = client(daemon.url);
  });

  after(async () => {
    await c?.close();
    await daemon?.dispose();
    try {
      if (podman) assert.deepEqual(await podman.containers(`io.registry.repl.owner=${owner}`), []);
    } finally {
      await podman?.dispose();
    }
  });

  test('replLanguages has one entry per version, the default marked and listed first', async () => {
    const { languages } = await c.replLanguages();
    assert.deepEqual(
      languages.map((l) => [l.name, l.version, l.default, l.warm_pool]),
      [
        ['sh', 'plain', true, 1],
        ['sh', 'traced', false, 0],
      ],
    );
    const r = await registryctl(daemon.url, ['languages']);
    assert.equal(r.code, 0, r.stderr);
    const [head, ...rows] = r.stdout.trimEnd().split('\n');
    assert.match(head, /^LANGUAGE\s+VERSION\s+IMAGE\s+COMPILED\s+TIMEOUT\s+MEMORY\s+OUTPUT$/);
    assert.equal(rows.length, 2);
    assert.match(rows[0], /^sh\s+plain \*\s+localhost\/registry-busybox:latest\s+no\s+20s\b.*128 MiB/);
    assert.match(rows[1], /^sh\s+traced\s+localhost\/registry-busybox:latest\s+no\s+20s\b.*128 MiB/);
  });

  test("version picks the version's run command; repl_finished names it", async () => {
    const byDefault = await c.execute({ language: 'sh', code: 'echo hi' });
    const plain = await byDefault.finished;
    assert.equal(plain.version, 'plain');
    assert.equal(plain.stdout, 'hi\n');
    const traced = await (await c.execute({ language: 'sh', version: 'traced', code: 'echo hi' })).finished;
    assert.equal(traced.version, 'traced');
    assert.equal(traced.stdout, 'traced\nhi\n');

    const r = await registryctl(daemon.url, ['run', 'sh', '-', '--version', 'traced', '--json'], 'echo cli\n');
    assert.equal(r.code, 0, r.stderr);
    const finished = JSON.parse(r.stdout);
    assert.equal(finished.version, 'traced');
    assert.equal(finished.stdout, 'traced\ncli\n');
  });

  test('an unknown version is refused naming the configured ones', async () => {
    await assert.rejects(c.replExecute({ language: 'sh', version: '9', code: 'echo no' }), {
      code: 'invalid_request',
      message: "params.version: unknown version '9' of language 'sh' (configured: 'plain', 'traced')",
    });
    const r = await registryctl(daemon.url, ['run', 'sh', '-', '--version', '9'], 'echo no\n');
    assert.equal(r.code, 125);
    assert.match(r.stderr, /^registryctl: invalid_request: params\.version: unknown version '9'/m);
  });
});
