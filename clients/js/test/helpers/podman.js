// A real Podman API service for the tests that drive containers and REPL
// executions through registryd, as tests/containers/podman_harness.cpp
// starts one: `podman system service --time=0` on a unix socket in a fresh
// directory, with its own --root/--runroot/--tmpdir (the vfs driver: nothing
// is mounted on the host) and a containers.conf the test owns (runtime runc,
// default ulimits). The busybox image (tests/containers/build-images.sh,
// built once into the image cache next to registryd) is `podman import`ed as
// localhost/registry-busybox:latest.
//
// dispose() removes every container, stops the service by its pid (SIGTERM,
// SIGKILL after 10 s) and deletes the directory. The service also gets
// SIGTERM if the test process dies first (setpriv --pdeathsig, util-linux).
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { registrydBin } from './registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const sourceDir = resolve(here, '../../../..');
export const testImage = 'localhost/registry-busybox:latest';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Runs a command that ends with its parent; it execs, so the pid is the command's.
const pdeathsig = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'TERM'] : [];

// Why the Podman tests cannot run here, or null when they can.
export function podmanMissing() {
  const r = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  if (r.error) return `podman is not installed (${r.error.code}); scripts/setup-containers.sh installs it`;
  if (r.status !== 0) return `podman --version failed: ${r.stderr}`;
  return null;
}

// Runs a command to its end: {status, output} (stdout and stderr).
function run(argv, env) {
  return new Promise((res, rej) => {
    const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (s) => (output += s));
    child.stderr.setEncoding('utf8').on('data', (s) => (output += s));
    child.on('error', rej);
    child.on('exit', (status) => res({ status, output }));
  });
}

function canConnect(path) {
  return new Promise((res) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

export class PodmanService {
  dir = null;
  #conf = null;
  #child = null;
  #exited = null;

  // "unix:///tmp/rjs-XXXX/podman.sock"
  get uri() {
    return `unix://${join(this.dir, 'podman.sock')}`;
  }

  #flags() {
    return ['--root', join(this.dir, 'root'), '--runroot', join(this.dir, 'runroot'), '--tmpdir', join(this.dir, 'tmp'),
      '--storage-driver', 'vfs'];
  }

  // `podman <this service's storage flags> args...`: {status, output}
  podman(args) {
    return run(['podman', ...this.#flags(), ...args], { CONTAINERS_CONF: this.#conf });
  }

  async start() {
    // Short: the socket path must fit in sockaddr_un (108 bytes).
    this.dir = await mkdtemp('/tmp/rjs-');
    this.#conf = join(this.dir, 'containers.conf');
    await writeFile(
      this.#conf,
      '# Written by the JS client tests. What Podman needs on this kind of VM:\n' +
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n\n[engine]\nruntime = "runc"\n',
    );
    const cache = join(dirname(registrydBin), 'container-images');
    const tarball = join(cache, 'registry-busybox.tar.gz');
    if (!existsSync(tarball)) {
      const built = await run([join(sourceDir, 'tests/containers/build-images.sh'), cache, 'busybox']);
      if (built.status !== 0) throw new Error(`build-images.sh busybox failed: ${built.output}`);
    }
    const imported = await this.podman(['import', '--change', 'CMD ["/bin/sh"]', tarball, testImage]);
    if (imported.status !== 0) throw new Error(`podman import failed: ${imported.output}`);

    const log = join(this.dir, 'service.log');
    const fd = openSync(log, 'w');
    const argv = [...pdeathsig, 'podman', ...this.#flags(), 'system', 'service', '--time=0', this.uri];
    this.#child = spawn(argv[0], argv.slice(1), {
      env: { ...process.env, CONTAINERS_CONF: this.#conf },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    this.#exited = new Promise((res) => this.#child.on('exit', (code, signal) => res({ code, signal })));
    let exit = null;
    this.#exited.then((e) => {
      exit = e;
    });
    const deadline = Date.now() + 30_000;
    while (!(await canConnect(join(this.dir, 'podman.sock')))) {
      if (exit) throw new Error(`podman system service exited (${JSON.stringify(exit)}): ${await readFile(log, 'utf8')}`);
      if (Date.now() > deadline) throw new Error(`podman system service did not come up in 30 s: ${await readFile(log, 'utf8')}`);
      await sleep(20);
    }
    return this;
  }

  // The ids of the containers carrying `label` (k=v).
  async containers(label) {
    const r = await this.podman(['ps', '-a', '-q', '--filter', `label=${label}`]);
    if (r.status !== 0) throw new Error(`podman ps failed: ${r.output}`);
    return r.output.split('\n').filter(Boolean);
  }

  async dispose() {
    if (!this.dir) return;
    // Containers outlive the service (conmon keeps them): remove them first.
    if (existsSync(join(this.dir, 'root'))) await this.podman(['rm', '--all', '--force', '--time', '0']);
    const child = this.#child;
    this.#child = null;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await this.#exited;
      clearTimeout(t);
    }
    await rm(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}

export async function startPodman() {
  const p = new PodmanService();
  try {
    await p.start();
  } catch (err) {
    await p.dispose();
    throw err;
  }
  return p;
}
