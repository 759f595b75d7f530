// Starts the real registryd for a test: a fresh temp dir (data/, config,
// port file, captured stderr), `--listen 127.0.0.1:0 --port-file` as in
// tests/integration/harness.cpp, stopped by pid. The binary is
// $REGISTRYD_BIN, by default the release build of this checkout.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const registrydBin = process.env.REGISTRYD_BIN ?? resolve(here, '../../../../build/release/registryd');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// deploy.run_as for the tests' registryd: the user running them (root in CI),
// the one registryd can always run package scripts as (docs/protocol.md,
// "Deployment": scripts never run as root unless the config says so).
export const deployRunAs = `  run_as: ${userInfo().username}\n`;

export class Registryd {
  #config;
  #tls;
  #child = null;
  #exited = null; // promise of {code, signal}
  #stderr = '';
  dir = null;
  host = null;
  port = 0;

  // `tls`: the config has a `tls` section (the URL is wss://).
  constructor({ config = '', tls = false } = {}) {
    this.#config = config;
    this.#tls = tls;
  }

  get url() {
    return `${this.#tls ? 'wss' : 'ws'}://${this.host}:${this.port}/`;
  }

  get pid() {
    return this.#child?.pid;
  }

  // Starts the daemon; `port` 0 means an ephemeral one (a restart passes the
  // previous port so that clients reconnect to the same URL).
  async start({ port = 0 } = {}) {
    if (!existsSync(registrydBin)) {
      throw new Error(`registryd not found at ${registrydBin}: build it or set REGISTRYD_BIN`);
    }
    if (!this.dir) {
      this.dir = await mkdtemp(join(tmpdir(), 'registryd-js-'));
      if (this.#config) await writeFile(join(this.dir, 'registryd.yaml'), this.#config);
    }
    const portFile = join(this.dir, 'port');
    await rm(portFile, { force: true });
    const args = ['--listen', `127.0.0.1:${port}`, '--data-dir', join(this.dir, 'data'), '--port-file', portFile];
    if (this.#config) args.push('--config', join(this.dir, 'registryd.yaml'));
    const child = spawn(registrydBin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#child = child;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (s) => {
      this.#stderr += s;
    });
    this.#exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
    let exit = null;
    this.#exited.then((e) => {
      exit = e;
    });
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (exit) throw new Error(`registryd exited early (${JSON.stringify(exit)}):\n${this.#stderr}`);
      const text = await readFile(portFile, 'utf8').catch(() => null);
      if (text) {
        const addr = text.trim();
        const i = addr.lastIndexOf(':');
        this.host = addr.slice(0, i);
        this.port = Number(addr.slice(i + 1));
        return this;
      }
      if (Date.now() > deadline) {
        await this.kill9();
        throw new Error(`registryd did not write its port file within 10 s:\n${this.#stderr}`);
      }
      await sleep(20);
    }
  }

  // SIGTERM and wait for the exit (SIGKILL after 15 s).
  async stop() {
    if (!this.#child) return null;
    const child = this.#child;
    this.#child = null;
    if (child.exitCode !== null || child.signalCode !== null) return this.#exited;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const e = await this.#exited;
    clearTimeout(t);
    return e;
  }

  async kill9() {
    if (!this.#child) return null;
    const child = this.#child;
    this.#child = null;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return this.#exited;
  }

  // Stops and starts again on the same port with the same data.
  async restart() {
    this.#checkClean(await this.stop());
    return this.start({ port: this.port });
  }

  // Stops the daemon (SIGTERM) and removes its directory. Throws when it did
  // not exit cleanly: a crash, or a sanitizer report in an ASan build.
  async dispose() {
    const exit = await this.stop();
    if (this.dir && !process.env.REGISTRYD_JS_KEEP) await rm(this.dir, { recursive: true, force: true });
    this.dir = null;
    this.#checkClean(exit);
  }

  #checkClean(exit) {
    if (exit && (exit.code !== 0 || exit.signal !== null)) {
      throw new Error(`registryd did not exit cleanly (${JSON.stringify(exit)}):\n${this.#stderr.slice(-4000)}`);
    }
  }

  get stderr() {
    return this.#stderr;
  }
}

export async function startRegistryd(options) {
  const d = new Registryd(options);
  await d.start();
  return d;
}
