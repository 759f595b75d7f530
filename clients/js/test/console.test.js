// The web console (clients/console) in a real browser: Debian's chromium
// driven by playwright-core, against a real registryd serving it at /ui/,
// wired to a real Podman for the REPL and container views. Every view is
// live: what another client does appears without a reload. A screenshot of
// each view is saved next to registryd (console-screenshots/), and into
// docs/console/ with CONSOLE_DOCS_SCREENSHOTS=1. Also: the committed bundle
// (clients/console/dist) is what the sources build.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { build } from '../../console/build.mjs';
import { client, service } from './helpers/common.js';
import { buildStaticSite, freePort, killPackageServers } from './helpers/packages.js';
import { podmanMissing, startPodman, testImage } from './helpers/podman.js';
import { deployRunAs, registrydBin, startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const chromiumPath = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const shots = process.env.CONSOLE_DOCS_SCREENSHOTS
  ? resolve(here, '../../../docs/console')
  : join(dirname(registrydBin), 'console-screenshots');
const noPodman = podmanMissing();
const owner = `console-${process.pid}`;

test('the committed console bundle is what its sources build (node clients/console/build.mjs)', async () => {
  const built = await build();
  for (const [name, text] of Object.entries(built)) {
    const committed = await readFile(resolve(here, '../../console/dist', name), 'utf8');
    assert.ok(committed === text, `clients/console/dist/${name} is stale: run node clients/console/build.mjs`);
  }
  assert.ok(Buffer.byteLength(built['console.js']) < 100_000, 'the bundle stays small');
});

function config(engine, prefix) {
  let c = `deploy:\n${deployRunAs}  prefix: ${prefix}\n  script_timeout_seconds: 20\n`;
  if (!engine) return c;
  c +=
    'containers:\n' +
    `  instance_id: ${owner}\n` +
    '  heartbeat_interval_ms: 200\n  heartbeat_timeout_ms: 2000\n  stop_grace_seconds: 1\n' +
    `  presets:\n    sleeper: {image: ${testImage}, command: [sleep, "300"], limits: {pids: 16}}\n` +
    `  engines:\n    - name: node-1\n      endpoint: ${engine}\n      capacity: 4\n` +
    'repl:\n  enabled: true\n  max_concurrent: 2\n  max_queue: 8\n  languages:\n' +
    `    - name: sh\n      image: ${testImage}\n      source_file: main.sh\n` +
    '      defaults: {timeout_ms: 30000, output_bytes: 65536, memory_bytes: 128MiB, pids: 64, cpu_millicores: 1000}\n' +
    '      maximum: {timeout_ms: 60000, output_bytes: 1MiB, memory_bytes: 512MiB, pids: 256, cpu_millicores: 2000}\n' +
    '      versions:\n' +
    '        - {version: busybox, run: [sh, "{source}"]}\n' +
    '        - {version: traced, run: [sh, -c, "echo traced; sh \\"$0\\"", "{source}"]}\n';
  return c;
}

describe('the web console in chromium', () => {
  let podman;
  let daemon;
  let node;
  let browser;
  let page;
  let work;
  let base;

  before(async () => {
    if (!existsSync(chromiumPath)) throw new Error(`no chromium at ${chromiumPath} (scripts/setup-browser.sh installs it)`);
    work = await mkdtemp(join(tmpdir(), 'registry-console-'));
    await mkdir(shots, { recursive: true });
    if (!noPodman) podman = await startPodman();
    daemon = await startRegistryd({ config: config(podman?.uri, join(work, 'opt')) });
    base = `http://${daemon.host}:${daemon.port}`;
    node = client(daemon.url);
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('pageerror', (e) => console.error('page error:', e));
    await page.goto(`${base}/ui/`);
    await page.waitForSelector('.conn[data-kind="ok"]');
  });

  after(async () => {
    await browser?.close();
    await node?.close();
    await daemon?.dispose();
    if (work) {
      await killPackageServers(join(work, 'opt'));
      await rm(work, { recursive: true, force: true });
    }
    await podman?.dispose();
  });

  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`) });
  const view = async (name) => {
    await page.click(`#nav-${name}`);
    await page.waitForSelector(`#view-${name}:not([hidden])`);
  };

  test('registryd serves the console at /ui/ with a strict content security policy', async () => {
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/ui/');
    const index = await fetch(`${base}/ui/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-security-policy'), /default-src 'self'/);
    assert.match(index.headers.get('content-security-policy'), /frame-ancestors 'none'/);
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await index.text(), /<script type="module" src="console.js">/);
    assert.equal((await fetch(`${base}/ui/console.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal((await fetch(`${base}/ui/nothing-here`)).status, 404);
    assert.equal((await fetch(`${base}/ui/`, { method: 'POST' })).status, 405);
  });

  test('services: an instance registered elsewhere appears without a reload, with its lease, and goes on deregister', async () => {
    await view('services');
    await node.register({ service: service('console-web', 'console-web-1', 8081), ttl_seconds: 60 });
    const row = page.locator('.vlist .row[data-instance="console-web-1"]');
    await row.waitFor();
    assert.equal(await row.locator('.c-state').textContent(), 'registered');
    assert.match(await row.locator('.c-endpoints').textContent(), /127\.0\.0\.1:8081/);
    assert.match(await row.locator('.c-lease').textContent(), /^(1m 00s|\d+s)$/);
    await node.register({ service: service('console-api', 'console-api-1', 8082), ttl_seconds: 60 });
    await page.fill('#svc-filter-name', 'api');
    await page.locator('.vlist .row[data-instance="console-web-1"]').waitFor({ state: 'detached' });
    await page.locator('.vlist .row[data-instance="console-api-1"]').waitFor();
    await page.fill('#svc-filter-name', '');
    await row.click();
    await page.waitForSelector('.history li');
    assert.match(await page.locator('.history').textContent(), /service_registered/);
    await shot('services');
    await node.deregister('console-api-1');
    await page.locator('.vlist .row[data-instance="console-api-1"]').waitFor({ state: 'detached' });
  });

  test('services: 2,000 instances stay a virtualised list (a few dozen rows in the DOM), filtered at once', async () => {
    await view('services');
    const names = Array.from({ length: 2000 }, (_, i) => `bulk-${String(i).padStart(4, '0')}`);
    for (let i = 0; i < names.length; i += 200) {
      await Promise.all(names.slice(i, i + 200).map((n, j) => node.register({ service: service('bulk', n, 20000 + i + j), ttl_seconds: 120 })));
    }
    await page.waitForFunction(() => /^2\d{3} of 2\d{3} instances/.test(document.querySelector('#view-services .count').textContent), null, { timeout: 60_000 });
    const rows = await page.$$eval('#view-services .vlist .row', (r) => r.length);
    assert.ok(rows > 5 && rows < 80, `${rows} rows in the DOM`);
    await page.$eval('#view-services .vlist', (v) => { v.scrollTop = v.scrollHeight; });
    await page.locator('.vlist .row[data-instance="bulk-1999"]').waitFor();
    await page.fill('#svc-filter-name', 'bulk-123');
    await page.waitForFunction(() => /^10 of /.test(document.querySelector('#view-services .count').textContent));
    await page.fill('#svc-filter-name', '');
    await Promise.all(names.map((n) => node.deregister(n)));
    await page.waitForFunction(() => !/^2\d{3} of/.test(document.querySelector('#view-services .count').textContent), null, { timeout: 60_000 });
  });

  test('events: the live stream, newest first, paused and resumed, replayed from a revision', async () => {
    await view('events');
    await page.waitForFunction(() => document.querySelector('#view-events .notice').textContent === 'Live.');
    await node.register({ service: service('console-ev', 'console-ev-1', 8083), ttl_seconds: 60 });
    const first = page.locator('#view-events .events li').first();
    await page.waitForFunction(() => document.querySelector('#view-events .events li')?.textContent.includes('console-ev-1'));
    assert.match(await first.textContent(), /service_registered/);
    await page.click('#ev-pause');
    await node.deregister('console-ev-1');
    await page.waitForFunction(() => /paused · 1 new/.test(document.querySelector('#view-events .count').textContent));
    assert.match(await first.textContent(), /service_registered/, 'nothing is shown while paused');
    await page.click('#ev-pause');
    await page.waitForFunction(() => document.querySelector('#view-events .events li').textContent.includes('service_deregistered'));
    await page.fill('#ev-from', '1');
    await page.click('#ev-replay');
    await page.waitForFunction(() => [...document.querySelectorAll('#view-events .events li')].some((li) => li.textContent.includes('console-ev-1') && li.textContent.includes('service_registered')));
    await shot('events');
  });

  test('deployments: an upload with its progress, the stages live, then a failing health gate rolled back', async () => {
    await view('deployments');
    const sitePort = await freePort();
    const good = await readFile(await buildStaticSite(work, '1.0.0', sitePort));
    await page.setInputFiles('#dp-file', { name: 'static-site-1.0.0.tar.gz', mimeType: 'application/gzip', buffer: good });
    await page.click('#dp-deploy');
    await page.waitForFunction(() => /succeeded/.test(document.querySelector('#dp-courses .outcome')?.textContent ?? ''), null, { timeout: 60_000 });
    const stages = await page.$$eval('#dp-courses .course:first-child .stages li', (lis) => lis.map((li) => li.dataset.state));
    assert.deepEqual(stages, ['done', 'done', 'done', 'done']);
    assert.equal(await page.$eval('#dp-progress', (p) => p.value), 1);
    await page.waitForSelector('#dp-instances tr[data-instance="static-site.local"]');

    const bad = await readFile(await buildStaticSite(work, '2.0.0', sitePort, { healthFails: true }));
    await page.setInputFiles('#dp-file', { name: 'static-site-2.0.0.tar.gz', mimeType: 'application/gzip', buffer: bad });
    await page.click('#dp-deploy');
    await page.waitForFunction(() => /rolled back to 1\.0\.0/.test(document.querySelector('#dp-courses .outcome')?.textContent ?? ''), null, { timeout: 60_000 });
    assert.match(await page.locator('#view-deployments .notice').textContent(), /Deploy failed: deployment_failed/);
    assert.equal(await page.$eval('#dp-courses .course:first-child .stages li[data-stage="health_gating"]', (li) => li.dataset.state), 'failed');
    await shot('deployments');
  });

  test('REPL: output streams before the program ends, the exit code, and Cancel', { skip: noPodman ?? false }, async () => {
    await view('repl');
    await page.waitForSelector('#repl-language option[value="sh"]', { state: 'attached' });
    await page.fill('#repl-code', 'for i in 1 2 3; do echo tick $i; sleep 1; done\necho oops >&2\nexit 3\n');
    await page.click('#repl-run');
    await page.waitForFunction(() => document.querySelector('#repl-output').textContent.includes('tick 1'), null, { timeout: 60_000 });
    assert.equal(await page.locator('#repl-result').textContent(), '', 'tick 1 arrived while the program still ran');
    await page.waitForFunction(() => /exit code 3/.test(document.querySelector('#repl-result').textContent), null, { timeout: 60_000 });
    assert.match(await page.locator('#repl-output .stderr').textContent(), /oops/);
    await shot('repl');
    await page.fill('#repl-code', 'echo started; sleep 50\n');
    await page.click('#repl-run');
    await page.waitForFunction(() => document.querySelector('#repl-output').textContent.includes('started'), null, { timeout: 60_000 });
    await page.click('#repl-cancel');
    await page.waitForFunction(() => /cancelled/.test(document.querySelector('#repl-result').textContent), null, { timeout: 30_000 });

    // A language's versions are options of their own; the one picked is the one that runs.
    assert.deepEqual(
      await page.$$eval('#repl-language option', (os) => os.map((o) => o.textContent)),
      ['sh busybox', 'sh traced'],
    );
    await page.selectOption('#repl-language', { label: 'sh traced' });
    await page.fill('#repl-code', 'echo hi\n');
    await page.click('#repl-run');
    await page.waitForFunction(() => /exit code 0/.test(document.querySelector('#repl-result').textContent), null, { timeout: 60_000 });
    assert.equal(await page.locator('#repl-output').textContent(), 'traced\nhi\n');
  });

  test('containers: a lease counting down on its node, extended from the page, then reaped', { skip: noPodman ?? false }, async () => {
    await view('containers');
    await page.waitForSelector('#nodes tr[data-node="node-1"]');
    const { container } = await node.request('container_create', { preset: 'sleeper', ttl_seconds: 6 });
    const row = page.locator(`#containers tr[data-container="${container.container_id}"]`);
    await row.waitFor({ timeout: 30_000 });
    await page.waitForFunction((id) => /^\ds$/.test(document.querySelector(`#containers tr[data-container="${id}"] .c-ttl`)?.textContent ?? ''), container.container_id, { timeout: 30_000 });
    await shot('containers');
    await row.locator('button', { hasText: 'Extend' }).click();
    await page.waitForFunction(() => /extend .*: done/.test(document.querySelector('#view-containers .notice').textContent));
    await row.waitFor({ state: 'detached', timeout: 60_000 });
  });

  test('sign-in: with access control the console asks for a token, refuses a wrong one, and disables what was refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registry-console-auth-'));
    const token = 'console-reader-token-7c1d0e';
    const tokens = join(dir, 'tokens.yaml');
    await writeFile(tokens, `tokens:\n  - name: dashboard\n    sha256: ${createHash('sha256').update(token).digest('hex')}\n    role: reader\n`,
      { mode: 0o600 });
    const secured = await startRegistryd({ config: `auth:\n  tokens_file: ${tokens}\ndeploy:\n${deployRunAs}  prefix: ${join(dir, 'opt')}\n` });
    const tab = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await tab.goto(`http://${secured.host}:${secured.port}/ui/`);
      await tab.waitForSelector('form.signin');
      await tab.fill('#token', 'not-the-token');
      await tab.click('form.signin button');
      await tab.waitForFunction(() => /refused/.test(document.querySelector('form.signin .notice').textContent));
      await tab.fill('#token', token);
      await tab.click('form.signin button');
      await tab.waitForSelector('.conn[data-kind="ok"]');
      assert.equal(await tab.evaluate(() => sessionStorage.getItem('registry-console-token')), token);
      // A reader may look but not deploy: the refusal disables Deploy, with registryd's reason.
      await tab.click('#nav-deployments');
      await tab.setInputFiles('#dp-file', { name: 'x.tar.gz', mimeType: 'application/gzip', buffer: Buffer.from('not a package') });
      await tab.click('#dp-deploy');
      // (Deploy is disabled while the request runs too: wait for the refusal's reason.)
      await tab.waitForFunction(() => /lacks the permission/.test(document.querySelector('#dp-deploy').title ?? ''));
      assert.equal(await tab.evaluate(() => document.querySelector('#dp-deploy').disabled), true);
      assert.match(await tab.getAttribute('#dp-deploy', 'title'), /'dashboard' lacks the permission 'deploy'/);
      assert.match(await tab.locator('#view-deployments .notice').textContent(), /forbidden/);
      await tab.screenshot({ path: join(shots, 'signed-in-refused.png') });
    } finally {
      await tab.close();
      await secured.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
