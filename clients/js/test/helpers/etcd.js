// A throwaway etcd for a test, as tests/integration/etcd_server.cpp starts
// one: Debian's `etcd` on two loopback ports (client, peer), its data in a
// temp dir, up once GET /health answers, stopped by pid.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The path of the etcd binary, or null when there is none.
export function etcdBinary() {
  const bin = process.env.ETCD_BIN ?? 'etcd';
  const r = spawnSync(bin, ['--version'], { stdio: 'ignore' });
  return r.status === 0 ? bin : null;
}

async function freePort() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

export class Etcd {
  #child = null;
  #exited = null;
  #log = '';
  dir = null;
  clientUrl = null;

  async start() {
    this.dir = await mkdtemp(join(tmpdir(), 'etcd-js-'));
    const client = `http://127.0.0.1:${await freePort()}`;
    const peer = `http://127.0.0.1:${await freePort()}`;
    this.clientUrl = client;
    const args = [
      '--name', 'default', '--data-dir', join(this.dir, 'data'),
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `default=${peer}`,
    ];
    const child = spawn(etcdBinary(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s) => {
      this.#log = (this.#log + s).slice(-8000);
    });
    this.#exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
    let exit = null;
    this.#exited.then((e) => {
      exit = e;
    });
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (exit) throw new Error(`etcd exited early (${JSON.stringify(exit)}):\n${this.#log}`);
      const healthy = await fetch(`${client}/health`, { signal: AbortSignal.timeout(1000) })
        .then(async (r) => r.ok && (await r.json()).health === 'true')
        .catch(() => false);
      if (healthy) return this;
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`etcd did not get healthy within 20 s:\n${this.#log}`);
      }
      await sleep(50);
    }
  }

  async stop() {
    const child = this.#child;
    this.#child = null;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await this.#exited;
      clearTimeout(t);
    }
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}
