// The example package (packages/static-site) built for a test: its port and
// version set, a quick health interval, packed by the real registry-pack.
import { execFile } from 'node:child_process';
import { cp, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { registrydBin } from './registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const packagesDir = resolve(here, '../../../../packages');
const registryPack = join(dirname(registrydBin), 'registry-pack');

export async function freePort() {
  const server = createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

// Packs packages/static-site as `version`, serving "static-site VERSION\n"
// on `port`, under `work`; resolves to the archive's path. `stopFails`: its
// stop.sh says "cannot stop: busy" and exits 3. `healthFails`: health.sh
// always fails, and the health gate gives up after 2 s (a rollback).
export async function buildStaticSite(work, version, port, { stopFails = false, healthFails = false } = {}) {
  const src = join(work, `src-${version}`);
  await cp(join(packagesDir, 'static-site'), src, { recursive: true });
  if (stopFails) await writeFile(join(src, 'scripts', 'stop.sh'), "#!/bin/sh\necho 'cannot stop: busy'\nexit 3\n");
  if (healthFails) await writeFile(join(src, 'scripts', 'health.sh'), "#!/bin/sh\necho 'not ready'\nexit 1\n");
  const manifest = (await readFile(join(src, 'manifest.yaml'), 'utf8'))
    .replace(/version: .*/, `version: ${version}`)
    .replace(/port: 8181/, `port: ${port}`)
    .replace(/interval: .*/, 'interval: 300ms')
    .replace(/deadline: .*/, healthFails ? 'deadline: 2s' : 'deadline: 10s');
  await writeFile(join(src, 'manifest.yaml'), manifest);
  await writeFile(join(src, 'www', 'index.html'), `static-site ${version}\n`);
  const { stdout } = await promisify(execFile)(registryPack, [src, join(work, 'archives')]);
  return stdout.trim();
}

export async function fetchIndex(port) {
  try {
    return await (await fetch(`http://127.0.0.1:${port}/`)).text();
  } catch {
    return '';
  }
}

// The packages' servers outlive registryd on purpose: kill them by pid.
export async function killPackageServers(prefix) {
  for (const dir of await readdir(prefix).catch(() => [])) {
    const pid = Number(await readFile(join(prefix, dir, 'run', 'pid'), 'utf8').catch(() => ''));
    if (pid > 1) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }
}
