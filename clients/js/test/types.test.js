// index.d.ts compiles, and types a program that uses the whole client API
// (test/fixtures/types_check.ts) under --strict.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

test('the TypeScript declarations type-check a program using the client', async () => {
  const args = [
    tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext',
    '--lib', 'es2022,dom', resolve(here, 'fixtures/types_check.ts'),
  ];
  const r = await promisify(execFile)(process.execPath, args, { cwd: resolve(here, '..') }).catch((e) => e);
  assert.equal(r.code ?? 0, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
