// registryctl as a subprocess against a real registryd.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { client, nextLine, service, sleep } from './helpers/common.js';
import { registrydBin, startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, '../bin/registryctl.js');

let daemon;
let c;
const children = new Set();

before(async () => {
  daemon = await startRegistryd();
  c = client(daemon.url);
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await c?.close();
  await daemon?.dispose();
});

// Starts registryctl with `args`; REGISTRY_URL points at the test's daemon.
function start(args, env = {}) {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, REGISTRY_URL: daemon.url, REGISTRY_TOKEN: '', ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s) => {
    stderr += s;
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise((res) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      res({ code, signal, stdout, stderr: () => stderr });
    });
  });
  return {
    child,
    lines,
    exited,
    captureStdout() {
      child.stdout.on('data', (s) => {
        stdout += s;
      });
    },
  };
}

// Runs registryctl to completion: {code, stdout, stderr}.
async function run(args, env) {
  const p = start(args, env);
  const chunks = [];
  for await (const line of p.lines) chunks.push(line);
  const { code, signal } = await p.exited;
  const stderr = (await p.exited).stderr();
  assert.equal(signal, null, `registryctl ${args.join(' ')} was killed by ${signal}`);
  return { code, stdout: chunks.join('\n'), stderr };
}

describe('registry commands', () => {
  test('services: a table, and --json for scripts', async () => {
    await c.register({ service: { ...service('tbl', 'tbl-1', 8081), version: '1.0' }, ttl_seconds: 600 });
    await c.setState('tbl-1', 'running');
    const human = await run(['services', '--name', 'tbl']);
    assert.equal(human.code, 0, human.stderr);
    const [head, row, ...more] = human.stdout.split('\n');
    assert.match(head, /^INSTANCE\s+NAME\s+VERSION\s+STATE\s+HEALTH\s+ENDPOINTS\s+LEASE$/);
    assert.match(row, /^tbl-1\s+tbl\s+1\.0\s+running\s+-\s+http=http:\/\/127\.0\.0\.1:8081\s+\d+ \(expires in \d+[sm]\)$/);
    assert.deepEqual(more, []);

    const json = await run(['--json', 'services', '--state', 'running']);
    assert.equal(json.code, 0, json.stderr);
    const data = JSON.parse(json.stdout);
    assert.deepEqual(
      data.services.map((s) => s.instance_id),
      ['tbl-1'],
    );
  });

  test('get and endpoints', async () => {
    await c.register({ service: { ...service('gt', 'gt-1', 8082), metadata: { team: 'core' } }, ttl_seconds: 600 });
    const one = await run(['get', 'gt-1']);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^instance:\s+gt-1$/m);
    assert.match(one.stdout, /^metadata:\s+team=core$/m);
    assert.match(one.stdout, /^endpoints:\s+http=http:\/\/127\.0\.0\.1:8082$/m);

    const byName = await run(['get', '--name', 'gt', '--json']);
    assert.equal(JSON.parse(byName.stdout).services[0].instance_id, 'gt-1');

    const eps = await run(['endpoints', '--service', 'gt']);
    assert.equal(eps.code, 0, eps.stderr);
    assert.match(eps.stdout.split('\n')[1], /^gt\s+gt-1\s+http\s+127\.0\.0\.1\s+8082\s+http\s+registered$/);
  });

  test('register, set-state, keepalive and deregister', async () => {
    const reg = await run([
      'register', 'cli', '--id', 'cli-1', '--version', '2.0', '--endpoint', 'grpc=grpc://10.0.0.1:9000',
      '--meta', 'team=x', '--depends', 'db', '--ttl', '120', '--json',
    ]);
    assert.equal(reg.code, 0, reg.stderr);
    const lease = JSON.parse(reg.stdout).lease_id;
    const { service: s } = await c.getService('cli-1');
    assert.equal(s.version, '2.0');
    assert.deepEqual(s.endpoints, [{ name: 'grpc', address: '10.0.0.1', port: 9000, protocol: 'grpc' }]);
    assert.deepEqual(s.metadata, { team: 'x' });
    assert.deepEqual(s.depends_on, ['db']);
    assert.equal(s.lease.ttl_seconds, 120);

    const st = await run(['set-state', 'cli-1', 'failed', '--reason', 'boom']);
    assert.equal(st.stdout, 'cli-1: failed');
    assert.equal((await c.getService('cli-1')).service.failure_reason, 'boom');

    const ka = await run(['keepalive', String(lease)]);
    assert.equal(ka.code, 0, ka.stderr);
    assert.match(ka.stdout, new RegExp(`^lease ${lease} \\(cli-1\\) expires in \\d+[sm]$`));

    const dereg = await run(['deregister', 'cli-1']);
    assert.equal(dereg.code, 0, dereg.stderr);
    assert.match(dereg.stdout, /^deregistered cli-1 \(revision \d+\)$/);
    await assert.rejects(c.getService('cli-1'), { code: 'not_found' });
  });

  test('register --keep holds the lease past its TTL until SIGINT, then deregisters', async () => {
    const p = start(['register', 'kept', '--id', 'kept-1', '--ttl', '1', '--state', 'running', '--keep']);
    assert.match(await nextLine(p.lines), /^registered kept-1 \(lease \d+\); keeping it alive/);
    await sleep(2500);
    assert.equal((await c.getService('kept-1')).service.state, 'running');
    p.child.kill('SIGINT');
    assert.equal(await nextLine(p.lines), 'deregistered kept-1');
    const { code } = await p.exited;
    assert.equal(code, 0);
    await assert.rejects(c.getService('kept-1'), { code: 'not_found' });
  });

  test('watch prints one event a line (JSON with --json) until SIGINT', async () => {
    await c.register({ service: service('wch', 'wch-0'), ttl_seconds: 600 });
    const p = start(['watch', '--service', 'wch', '--json']);
    const loaded = JSON.parse(await nextLine(p.lines));
    assert.equal(loaded.event, 'registry_loaded');
    assert.deepEqual(
      loaded.data.services.map((s) => s.instance_id),
      ['wch-0'],
    );
    await c.register({ service: service('wch', 'wch-1') });
    await c.register({ service: service('other', 'other-1') });
    await c.setState('wch-1', 'running');
    await c.deregister('wch-0');
    const got = [];
    for (let i = 0; i < 3; i++) {
      const e = JSON.parse(await nextLine(p.lines));
      got.push(`${e.event} ${e.data.service.instance_id}`);
    }
    assert.deepEqual(got, ['service_registered wch-1', 'service_state_changed wch-1', 'service_deregistered wch-0']);
    p.child.kill('SIGINT');
    assert.equal((await p.exited).code, 0);
  });

  test('watch keeps going across a daemon restart', async () => {
    const p = start(['watch', '--service', 'rst']);
    assert.match(await nextLine(p.lines), /^\d+ registry_loaded - services=0$/);
    const first = await c.register({ service: service('rst', 'rst-1') });
    assert.equal(await nextLine(p.lines), `${first.revision} service_registered rst-1 state=registered endpoints=http=http://127.0.0.1:8080`);
    await daemon.restart();
    const second = await c.register({ service: service('rst', 'rst-2') });
    assert.equal(
      await nextLine(p.lines, 10_000),
      `${second.revision} service_registered rst-2 state=registered endpoints=http=http://127.0.0.1:8080`,
    );
    const st = await c.setState('rst-2', 'running');
    assert.equal(await nextLine(p.lines), `${st.revision} service_state_changed rst-2 registered -> running`);
    p.child.kill('SIGTERM');
    assert.equal((await p.exited).code, 0);
  });

  test('watch --count exits after N events', async () => {
    const r = await run(['watch', '--count', '1', '--service', 'nothing-here']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\d+ registry_loaded - services=0$/);
  });

  test('a token from REGISTRY_TOKEN is accepted (registryd ignores it)', async () => {
    await c.register({ service: service('tok', 'tok-1'), ttl_seconds: 600 });
    const r = await run(['services', '--name', 'tok', '--json'], { REGISTRY_TOKEN: 's3cret' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).services.length, 1);
  });
});

describe('errors', () => {
  test("the server's error code and message, exit 1", async () => {
    const r = await run(['get', 'missing-1']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^registryctl: not_found: .*missing-1/);
  });

  test("bad usage exits 2 with the usage of the command it is about, only that one's", async () => {
    for (const [args, usage] of [
      [[], 'registryctl [--url URL]'],
      [['frobnicate'], 'registryctl [--url URL]'],
      [['get'], 'registryctl get <instance_id>'],
      [['services', '--colour', 'red'], 'registryctl services [--name N]'],
      [['register', 'x', '--endpoint', 'bad'], 'registryctl register <name>'],
      [['containers', 'create'], 'registryctl containers create (--preset NAME | --image IMG)'],
      [['containers', 'logs', '--bogus', 'c1'], 'registryctl containers logs [-f|--follow]'],
      [['containers', 'frob'], 'registryctl containers list|create|get|logs|stop|rm|extend ...'],
      [['images'], 'registryctl images pull ...'],
      [['images', 'pull'], 'registryctl images pull REFERENCE'],
      [['uploads', 'status'], 'registryctl uploads status UPLOAD_ID'],
      [['completion', 'fish'], 'registryctl completion bash|zsh'],
    ]) {
      const r = await run(args);
      assert.equal(r.code, 2, `registryctl ${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      const lines = r.stderr.split('\n');
      assert.match(lines[0], /^registryctl: \S/);
      assert.equal(lines.filter((l) => l.startsWith('usage: ')).length, 1, r.stderr);
      assert.ok(lines.includes('') && r.stderr.includes(`usage: ${usage}`), `registryctl ${args.join(' ')}:\n${r.stderr}`);
      // A command's usage is not the overview: no other command, no global options.
      if (args.length && args[0] !== 'frobnicate') {
        assert.doesNotMatch(r.stderr, /^ {2}keepalive /m);
        assert.doesNotMatch(r.stderr, /^ {2}--timeout MS/m);
        assert.ok(lines.length < 30, `${lines.length} lines:\n${r.stderr}`);
      }
    }
  });

  test('an unreachable daemon is a clear error within --wait, exit 69', async () => {
    const started = Date.now();
    const r = await run(['--url', 'ws://127.0.0.1:1/', '--wait', '1500', 'services']);
    assert.equal(r.code, 69);
    assert.match(r.stderr, /^registryctl: cannot reach registryd: not connected to ws:\/\/127\.0\.0\.1:1\/ within 1500 ms: .*ECONNREFUSED/);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, `one line: ${r.stderr}`);
    assert.ok(Date.now() - started < 5000);
  });

  // The capability commands reach their actions: against this daemon (no
  // container engine, no REPL section, nothing deployed) each fails with the
  // daemon's specific error code, as one final line on stderr, and exits 1
  // (`run` exits 125, which no program status is mistaken for).
  for (const [args, code, exitCode = 1] of [
    [['nodes'], 'unavailable'],
    [['containers'], 'unavailable'],
    [['containers', 'logs', 'c1'], 'unavailable'],
    [['containers', 'logs', '-f', 'c1'], 'unavailable'],
    [['containers', 'stop', 'c1'], 'unavailable'],
    [['containers', 'rm', 'c1'], 'unavailable'],
    [['containers', 'extend', 'c1', '--ttl', '60'], 'unavailable'],
    [['run', 'sh', '-'], 'unavailable', 125],
    [['undeploy', 'pkg-1'], 'not_found'],
    [['action', 'restart', 'pkg-1'], 'not_found'],
    [['languages'], 'unavailable'],
    [['images', 'pull', 'docker.io/library/alpine:3.19'], 'unavailable'],
    [['uploads', 'status', 'up-0123'], 'not_found'],
  ]) {
    test(`${args.join(' ')}: the daemon's ${code} is reported`, async () => {
      const p = start(args);
      p.child.stdin.end('echo hi\n');
      p.captureStdout();
      const { code: exit, stderr } = await p.exited;
      assert.equal(exit, exitCode);
      const last = stderr().trim().split('\n').pop();
      assert.match(last, new RegExp(`^registryctl: ${code}: \\S`), stderr());
    });
  }

  test('deploy of a missing package file fails with a specific error, not a missing capability', async () => {
    const p = start(['deploy', '/nonexistent/pkg-1.0.tar.gz']);
    p.captureStdout();
    const { code: exit, stderr } = await p.exited;
    assert.equal(exit, 1);
    const last = stderr().trim().split('\n').pop();
    assert.match(last, /^registryctl: [a-z_]+: \S/, stderr());
    assert.doesNotMatch(last, /unknown_action|does not support/);
  });
});

describe('help, version, status, completion', () => {
  test('help lists every command; help CMD and CMD --help print its usage on stdout', async () => {
    const all = await run(['help']);
    assert.equal(all.code, 0, all.stderr);
    for (const name of ['services', 'watch', 'containers', 'images', 'languages', 'uploads', 'status', 'version', 'completion']) {
      assert.match(all.stdout, new RegExp(`^  ${name} +\\S`, 'm'), name);
    }
    assert.match(all.stdout, /^ {2}69 +registryd unreachable/m);
    assert.equal((await run(['--help'])).stdout, all.stdout);

    for (const [words, first] of [
      [['get'], 'usage: registryctl get <instance_id> | --name NAME [--health passing|passing_or_warning]'],
      [['containers'], 'usage: registryctl containers list|create|get|logs|stop|rm|extend ...'],
      [['containers', 'create'], 'usage: registryctl containers create (--preset NAME | --image IMG) [--name N] [--ttl S]'],
      [['images', 'pull'], 'usage: registryctl images pull REFERENCE [--engine E]'],
    ]) {
      const viaHelp = await run(['help', ...words]);
      const viaFlag = await run([...words, '--help']);
      assert.equal(viaHelp.code, 0, viaHelp.stderr);
      assert.equal(viaFlag.code, 0, viaFlag.stderr);
      assert.ok(viaHelp.stdout.startsWith(first), viaHelp.stdout);
      assert.equal(viaFlag.stdout, viaHelp.stdout);
      assert.match(viaHelp.stdout, /^ {2}--wait MS/m);
    }
    // A subcommand's usage is its own.
    const create = await run(['help', 'containers', 'create']);
    assert.doesNotMatch(create.stdout, /containers logs/);

    for (const [typed, meant] of [['statsu', 'status'], ['servics', 'services'], ['lang', 'languages'], ['containres', 'containers']]) {
      const r = await run([typed]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`^registryctl: unknown command '${typed}' \\(did you mean '${meant}'\\?\\)$`, 'm'));
    }
    assert.match((await run(['frobnicate'])).stderr, /^registryctl: unknown command 'frobnicate'$/m);

    const unknown = await run(['help', 'nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /^registryctl: help: unknown command 'nope'$/m);
  });

  test('every usage names exactly the options its command takes', async () => {
    const { commands } = await import('../src/cli/commands.js');
    const { flagsOf } = await import('../src/cli/usage.js');
    for (const [name, c] of Object.entries(commands)) {
      const options = Object.keys(c.options ?? {}).map((o) => `--${o}`).sort();
      const usages = c.subcommands ? Object.values(c.subcommands).map((sub) => sub.args ?? '') : [c.args ?? ''];
      const named = [...new Set(usages.flatMap((u) => u.match(/--[a-z][a-z0-9-]*/g) ?? []))].sort();
      assert.deepEqual(named, options, `${name}: the flags its usage names, and its options`);
      for (const sub of Object.keys(c.subcommands ?? {})) {
        assert.ok(flagsOf(name, sub).every((f) => options.includes(f)), `${name} ${sub}`);
      }
    }
  });

  test("version: registryctl's from package.json, registryd's from its /metrics", async () => {
    const pkg = JSON.parse(readFileSync(resolve(here, '../package.json'), 'utf8'));
    const daemonVersion = execFileSync(registrydBin, ['--version'], { encoding: 'utf8' }).trim().split(' ').pop();
    const r = await run(['version']);
    assert.equal(r.code, 0, r.stderr);
    const [mine, theirs, ...more] = r.stdout.split('\n');
    assert.equal(mine, `registryctl ${pkg.version} (node ${process.version})`);
    assert.match(theirs, new RegExp(`^registryd {3}${daemonVersion.replace(/\./g, '\\.')} \\(\\w+ [\\d.]+\\) at ${daemon.url}$`));
    assert.deepEqual(more, []);
    const json = JSON.parse((await run(['version', '--json'])).stdout);
    assert.equal(json.client.version, pkg.version);
    assert.equal(json.daemon.version, daemonVersion);

    const client = await run(['--url', 'ws://127.0.0.1:1/', 'version', '--client']);
    assert.equal(client.code, 0, client.stderr);
    assert.equal(client.stdout, mine);
    const away = await run(['--url', 'ws://127.0.0.1:1/', 'version']);
    assert.equal(away.code, 69);
    assert.equal(away.stdout, '');
    assert.match(away.stderr, /^registryctl: cannot reach registryd: GET http:\/\/127\.0\.0\.1:1\/metrics: connect ECONNREFUSED/);
  });

  test('status: version, revision, services, store, nodes', async () => {
    await c.register({ service: service('stat', 'stat-1'), ttl_seconds: 600 });
    // Leases of earlier tests expire meanwhile: compare with a registry that
    // did not change while status ran.
    let revision;
    let services;
    let r;
    for (let attempt = 0; ; attempt++) {
      ({ revision, services } = await c.listServices());
      r = await run(['status']);
      if ((await c.listServices()).revision === revision || attempt === 5) break;
    }
    assert.equal(r.code, 0, r.stderr);
    const daemonVersion = execFileSync(registrydBin, ['--version'], { encoding: 'utf8' }).trim().split(' ').pop();
    const rows = Object.fromEntries(r.stdout.split('\n').map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
    assert.match(rows.registryd, new RegExp(`^${daemonVersion.replace(/\./g, '\\.')} \\(`));
    assert.equal(rows.url, daemon.url);
    assert.match(rows.started, /^\d{4}-\d\d-\d\dT.*Z \(\d+[smh] ago\)$/);
    assert.equal(Number(rows.revision), revision);
    assert.equal(rows.services, `${services.length} instance${services.length === 1 ? '' : 's'}`);
    assert.equal(rows.store, 'file, writable');
    assert.equal(rows.nodes, 'none (no container engine is configured on this server)');

    const json = JSON.parse((await run(['status', '--json'])).stdout);
    assert.equal(json.revision, revision);
    assert.deepEqual(json.store, { available: true, kind: 'file', state: 'ok' });
    assert.equal(json.nodes, null);
    assert.match(json.nodes_error, /^unavailable: /);

    const away = await run(['--url', 'ws://127.0.0.1:1/', '--wait', '500', 'status']);
    assert.equal(away.code, 69);
    assert.match(away.stderr, /^registryctl: cannot reach registryd: /);
  });

  test('completion bash: valid bash that completes commands, subcommands and flags', async () => {
    const r = await run(['completion', 'bash']);
    assert.equal(r.code, 0, r.stderr);
    const script = `${r.stdout}\n`;
    const check = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
    assert.equal(check.status, 0, check.stderr);
    // What bash offers for the words typed so far (the last one: the word being completed).
    const complete = (...words) => {
      const out = spawnSync(
        'bash',
        ['-c', 'eval "$(cat)"; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _registryctl; printf "%s\\n" "${COMPREPLY[@]}"', '_', 'registryctl', ...words],
        { input: script, encoding: 'utf8' },
      );
      assert.equal(out.status, 0, out.stderr);
      return out.stdout.split('\n').filter(Boolean);
    };
    assert.deepEqual(complete('serv'), ['services']);
    assert.deepEqual(complete('--url', 'ws://x:1/', 'stat'), ['status']);
    assert.deepEqual(complete('containers', ''), ['list', 'create', 'get', 'logs', 'stop', 'rm', 'extend']);
    assert.deepEqual(complete('containers', 'create', '--p'), ['--preset', '--pids']);
    assert.deepEqual(complete('watch', '--co'), ['--count']);
    assert.deepEqual(complete('help', 'up'), ['uploads']);
    assert.deepEqual(complete('completion', ''), ['bash', 'zsh']);
    assert.deepEqual(complete('deploy', 'pkg'), [], 'a file: left to bash (complete -o default)');

    // zsh: checked by zsh where it is installed.
    const zsh = await run(['completion', 'zsh']);
    assert.equal(zsh.code, 0, zsh.stderr);
    assert.match(zsh.stdout, /^#compdef registryctl\n/);
    assert.match(zsh.stdout, /'containers:manage containers'/);
    const createFlags = /^ {8}create\) flags=\(([^)]*)\) ;;$/m.exec(zsh.stdout)?.[1].split(' ');
    assert.ok(createFlags, zsh.stdout);
    for (const f of ['--preset', '--image', '--ttl', '--memory', '--pids']) assert.ok(createFlags.includes(f), f);
    assert.ok(!createFlags.includes('--tail'), 'a flag of logs, not of create');
    const zshCheck = spawnSync('zsh', ['-n'], { input: zsh.stdout, encoding: 'utf8' });
    if (zshCheck.error) return; // no zsh here: the script's text was checked above
    assert.equal(zshCheck.status, 0, zshCheck.stderr);
    // What the function hands zsh's completion system for the words typed so
    // far, with its functions (_describe, compadd, _files) standing in.
    const zshComplete = (...words) => {
      const harness =
        'compdef() { :; }\n_describe() { local arr=$2; print -rl -- ${${(P)arr}%%:*} }\n' +
        'compadd() { [[ $1 == -- ]] && shift; print -rl -- "$@" }\n_files() { print -r -- FILES }\n' +
        'eval "$(cat)"\nwords=(registryctl "$@"); CURRENT=$#words; _registryctl\n';
      const out = spawnSync('zsh', ['-c', harness, '_', ...words], { input: zsh.stdout, encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      return out.stdout.split('\n').filter(Boolean);
    };
    assert.ok(zshComplete('serv').includes('services'));
    assert.ok(zshComplete('--url', 'ws://x:1/', 'st').includes('status'));
    assert.deepEqual(zshComplete('containers', ''), ['list', 'create', 'get', 'logs', 'stop', 'rm', 'extend']);
    const logsFlags = zshComplete('containers', 'logs', '-');
    assert.ok(logsFlags.includes('--follow') && logsFlags.includes('--tail') && logsFlags.includes('--url'), logsFlags.join(' '));
    assert.ok(!logsFlags.includes('--preset'));
    assert.deepEqual(zshComplete('completion', ''), ['bash', 'zsh']);
    assert.deepEqual(zshComplete('deploy', 'pkg'), ['FILES']);
  });
});

describe('a closed output pipe', () => {
  // `registryctl watch | head -1` in bash: head exits after the first line
  // and registryctl at its next one, quietly (its status and stderr are
  // what the pipe reports).
  test('watch | head -1 exits 0 at its next event, without a stack trace', async () => {
    const shell = spawn(
      'bash',
      ['-c', '"$0" "$1" watch --service piped | head -1; echo "registryctl exited ${PIPESTATUS[0]}" >&2', process.execPath, bin],
      { env: { ...process.env, REGISTRY_URL: daemon.url, REGISTRY_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(shell);
    let stdout = '';
    let stderr = '';
    shell.stdout.setEncoding('utf8').on('data', (t) => (stdout += t));
    shell.stderr.setEncoding('utf8').on('data', (t) => (stderr += t));
    const exited = new Promise((r) => shell.on('exit', r));
    let done = false;
    exited.then(() => (done = true));
    // Changes until the watch has had a line after head's.
    for (let i = 0; !done && i < 200; i++) {
      await c.register({ service: service('piped', `piped-${i}`), ttl_seconds: 60 });
      await sleep(50);
    }
    assert.equal(await exited, 0);
    children.delete(shell);
    assert.match(stdout, /^\d+ registry_loaded - services=\d+\n$/);
    assert.equal(stderr, 'registryctl exited 0\n');
  });
});

describe('access control', () => {
  // A registryd with tokens, whose /metrics wants one too.
  test('status and version send the token to /metrics; a missing or wrong token, or a refused action, exits 77', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'registryctl-auth-'));
    const reader = 'cli-reader-token-5e2a91';
    const tokens = join(dir, 'tokens.yaml');
    await writeFile(tokens, `tokens:\n  - name: cli\n    sha256: ${createHash('sha256').update(reader).digest('hex')}\n    role: reader\n`, {
      mode: 0o600,
    });
    const secured = await startRegistryd({ config: `auth:\n  tokens_file: ${tokens}\nhttp:\n  metrics_token_required: true\n` });
    try {
      const as = (token, ...args) => run(['--url', secured.url, '--wait', '2000', ...args], { REGISTRY_TOKEN: token });
      const status = await as(reader, 'status');
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /^registryd: +\d+\.\d+\.\d+ \(/m);
      assert.match(status.stdout, /^store: +file, writable$/m);
      const version = await as(reader, 'version');
      assert.equal(version.code, 0, version.stderr);

      const noToken = await as('', 'version');
      assert.equal(noToken.code, 77, noToken.stderr);
      assert.match(noToken.stderr, /^registryctl: GET \/metrics: HTTP 401/);
      const wrong = await as('not-the-token', 'status');
      assert.equal(wrong.code, 77, wrong.stderr);
      assert.match(wrong.stderr, /HTTP 401/);
      const refused = await as(reader, 'register', 'x');
      assert.equal(refused.code, 77, refused.stderr);
      assert.match(refused.stderr, /^registryctl: not permitted: /);
    } finally {
      await secured.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
