// The npm package as it would be published: `npm pack` holds exactly the
// client (src/, bin/, index.d.ts, README.md, LICENSE, package.json) and
// nothing of the tests; every entry point package.json names is in it and
// every module it imports is too; npm finds nothing to correct in
// package.json; LICENSE is the repository's; the README's links work on
// npm's page (absolute, into files that exist in the repository). Then the
// packed tarball itself, unpacked as a dependency of a scratch project, is
// imported by Node, type-checked by tsc through its `types` condition, bundled
// for browsers through its `browser` condition, and its registryctl runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, posix, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = resolve(here, '..');
const repoRoot = resolve(pkgDir, '../..');
const run = promisify(execFile);
const pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

let packed; // npm pack --dry-run --json's record of the package
let files; // the paths in it, sorted
let work;

async function walk(dir, prefix) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await walk(join(dir, entry.name), rel)));
    else out.push(rel);
  }
  return out;
}

// The string targets of an exports / imports map, at any depth of conditions.
function targets(map) {
  if (typeof map === 'string') return [map];
  return Object.values(map ?? {}).flatMap(targets);
}

const inPackage = (target) => posix.normalize(target.replace(/^\.\//, ''));

// https://github.com/OWNER/NAME, from package.json's repository.url.
const repoBase = pkg.repository.url.replace(/^git\+/, '').replace(/\.git$/, '');

before(async () => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: pkgDir });
  [packed] = JSON.parse(stdout);
  files = packed.files.map((f) => f.path).sort();
  work = await mkdtemp(join(tmpdir(), 'registry-js-pack-'));
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

test('npm pack holds exactly the client: src/, bin/, index.d.ts, README.md, LICENSE, package.json', async () => {
  const expected = [
    'LICENSE',
    'README.md',
    'index.d.ts',
    'package.json',
    ...(await walk(join(pkgDir, 'src'), 'src')),
    ...(await walk(join(pkgDir, 'bin'), 'bin')),
  ].sort();
  assert.deepEqual(files, expected);
  for (const f of files) assert.doesNotMatch(f, /(^|\/)(test|fixtures|node_modules)\//, `${f} must not be published`);
  assert.equal(packed.name, 'registry-client');
  assert.ok(packed.files.find((f) => f.path === 'bin/registryctl.js').mode & 0o111, 'registryctl is executable');
});

test('every entry point of package.json (exports, imports, main, types, bin) is in the package', () => {
  const entries = [
    ...targets(pkg.exports),
    ...targets(pkg.imports),
    pkg.main,
    pkg.types,
    ...Object.values(pkg.bin),
  ];
  assert.ok(entries.length >= 9, `only ${entries.length} entry points found`);
  for (const e of entries) assert.ok(files.includes(inPackage(e)), `${e} (package.json) is not in the package`);
  const conditions = pkg.exports['.'];
  assert.deepEqual(Object.keys(conditions), ['types', 'browser', 'node', 'default'], 'types first, default last');
  assert.equal(conditions.types, pkg.types);
});

test('every module the packed sources import is in the package', async () => {
  const specifier = /^(?:import|export)\b[^;]*?\bfrom\s*'([^']+)'|^import\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/gm;
  let relative = 0;
  for (const f of files.filter((p) => p.endsWith('.js'))) {
    const text = await readFile(join(pkgDir, f), 'utf8');
    for (const m of text.matchAll(specifier)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (spec.startsWith('.')) {
        relative += 1;
        const target = posix.normalize(posix.join(posix.dirname(f), spec));
        assert.ok(files.includes(target), `${f} imports ${spec}, which is not in the package`);
      } else if (spec.startsWith('#')) {
        assert.ok(pkg.imports[spec], `${f} imports ${spec}, which package.json's imports does not map`);
      } else {
        const name = spec.startsWith('node:') ? null : spec.split('/')[0];
        if (name) assert.ok(pkg.dependencies[name], `${f} imports ${spec}, which is not a dependency`);
      }
    }
  }
  assert.ok(relative > 20, `only ${relative} relative imports seen: the scan is broken`);
});

test('package.json is publishable as it is: not private, licensed, and nothing for npm to correct', async () => {
  assert.equal(pkg.private, undefined);
  assert.equal(pkg.license, 'Apache-2.0');
  assert.equal(pkg.repository.type, 'git');
  assert.equal(pkg.repository.directory, 'clients/js');
  assert.match(pkg.repository.url, /^git\+https:\/\/.+\.git$/);
  assert.ok(pkg.keywords.length > 0);
  // `npm pkg fix` rewrites what `npm publish` would silently correct (it
  // dropped a `./`-prefixed bin of npm 11, for one): on a copy, it changes nothing.
  const copy = join(work, 'fix');
  await mkdir(copy);
  for (const f of ['package.json', 'bin', 'src']) await cp(join(pkgDir, f), join(copy, f), { recursive: true });
  await run('npm', ['pkg', 'fix'], { cwd: copy });
  assert.deepEqual(JSON.parse(await readFile(join(copy, 'package.json'), 'utf8')), pkg);
});

test('the LICENSE of the package is the repository\'s', async () => {
  assert.equal(await readFile(join(pkgDir, 'LICENSE'), 'utf8'), await readFile(join(repoRoot, 'LICENSE'), 'utf8'));
  assert.match(await readFile(join(pkgDir, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
});

test('the README\'s links work on npm\'s page: absolute, and those into the repository name files it has', async () => {
  const readme = await readFile(join(pkgDir, 'README.md'), 'utf8');
  const links = [
    ...[...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]),
    ...[...readme.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)].map((m) => m[1]),
    ...[...readme.matchAll(/\b(?:href|src)="([^"]+)"/g)].map((m) => m[1]),
  ];
  assert.ok(links.length >= 3, `only ${links.length} links found`);
  let intoRepo = 0;
  for (const link of links) {
    if (link.startsWith('#')) continue;
    if (!/^https:\/\//.test(link)) {
      // Package-relative: inside the package and published.
      const target = normalize(link.split('#')[0]);
      assert.ok(!target.startsWith('..') && files.includes(target), `README link ${link} leaves the package`);
      continue;
    }
    if (!link.startsWith(repoBase)) continue;
    const m = link.slice(repoBase.length).match(/^(?:\/(?:blob|tree)\/main\/([^#?]*))?(?:[#?].*)?$/);
    assert.ok(m, `README link ${link} is not a file of the repository's main branch`);
    if (m[1]) assert.ok(existsSync(join(repoRoot, m[1])), `README link ${link}: no ${m[1]} in the repository`);
    intoRepo += 1;
  }
  assert.ok(intoRepo >= 1, 'the README links the protocol in the repository');
  assert.ok(pkg.homepage.startsWith(`${repoBase}/tree/main/clients/js`));
});

test('the packed tarball, as a dependency: Node imports it, tsc types it, esbuild bundles it for browsers, registryctl runs', async () => {
  const project = join(work, 'consumer');
  const installed = join(project, 'node_modules', 'registry-client');
  await mkdir(installed, { recursive: true });
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: pkgDir });
  const tarball = join(work, JSON.parse(stdout)[0].filename);
  await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1']);
  // `ws`, its one dependency, as npm would install it beside it.
  await symlink(join(pkgDir, 'node_modules', 'ws'), join(project, 'node_modules', 'ws'), 'dir');
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));

  // Node: the `node` condition, the same API as the sources.
  await writeFile(join(project, 'node.mjs'), "import * as r from 'registry-client'; console.log(JSON.stringify(Object.keys(r).sort()));");
  const node = await run(process.execPath, [join(project, 'node.mjs')], { cwd: project });
  const source = await import(pathToFileURL(join(pkgDir, 'src/index.js')).href);
  assert.deepEqual(JSON.parse(node.stdout), Object.keys(source).sort());

  // tsc: the `types` condition, as a consumer's program sees it, in Node's
  // resolution and in a bundler's.
  await cp(join(here, 'fixtures/types_check.ts'), join(project, 'check.ts'));
  for (const [module, resolution] of [['nodenext', 'nodenext'], ['esnext', 'bundler']]) {
    const typed = await run(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', module,
      '--moduleResolution', resolution, '--lib', 'es2022,dom', '--traceResolution', join(project, 'check.ts')],
    { cwd: project, maxBuffer: 64 << 20 }).catch((e) => e);
    const errors = typed.stdout.split('\n').filter((l) => l.includes('error')).join('\n');
    assert.equal(typed.code ?? 0, 0, `tsc (${resolution}) failed:\n${errors}`);
    assert.match(typed.stdout, /Module name 'registry-client' was successfully resolved to '[^']*node_modules\/registry-client\/index\.d\.ts'/);
  }

  // esbuild: the `browser` condition and the browser branch of #package-source.
  const built = await esbuild.build({
    stdin: { contents: "export * from 'registry-client';", resolveDir: project, loader: 'js' },
    bundle: true, platform: 'browser', format: 'esm', write: false, metafile: true, logLevel: 'silent',
  });
  const inputs = Object.keys(built.metafile.inputs);
  assert.ok(inputs.some((i) => i.endsWith('node_modules/registry-client/src/package_source.browser.js')), inputs.join(', '));
  assert.ok(!inputs.some((i) => i.includes('package_source.node')), inputs.join(', '));
  assert.doesNotMatch(built.outputFiles[0].text, /["']node:/);

  // bin: the registryctl the package installs.
  const help = await run(process.execPath, [join(installed, pkg.bin.registryctl), '--help'], { cwd: project }).catch((e) => e);
  assert.match(`${help.stdout}${help.stderr}`, /registryctl \[--url URL\]/);
});
