// deployPackage({file}) and `registryctl deploy` against a real registryd:
// the example package (packages/static-site, packed by registry-pack with a
// free port) uploaded in chunks with its sha256 and installed on the local
// target under a temp prefix.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { client } from './helpers/common.js';
import { buildStaticSite, fetchIndex, freePort, killPackageServers } from './helpers/packages.js';
import { deployRunAs, startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, '../bin/registryctl.js');
const chunkBytes = 256;

let work;
let daemon;
let c;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'registry-js-deploy-'));
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

test('deployPackage({file}) uploads the file in chunks with its sha256 and deploys it', async () => {
  const port = await freePort();
  const archive = await buildStaticSite(work, '1.0.0', port);
  const size = (await readFile(archive)).length;
  assert.ok(size > 2 * chunkBytes, `the package (${size} bytes) takes several chunks`);
  const events = [];
  const data = await c.deployPackage(
    { file: archive, target: 'local' },
    { timeoutMs: 60_000, onEvent: (e) => events.push(e.data) },
  );
  assert.equal(data.instance_id, 'static-site.local');
  assert.equal(data.version, '1.0.0');
  const uploading = events.filter((d) => d.stage === 'uploading');
  assert.equal(uploading.length, Math.ceil(size / chunkBytes));
  assert.deepEqual(
    uploading.map((d) => d.bytes),
    uploading.map((_, i) => Math.min(size, (i + 1) * chunkBytes)),
  );
  assert.ok(uploading.every((d) => d.bytes_total === size));
  assert.equal(events.at(-1).stage, 'done');
  assert.equal(await fetchIndex(port), 'static-site 1.0.0\n');
  // The upload was deleted once deployed.
  assert.deepEqual(await readdir(join(daemon.dir, 'data', 'deploy', 'uploads')), []);
  await c.undeploy({ instance_id: 'static-site.local' }, { timeoutMs: 30_000 });
  assert.equal(await fetchIndex(port), '');
});

test('uploadPackage resumes from the offset the server reports', async () => {
  const archive = await buildStaticSite(work, '1.0.1', await freePort());
  const bytes = await readFile(archive);
  // A first chunk sent by hand, as by a client that then lost track.
  const { createHash } = await import('node:crypto');
  const begun = await c.request('package_upload_begin', {
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  });
  await c.request('package_upload_chunk', {
    upload_id: begun.upload_id,
    offset: 0,
    data: bytes.subarray(0, chunkBytes).toString('base64'),
  });
  const wrong = await c
    .request('package_upload_chunk', { upload_id: begun.upload_id, offset: 0, data: 'AAAA' })
    .catch((e) => e);
  assert.equal(wrong.code, 'offset_mismatch');
  const status = await c.request('package_upload_status', { upload_id: begun.upload_id });
  assert.equal(status.received, chunkBytes);
  assert.equal(status.complete, false);
});

test('registryctl deploy shows the upload progress bar and the stages', async () => {
  const port = await freePort();
  const archive = await buildStaticSite(work, '2.0.0', port);
  const { code, stdout, stderr } = await registryctl(['deploy', archive]);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /^\[#+ *\] +\d+% uploading: received \d+ of \d+ bytes$/m);
  assert.match(stderr, /^\[#{30}\] 100% uploading: received all \d+ bytes, sha256 verified$/m);
  assert.match(stderr, /^done: version 2\.0\.0 is running$/m);
  assert.match(stdout, /deployed static-site 2\.0\.0 as static-site\.local/);
  assert.equal(await fetchIndex(port), 'static-site 2.0.0\n');

  const missing = await registryctl(['deploy', join(work, 'nothing.tar.gz')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^registryctl: file_unreadable: .*nothing\.tar\.gz: no such file$/m);

  await c.undeploy({ instance_id: 'static-site.local' }, { timeoutMs: 30_000 });
});

async function registryctl(args) {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, REGISTRY_URL: daemon.url, REGISTRY_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (s) => (stdout += s));
  child.stderr.on('data', (s) => (stderr += s));
  const code = await new Promise((r) => child.on('exit', r));
  return { code, stdout, stderr };
}

test('registryctl deploy sends the name and version the file name or --name / --version state', async () => {
  const port = await freePort();
  const archive = await buildStaticSite(work, '3.0.0', port);
  // A file whose name states another version than its manifest's is refused.
  const misnamed = join(work, 'static-site-3.0.1.tar.gz');
  await cp(archive, misnamed);
  let r = await registryctl(['deploy', misnamed]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^registryctl: invalid_package: the manifest has version '3\.0\.0', not '3\.0\.1'$/m);
  r = await registryctl(['deploy', archive, '--name', 'other-site']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^registryctl: invalid_package: the manifest names package 'static-site', not 'other-site'$/m);
  assert.equal(await fetchIndex(port), '');
  // A flag wins over the file name.
  r = await registryctl(['deploy', misnamed, '--version', '3.0.0']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /deployed static-site 3\.0\.0 as static-site\.local/);
  assert.equal(await fetchIndex(port), 'static-site 3.0.0\n');
  await c.undeploy({ instance_id: 'static-site.local' }, { timeoutMs: 30_000 });
});

test('packageIdentity reads {name}-{version}.tar.gz', async () => {
  const { packageIdentity } = await import('../src/cli/commands.js');
  assert.deepEqual(packageIdentity('/srv/static-site-1.0.0.tar.gz'), { name: 'static-site', version: '1.0.0' });
  assert.deepEqual(packageIdentity('app-2-1.0.0-rc1.tgz'), { name: 'app-2', version: '1.0.0-rc1' });
  assert.deepEqual(packageIdentity('site.tar.gz'), {});
  assert.deepEqual(packageIdentity('site-latest.tar.gz'), {});
  assert.deepEqual(packageIdentity('site-1.0.zip'), {});
});

test('registryctl undeploy reports a failing stop.sh and removes nothing; --force kills the service', async () => {
  const port = await freePort();
  const archive = await buildStaticSite(work, '4.0.0', port, { stopFails: true });
  await c.deployPackage({ file: archive, target: 'local' }, { timeoutMs: 60_000 });
  assert.equal(await fetchIndex(port), 'static-site 4.0.0\n');
  let r = await registryctl(['undeploy', 'static-site.local']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^registryctl: deployment_failed: stop\.sh exited 3: cannot stop: busy; nothing was removed/m);
  assert.equal(await fetchIndex(port), 'static-site 4.0.0\n');
  assert.equal((await c.getService({ instance_id: 'static-site.local' })).service.version, '4.0.0');
  r = await registryctl(['undeploy', 'static-site.local', '--force']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /undeployed static-site\.local/);
  assert.equal(await fetchIndex(port), '');
  assert.deepEqual(await readdir(join(work, 'opt')), ['.owner']);
});
