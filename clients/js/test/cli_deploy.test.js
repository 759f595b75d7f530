// registryctl's deployment side against a real registryd: `deploy` on a
// terminal (a pseudo-terminal made by script(1)) redraws its upload bar in
// place, fitted to the terminal's width, and piped prints plain lines;
// `uploads status` shows how far an upload got.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { client } from './helpers/common.js';
import { buildStaticSite, freePort, killPackageServers } from './helpers/packages.js';
import { deployRunAs, startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, '../bin/registryctl.js');
const chunkBytes = 256;
const noScript = spawnSync('script', ['--version']).error ? 'script(1) (util-linux) is not installed' : false;

let work;
let daemon;
let c;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'registryctl-deploy-'));
  daemon = await startRegistryd({
    config: `deploy:\n${deployRunAs}  prefix: ${join(work, 'opt')}\n  script_timeout_seconds: 20\n  upload_chunk_bytes: ${chunkBytes}\n`,
  });
  c = client(daemon.url);
});

after(async () => {
  await killPackageServers(join(work, 'opt'));
  await c?.close();
  await daemon?.dispose();
  await rm(work, { recursive: true, force: true });
});

// Runs `argv` to its end: {code, stdout, stderr}.
function runProcess(argv, env = {}) {
  return new Promise((res, rej) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, REGISTRY_URL: daemon.url, REGISTRY_TOKEN: '', ...env },
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

const shellQuote = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

test('deploy on a terminal redraws the upload bar in place, within the width', { skip: noScript }, async () => {
  const archive = await buildStaticSite(work, '1.0.0', await freePort());
  const size = (await readFile(archive)).length;
  assert.ok(size > 4 * chunkBytes, `the package (${size} bytes) takes several chunks`);
  // A 60-column pseudo-terminal; script(1) copies what registryctl wrote to it.
  const command = `stty cols 60; ${[process.execPath, bin, 'deploy', archive].map(shellQuote).join(' ')}`;
  const r = await runProcess(['script', '-qefc', command, '/dev/null']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const screen = r.stdout.replace(/\r\n/g, '\n'); // the terminal's own newline translation
  // The upload: redrawn with "\r" and erase-to-end-of-line, several times on one line.
  const uploadLine = screen.split('\n').find((l) => l.includes('uploading'));
  assert.ok(uploadLine, screen);
  const draws = uploadLine.split('\r').filter((d) => d.includes('uploading'));
  assert.ok(draws.length >= 2, `redrawn in place: ${JSON.stringify(uploadLine)}`);
  for (const d of draws) {
    const visible = d.replace(/\x1b\[K/g, '');
    assert.ok(visible.length <= 59, `fits 60 columns: ${JSON.stringify(visible)} (${visible.length})`);
    assert.match(visible, /^\[#* *\] +\d+% uploading/);
  }
  assert.match(draws.at(-1), /^\[#+\] 100% uploading: received all/);
  // The stages follow as lines of their own, the result on stdout.
  assert.match(screen, /^done: version 1\.0\.0 is running$/m);
  assert.match(screen, /^deployed static-site 1\.0\.0 as static-site\.local$/m);
  await c.undeploy({ instance_id: 'static-site.local' }, { timeoutMs: 30_000 });
});

test('deploy piped: plain progress lines, no control characters', async () => {
  const archive = await buildStaticSite(work, '1.0.1', await freePort());
  const r = await runProcess([process.execPath, bin, 'deploy', archive]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /[\r\x1b]/);
  const uploads = r.stderr.split('\n').filter((l) => l.includes('uploading'));
  assert.ok(uploads.length >= 2 && uploads.length <= 21, `at most one line per 5 %: ${uploads.length}`);
  for (const l of uploads) assert.match(l, /^\[#* *\] +\d+% uploading: received/);
  await c.undeploy({ instance_id: 'static-site.local' }, { timeoutMs: 30_000 });
});

test('uploads status: bytes received of the size, incomplete, the expiry', async () => {
  const bytes = Buffer.alloc(3 * chunkBytes, 7);
  const begun = await c.request('package_upload_begin', {
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  });
  await c.request('package_upload_chunk', {
    upload_id: begun.upload_id,
    offset: 0,
    data: bytes.subarray(0, chunkBytes).toString('base64'),
  });
  const r = await runProcess([process.execPath, bin, 'uploads', 'status', begun.upload_id]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^${begun.upload_id}: received 256 of 768 bytes \\(33%\\), incomplete, expires in \\d+[sm]\\n$`));
  const json = await runProcess([process.execPath, bin, 'uploads', 'status', begun.upload_id, '--json']);
  assert.deepEqual(
    (({ upload_id, size, received, complete }) => ({ upload_id, size, received, complete }))(JSON.parse(json.stdout)),
    { upload_id: begun.upload_id, size: 768, received: 256, complete: false },
  );
});
