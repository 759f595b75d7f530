// Builds the console into dist/ (committed: registryd embeds it at build
// time, so neither building nor running registryd needs Node). The JS suite
// checks that dist/ is what these sources build: `node build.mjs` after a
// change. esbuild comes from the JS client's dev dependencies.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../js/package.json'));
const esbuild = require('esbuild');

export async function build() {
  const out = await esbuild.build({
    entryPoints: [join(here, 'src/main.js')],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
  });
  return {
    'index.html': await readFile(join(here, 'src/index.html'), 'utf8'),
    'console.css': await readFile(join(here, 'src/console.css'), 'utf8'),
    'console.js': out.outputFiles[0].text,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = await build();
  await mkdir(join(here, 'dist'), { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(here, 'dist', name), text);
  for (const [name, text] of Object.entries(files)) console.log(`dist/${name}: ${Buffer.byteLength(text)} bytes`);
}
