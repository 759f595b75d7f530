// index.d.ts compiles, and types a program that uses the whole client API
// (test/fixtures/types_check.ts) under --strict. Each file of
// test/fixtures/types_wrong/ makes one kind of mistake the declarations must
// catch (a field of another event, a misspelt event type, a result's field
// that does not exist, ...): tsc --strict must fail on it with exactly the
// errors its `// error TSnnnn` comments name, on those lines, and no other.
// The README's examples type-check too.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const wrongDir = resolve(here, 'fixtures/types_wrong');

function compile(files) {
  const args = [
    tsc, '--noEmit', '--strict', '--pretty', 'false', '--target', 'es2022', '--module', 'nodenext',
    '--moduleResolution', 'nodenext', '--lib', 'es2022,dom', ...files,
  ];
  return promisify(execFile)(process.execPath, args, { cwd: resolve(here, '..') }).catch((e) => e);
}

test('the TypeScript declarations type-check a program using the client', async () => {
  const r = await compile([resolve(here, 'fixtures/types_check.ts')]);
  assert.equal(r.code ?? 0, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});

test('tsc --strict rejects each mistake of test/fixtures/types_wrong with the expected error, on its line', async () => {
  const names = (await readdir(wrongDir)).filter((n) => n.endsWith('.ts')).sort();
  assert.ok(names.length >= 10, `only ${names.length} fixtures`);
  const expected = new Map(); // file -> ["line:TSnnnn", ...]
  for (const name of names) {
    const lines = (await readFile(resolve(wrongDir, name), 'utf8')).split('\n');
    const marks = lines.flatMap((l, i) => [...l.matchAll(/\/\/ error (TS\d+)/g)].map((m) => `${i + 1}:${m[1]}`));
    assert.ok(marks.length > 0, `${name} names no expected error`);
    expected.set(name, marks);
  }
  // One run for all (each file is a module of its own; errors are per file).
  const r = await compile(names.map((n) => resolve(wrongDir, n)));
  assert.notEqual(r.code ?? 0, 0, 'tsc accepted the wrong programs');
  const actual = new Map(names.map((n) => [n, []]));
  for (const m of `${r.stdout}`.matchAll(/^(?:.*\/)?([^/(\n]+\.ts)\((\d+),\d+\): error (TS\d+):/gm)) {
    assert.ok(actual.has(m[1]), `an error in ${m[1]}: ${m[0]}`);
    actual.get(m[1]).push(`${m[2]}:${m[3]}`);
  }
  for (const name of names) assert.deepEqual(actual.get(name), expected.get(name), `${name}:\n${r.stdout}`);
});

test('the README\'s examples type-check against the declarations', async () => {
  const readme = await readFile(resolve(here, '../README.md'), 'utf8');
  // Each ```js block as the body of a function; the browser one reads the DOM
  // as JavaScript does (an Element's files), so it is left out.
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).filter((b) => !b.includes('document.'));
  assert.ok(blocks.length >= 4, `only ${blocks.length} examples`);
  const imports = "import { RegistryClient, RegistryError } from 'registry-client';";
  const program = [
    imports,
    'declare const process: { env: Record<string, string | undefined>; stdout: { write(s: string): void }; stderr: { write(s: string): void } };',
    'declare const client: RegistryClient;',
    ...blocks.map((b, i) => `export async function example${i}(): Promise<void> {\n${b.replace(imports, '').replace(/\bconst client = /, 'const ownClient = ')}\n}`),
  ].join('\n');
  // In the package's test dir, so that 'registry-client' resolves to this package.
  const dir = await mkdtemp(join(here, 'fixtures/readme-'));
  try {
    await writeFile(join(dir, 'readme.ts'), program);
    const r = await compile([join(dir, 'readme.ts')]);
    assert.equal(r.code ?? 0, 0, `tsc failed on the README's examples:\n${r.stdout}${r.stderr}\n${program}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the declarations declare exactly the values the package exports', async () => {
  const runtime = Object.keys(await import('../src/index.js')).sort();
  assert.ok(runtime.length >= 9, runtime.join(', '));
  const names = runtime.map((n) => `'${n}'`).join(' | ');
  const program = [
    "import * as r from 'registry-client';",
    `type Runtime = ${names};`,
    'export const missing: [Exclude<Runtime, keyof typeof r>] extends [never] ? true : false = true;',
    'export const extra: [Exclude<keyof typeof r, Runtime>] extends [never] ? true : false = true;',
  ].join('\n');
  const dir = await mkdtemp(join(here, 'fixtures/exports-'));
  try {
    await writeFile(join(dir, 'exports.ts'), program);
    const r = await compile([join(dir, 'exports.ts')]);
    assert.equal(r.code ?? 0, 0, `the declared values differ from ${runtime.join(', ')}:\n${r.stdout}${r.stderr}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
