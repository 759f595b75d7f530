// wss:// with a private CA (--ca-file / the `ca` option) against a real
// registryd with TLS, and how the client and registryctl report a refusal:
// a 401 at the upgrade and a `forbidden` response (exit code 77).
//
// The refusals come from small fake peers (a Node HTTP server answering the
// upgrade with 401, a `ws` server answering with `forbidden`): registryd's
// authentication is built elsewhere; these test the client's side alone.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { WebSocketServer } from 'ws';

import { RegistryError } from '../src/index.js';
import { client, service } from './helpers/common.js';
import { startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, '../bin/registryctl.js');

// Runs registryctl to completion: {code, stdout, stderr}.
function run(args, env = {}) {
  return new Promise((res) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, REGISTRY_TOKEN: '', REGISTRY_URL: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (s) => (stdout += s));
    child.stderr.on('data', (s) => (stderr += s));
    child.on('exit', (code) => res({ code, stdout, stderr }));
  });
}

function openssl(dir, args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

describe('wss:// with a private CA', () => {
  let dir;
  let daemon;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'registry-js-tls-'));
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    openssl(dir, ['req', '-x509', ...ec, '-days', '2', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/CN=js test CA']);
    openssl(dir, ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
    await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    openssl(dir, ['x509', '-req', '-days', '2', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
      '-CAcreateserial', '-out', 'server.pem', '-extfile', 'server.ext']);
    daemon = await startRegistryd({
      tls: true,
      config: `tls:\n  cert_file: ${join(dir, 'server.pem')}\n  key_file: ${join(dir, 'server.key')}\n`,
    });
  });

  after(async () => {
    await daemon?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the client with `ca` registers and reads back over wss://', async () => {
    assert.match(daemon.url, /^wss:\/\//);
    const c = client(daemon.url, { ca: await readFile(join(dir, 'ca.pem')) });
    try {
      await c.register({ service: service('tls-web', 'tls-web-1', 8443), ttl_seconds: 60 });
      const { services } = await c.getService({ name: 'tls-web' });
      assert.equal(services.length, 1);
      assert.equal(services[0].instance_id, 'tls-web-1');
    } finally {
      await c.close();
    }
  });

  test('registryctl --ca-file reads over wss://; without it the certificate is not trusted', async () => {
    const ok = await run(['--url', daemon.url, '--ca-file', join(dir, 'ca.pem'), '--json', 'get', 'tls-web-1']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(JSON.parse(ok.stdout).service.name, 'tls-web');

    const untrusted = await run(['--url', daemon.url, '--wait', '1500', 'get', 'tls-web-1']);
    assert.equal(untrusted.code, 69); // no connection: registryd unreachable
    assert.match(untrusted.stderr, /cannot reach registryd: .*(self.signed|issuer|unable to (get|verify))/i);

    const missing = await run(['--url', daemon.url, '--ca-file', join(dir, 'nope.pem'), 'get', 'tls-web-1']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--ca-file: cannot read/);
  });
});

describe('refusals: 401 at the upgrade and forbidden', () => {
  let http401;
  let httpUrl;
  let wss;
  let wssUrl;
  const seen = { authorization: [] };

  before(async () => {
    http401 = createServer((req, res) => res.writeHead(404).end());
    http401.on('upgrade', (req, socket) => {
      seen.authorization.push(req.headers.authorization ?? null);
      socket.end('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    await new Promise((r) => http401.listen(0, '127.0.0.1', r));
    httpUrl = `ws://127.0.0.1:${http401.address().port}/`;

    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    wss.on('connection', (ws) => {
      ws.on('message', (raw) => {
        const msg = JSON.parse(String(raw));
        ws.send(JSON.stringify({
          id: msg.id,
          type: 'response',
          error: { code: 'forbidden', message: `'ci' lacks the permission 'register' that ${msg.action} needs` },
        }));
      });
    });
    await new Promise((r) => wss.on('listening', r));
    wssUrl = `ws://127.0.0.1:${wss.address().port}/`;
  });

  after(async () => {
    await new Promise((r) => http401.close(r));
    await new Promise((r) => wss.close(r));
  });

  test('the client rejects waiting requests with unauthorized at once, and sends the token as a bearer header', async () => {
    const c = client(httpUrl, { token: 's3cret', connectWaitMs: 20_000 });
    const t0 = Date.now();
    try {
      await assert.rejects(c.getService('x'), (e) => {
        assert.ok(e instanceof RegistryError);
        assert.equal(e.code, 'unauthorized');
        assert.match(e.message, /HTTP 401.*token/);
        return true;
      });
    } finally {
      await c.close();
    }
    assert.ok(Date.now() - t0 < 10_000, 'not after the connect wait');
    assert.ok(seen.authorization.includes('Bearer s3cret'));
  });

  test('registryctl exits 77 on a 401, with --token and with REGISTRY_TOKEN', async () => {
    seen.authorization.length = 0;
    const flag = await run(['--url', httpUrl, '--token', 'from-flag', 'get', 'x']);
    assert.equal(flag.code, 77, flag.stderr);
    assert.match(flag.stderr, /registryctl: registryd refused the connection \(HTTP 401\)/);
    const env = await run(['--url', httpUrl, 'get', 'x'], { REGISTRY_TOKEN: 'from-env' });
    assert.equal(env.code, 77, env.stderr);
    assert.deepEqual(seen.authorization, ['Bearer from-flag', 'Bearer from-env']);
  });

  test('registryctl exits 77 on forbidden, naming the permission', async () => {
    const r = await run(['--url', wssUrl, 'register', 'web', '--id', 'web-1', '--ttl', '30']);
    assert.equal(r.code, 77, r.stderr);
    assert.match(r.stderr, /not permitted: 'ci' lacks the permission 'register'/);
  });
});
