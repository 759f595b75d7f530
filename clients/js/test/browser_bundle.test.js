// The client in a real browser: bundled by esbuild for the browser platform
// (no Node module may be in the bundle), loaded into Debian's chromium driven
// by playwright-core, and used from the page against a real registryd:
// register a service (seen by a Node client too), watch its event, and deploy
// the example package from a Blob, which registryd verifies against the
// sha256 the page computed (src/sha256.js) and installs.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';

import { client, until } from './helpers/common.js';
import { buildStaticSite, fetchIndex, freePort, killPackageServers } from './helpers/packages.js';
import { deployRunAs, startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const chromiumPath = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const chunkBytes = 512;

let work;
let daemon;
let node;
let server;
let browser;
let bundle;
let archive;
let sitePort;

before(async () => {
  if (!existsSync(chromiumPath)) throw new Error(`no chromium at ${chromiumPath} (scripts/setup-browser.sh installs it)`);
  const built = await esbuild.build({
    entryPoints: [resolve(here, '../src/index.js')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  bundle = built.outputFiles[0].text;
  work = await mkdtemp(join(tmpdir(), 'registry-js-browser-'));
  sitePort = await freePort();
  archive = await readFile(await buildStaticSite(work, '2.0.0', sitePort));
  const page = '<!doctype html><meta charset="utf-8"><title>bundle</title>' +
    '<script type="module">import * as registry from "/bundle.js"; window.registry = registry;</script>';
  server = createServer((req, res) => {
    const routes = {
      '/': ['text/html', page],
      '/bundle.js': ['text/javascript', bundle],
      '/package.tar.gz': ['application/gzip', archive],
    };
    const route = routes[req.url];
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': route[0] }).end(route[1]);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  // The page comes from another origin than registryd's own: allowed explicitly.
  daemon = await startRegistryd({
    config: `deploy:\n${deployRunAs}  prefix: ${join(work, 'opt')}\n  script_timeout_seconds: 20\n` +
      `  upload_chunk_bytes: ${chunkBytes}\nhttp:\n  allowed_origins: ["http://127.0.0.1:${server.address().port}"]\n`,
  });
  node = client(daemon.url);
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => (server ? server.close(r) : r()));
  await killPackageServers(join(work, 'opt'));
  await node?.close();
  await daemon?.dispose();
  if (work) await rm(work, { recursive: true, force: true });
});

test('the browser bundle carries no Node module', () => {
  assert.ok(bundle.length > 0);
  assert.doesNotMatch(bundle, /["']node:/, 'a node: import reached the browser bundle');
  assert.ok(bundle.length < 100_000, `the bundle is ${bundle.length} bytes`);
});

test('in chromium, the bundled client registers, watches and deploys a package from a Blob', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.registry !== undefined, null, { timeout: 10_000 });
  const result = await page.evaluate(
    async ({ url, chunk }) => {
      const { RegistryClient } = window.registry;
      const c = new RegistryClient(url, { requestTimeoutMs: 30_000 });
      const sub = await c.subscribe({ services: ['browser-svc'], snapshot: false });
      const events = sub[Symbol.asyncIterator]();
      await c.register({
        service: {
          name: 'browser-svc',
          instance_id: 'browser-svc-1',
          endpoints: [{ name: 'http', address: '127.0.0.1', port: 9, protocol: 'http' }],
        },
        ttl_seconds: 60,
      });
      let registered = null;
      for (let i = 0; i < 10 && !registered; i++) {
        const { value } = await events.next();
        if (value?.event === 'service_registered') registered = value.data;
      }
      const blob = await (await fetch('/package.tar.gz')).blob();
      const stages = [];
      const deployed = await c.deployPackage(
        { file: new File([blob], 'static-site-2.0.0.tar.gz'), target: 'local' },
        { timeoutMs: 60_000, chunkBytes: chunk, onEvent: (e) => stages.push(e.data.stage) },
      );
      await c.close();
      return { registered, deployed, stages, blobSize: blob.size };
    },
    { url: daemon.url, chunk: chunkBytes },
  );
  await page.close();
  assert.deepEqual(errors, []);
  assert.equal(result.registered?.service?.instance_id, 'browser-svc-1');
  assert.equal(result.blobSize, archive.length);
  assert.equal(result.deployed.instance_id, 'static-site.local');
  assert.equal(result.deployed.version, '2.0.0');
  assert.equal(result.stages.filter((s) => s === 'uploading').length, Math.ceil(archive.length / chunkBytes));
  // What the page did is real for everyone: a Node client sees the deployed
  // instance, and the package serves.
  const listed = await node.listServices({});
  assert.ok(listed.services.some((s) => s.instance_id === 'static-site.local'));
  await until(async () => (await fetchIndex(sitePort)) === 'static-site 2.0.0\n', 15_000, 'the deployed site');
  await node.undeploy({ instance_id: 'static-site.local' }, { timeoutMs: 30_000 });
});

test('in chromium, a path instead of a Blob is refused with file_unreadable', async () => {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.registry !== undefined, null, { timeout: 10_000 });
  const code = await page.evaluate(async (url) => {
    const c = new window.registry.RegistryClient(url);
    try {
      await c.uploadPackage('/etc/passwd');
      return 'no error';
    } catch (e) {
      return e.code;
    } finally {
      await c.close();
    }
  }, daemon.url);
  await page.close();
  assert.equal(code, 'file_unreadable');
});
