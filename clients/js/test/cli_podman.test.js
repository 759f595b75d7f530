// registryctl as a subprocess against a real registryd wired to a real Podman
// API service (test/helpers/podman.js): `run` streams a program's output and
// exits with its exit code, the container commands' success paths, `nodes`.
// Without podman every test is skipped (and counted as skipped).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test as nodeTest } from 'node:test';
import { fileURLToPath } from 'node:url';

import { client, nextLine, until } from './helpers/common.js';
import { podmanMissing, startPodman, testImage } from './helpers/podman.js';
import { Proxy } from './helpers/proxy.js';
import { startRegistryd } from './helpers/registryd.js';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(here, '../bin/registryctl.js');
const missing = podmanMissing();
const test = (name, fn) => nodeTest(name, { skip: missing ?? false }, fn);
const owner = `js-${process.pid}`;

function config(engine) {
  const limits =
    '      defaults: {timeout_ms: 20000, output_bytes: 65536, memory_bytes: 128MiB, pids: 64, cpu_millicores: 1000}\n' +
    '      maximum: {timeout_ms: 60000, output_bytes: 1MiB, memory_bytes: 512MiB, pids: 256, cpu_millicores: 2000}\n';
  return (
    'containers:\n' +
    `  instance_id: ${owner}\n` +
    '  heartbeat_interval_ms: 200\n' +
    '  heartbeat_timeout_ms: 2000\n' +
    '  stop_grace_seconds: 1\n' +
    '  presets:\n' +
    `    sleeper: {image: ${testImage}, command: [sleep, "300"], limits: {pids: 16}}\n` +
    '  engines:\n' +
    `    - name: node-1\n      endpoint: ${engine}\n      capacity: 4\n` +
    'repl:\n' +
    '  enabled: true\n' +
    '  max_concurrent: 2\n' +
    '  max_queue: 8\n' +
    '  languages:\n' +
    `    - name: sh\n      version: busybox\n      image: ${testImage}\n      source_file: main.sh\n` +
    '      run: [sh, "{source}"]\n' +
    limits +
    `    - name: shc\n      image: ${testImage}\n      source_file: main.sh\n` +
    '      compile: [sh, -n, "{source}"]\n      run: [sh, "{source}"]\n' +
    limits
  );
}

describe('registryctl on a real Podman', () => {
  let podman;
  let daemon;
  let c;
  let dir;
  const children = new Set();

  before(async () => {
    if (missing) return;
    podman = await startPodman();
    daemon = await startRegistryd({ config: config(podman.uri) });
    c = client(daemon.url);
    dir = await mkdtemp(join(tmpdir(), 'registryctl-run-'));
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await c?.close();
    await daemon?.dispose();
    try {
      // Every REPL container is removed once its execution has finished.
      if (podman) assert.deepEqual(await podman.containers(`io.registry.repl.owner=${owner}`), []);
    } finally {
      await podman?.dispose();
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  });

  // registryctl with `args`: its stdout as lines, its stderr collected.
  function start(args, { input, url } = {}) {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, REGISTRY_URL: url ?? daemon.url, REGISTRY_TOKEN: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    child.stdin.end(input ?? '');
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s) => (stderr += s));
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const exited = new Promise((res) =>
      child.on('exit', (code, signal) => {
        children.delete(child);
        res({ code, signal, at: Date.now() });
      }),
    );
    return { child, lines, exited, stderr: () => stderr };
  }

  // Runs registryctl to its end: {code, stdout, stderr}.
  async function run(args, options) {
    const p = start(args, options);
    const out = [];
    for await (const line of p.lines) out.push(line);
    const { code, signal } = await p.exited;
    assert.equal(signal, null, `registryctl ${args.join(' ')} was killed by ${signal}`);
    return { code, stdout: out.join('\n'), stderr: p.stderr() };
  }

  async function script(name, text) {
    const file = join(dir, name);
    await writeFile(file, text);
    return file;
  }

  describe('run', () => {
    test("streams the output while the program runs and exits with the program's code", async () => {
      const file = await script('stream.sh', 'echo first\nsleep 1.5\necho "second $# $1|$2" >&2\nexit 7\n');
      const p = start(['run', 'sh', file, '--', 'a', 'b c']);
      assert.equal(await nextLine(p.lines, 20_000), 'first');
      const firstAt = Date.now();
      const { code, at } = await p.exited;
      assert.equal(code, 7, p.stderr());
      assert.ok(at - firstAt >= 1000, `"first" came ${at - firstAt} ms before the exit: not streamed`);
      assert.equal(p.stderr(), 'second 2 a|b c\n');
    });

    test('survives a dropped connection: it reconnects and completes the output from the kept result', async () => {
      const proxy = await new Proxy(daemon.host, daemon.port).listen();
      try {
        const file = await script('drop.sh', 'echo first\nsleep 2\necho second\necho late >&2\nexit 5\n');
        const p = start(['run', 'sh', file], { url: proxy.url });
        assert.equal(await nextLine(p.lines, 20_000), 'first');
        proxy.cut(); // mid-execution: its events are gone with the connection
        await new Promise((wake) => setTimeout(wake, 500));
        proxy.restore();
        assert.equal(await nextLine(p.lines, 30_000), 'second');
        const { code } = await p.exited;
        assert.equal(code, 5, p.stderr());
        assert.match(p.stderr(), /connection lost; waiting for the result of x[0-9a-f]{32}/);
        assert.match(p.stderr(), /late\n/);
        const id = /result of (x[0-9a-f]{32})/.exec(p.stderr())[1];

        // The same result by id, and in the history.
        const again = await run(['result', id]);
        assert.equal(again.code, 5, again.stderr);
        assert.equal(again.stdout, 'first\nsecond');
        const listed = await run(['history', '--json']);
        assert.equal(JSON.parse(listed.stdout).executions[0].execution_id, id);
      } finally {
        await proxy.close();
      }
    });

    test('reads the program from stdin (-) and its input from --stdin', async () => {
      const input = await script('input.txt', 'hello\n');
      const r = await run(['run', 'sh', '-', '--stdin', input], { input: 'tr a-z A-Z\nexit 4\n' });
      assert.equal(r.code, 4, r.stderr);
      assert.equal(r.stdout, 'HELLO');
      assert.equal(r.stderr, '');
    });

    test('a timeout exits 124, a failed compile with its exit code, --json prints repl_finished', async () => {
      const loop = await script('loop.sh', 'echo started\nwhile :; do :; done\n');
      const timedOut = await run(['run', 'sh', loop, '--limit', 'timeout_ms=1000']);
      assert.equal(timedOut.code, 124, timedOut.stderr);
      assert.equal(timedOut.stdout, 'started');
      assert.match(timedOut.stderr, /^registryctl: timed out after \d+ ms; killed$/m);

      const bad = await script('bad.sh', 'echo never\nif then fi\n');
      const compile = await run(['run', 'shc', bad]);
      assert.equal(compile.code, 2, compile.stderr);
      assert.equal(compile.stdout, '');
      assert.match(compile.stderr, /syntax error/);
      assert.match(compile.stderr, /^registryctl: compile step failed with exit code 2$/m);

      const json = await run(['run', 'sh', '-', '--json'], { input: 'echo out; echo err >&2; exit 3\n' });
      assert.equal(json.code, 3, json.stderr);
      const finished = JSON.parse(json.stdout);
      assert.equal(finished.exit_code, 3);
      assert.equal(finished.stdout, 'out\n');
      assert.equal(finished.stderr, 'err\n');
      assert.equal(finished.timed_out, false);
    });

    test('Ctrl-C cancels the execution and exits 130', async () => {
      const p = start(['run', 'sh', '-'], { input: 'echo started\nsleep 30\n' });
      assert.equal(await nextLine(p.lines, 20_000), 'started');
      const t0 = Date.now();
      p.child.kill('SIGINT');
      const { code } = await p.exited;
      assert.equal(code, 130, p.stderr());
      assert.match(p.stderr(), /^registryctl: cancelled$/m);
      assert.ok(Date.now() - t0 < 10_000);
    });

    test('a request registryd refuses exits 125 with its error, not a program status', async () => {
      const r = await run(['run', 'cobol', '-'], { input: 'DISPLAY "HI".\n' });
      assert.equal(r.code, 125);
      assert.match(r.stderr, /^registryctl: invalid_request: \S/);
      const missingFile = await run(['run', 'sh', join(dir, 'no-such-file.sh')]);
      assert.equal(missingFile.code, 125);
      assert.match(missingFile.stderr, /^registryctl: ENOENT: no such file or directory/);
    });
  });

  test('nodes shows the engine online', async () => {
    await until(async () => (await c.listNodes()).nodes[0]?.status === 'online', 10_000, 'the engine online');
    const r = await run(['nodes']);
    assert.equal(r.code, 0, r.stderr);
    const [head, row, ...more] = r.stdout.split('\n');
    assert.match(head, /^NODE\s+ENDPOINT\s+STATUS\s+RUNNING\s+CAPACITY\s+HEARTBEAT$/);
    const uri = podman.uri.replace(/[/.]/g, '\\$&');
    assert.match(row, new RegExp(`^node-1\\s+${uri}\\s+online\\s+\\d+\\s+4\\s+\\d+s ago$`));
    assert.deepEqual(more, []);
  });

  test('containers get: one container in full, with its times, exit code, limits and labels', async () => {
    const before = Date.now();
    const { container } = await c.containerCreate({
      image: testImage,
      name: 'cli-get',
      command: ['sh', '-c', 'sleep 1; exit 3'],
      labels: { team: 'core' },
      limits: { memory_bytes: 64 * 1024 * 1024, cpus: 0.5, pids: 32 },
      ttl_seconds: 60,
    });
    const id = container.container_id;
    const exited = await until(
      async () => {
        const { container: got } = await c.containerGet(id);
        return got.state === 'exited' ? got : null;
      },
      30_000,
      'the container to exit',
    );
    assert.equal(exited.exit_code, 3);
    assert.ok(exited.started_at_ms >= before - 1000 && exited.started_at_ms <= Date.now(), 'started_at_ms');
    assert.ok(exited.finished_at_ms - exited.started_at_ms >= 900, 'it ran about a second');
    assert.deepEqual(exited.command, ['sh', '-c', 'sleep 1; exit 3']);
    assert.deepEqual(exited.labels, { team: 'core' });
    assert.deepEqual(exited.limits, { memory_bytes: 67108864, cpus: 0.5, pids: 32 });
    assert.equal(exited.error, undefined);

    const json = await run(['containers', 'get', '--json', id]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout).container, exited);

    const human = await run(['containers', 'get', id]);
    assert.equal(human.code, 0, human.stderr);
    const lines = human.stdout.split('\n');
    assert.equal(lines[0], `container: ${id}`);
    assert.ok(lines.includes('name:      cli-get'), human.stdout);
    assert.ok(lines.includes("command:   sh -c 'sleep 1; exit 3'"), human.stdout);
    assert.ok(lines.includes('state:     exited (exit code 3)'), human.stdout);
    assert.ok(lines.some((l) => l.startsWith(`started:   ${new Date(exited.started_at_ms).toISOString()} (`)), human.stdout);
    assert.ok(lines.some((l) => l.startsWith(`finished:  ${new Date(exited.finished_at_ms).toISOString()} (`)), human.stdout);
    assert.ok(lines.includes('limits:    memory 64 MiB, cpus 0.5, pids 32'), human.stdout);
    assert.ok(lines.includes('labels:    team=core'), human.stdout);

    const missingOne = await run(['containers', 'get', 'nope']);
    assert.notEqual(missingOne.code, 0);
    assert.match(missingOne.stderr, /not_found.*no managed container 'nope'/);
    await c.containerRemove({ container_id: id });
  });

  test('containers create: from a preset with overrides, or from an image with a command', async () => {
    const fromPreset = await run(['containers', 'create', '--preset', 'sleeper', '--pids', '8', '--ttl', '60', '--json']);
    assert.equal(fromPreset.code, 0, fromPreset.stderr);
    const { container: made } = JSON.parse(fromPreset.stdout);
    const { container: presetOne } = await c.containerGet(made.container_id);
    assert.deepEqual(presetOne.command, ['sleep', '300']);
    assert.deepEqual(presetOne.limits, { pids: 8 });
    assert.equal(presetOne.image, testImage);
    assert.equal(presetOne.ttl_seconds, 60);

    const fromImage = await run(['containers', 'create', '--image', testImage, '--name', 'cli-made', '--label', 'team=core', '--', 'sh', '-c', 'exit 4']);
    assert.equal(fromImage.code, 0, fromImage.stderr);
    const m = /^created ([0-9a-f]{64}) \(cli-made\) on node-1, expires in (\d+s|5m)$/.exec(fromImage.stdout);
    assert.ok(m, fromImage.stdout);
    const exited = await until(
      async () => {
        const { container } = await c.containerGet(m[1]);
        return container.state === 'exited' ? container : null;
      },
      30_000,
      'the container to exit',
    );
    assert.equal(exited.exit_code, 4);
    assert.deepEqual(exited.command, ['sh', '-c', 'exit 4']);
    assert.deepEqual(exited.labels, { team: 'core' });

    const unknown = await run(['containers', 'create', '--preset', 'ubuntu']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /invalid_request: params\.preset: no preset 'ubuntu' \(configured: sleeper\)/);
    const neither = await run(['containers', 'create']);
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /--preset or --image is required/);

    await c.containerRemove({ container_id: made.container_id, force: true });
    await c.containerRemove({ container_id: m[1] });
  });

  test('containers create --queue waits for a free slot; the client cancels a queued create', async () => {
    // Fill the node (capacity 4) with what the other tests left running.
    const mine = [];
    for (;;) {
      try {
        mine.push((await c.containerCreate({ preset: 'sleeper', ttl_seconds: 120 })).container.container_id);
      } catch (err) {
        assert.equal(err.code, 'limit_exceeded', err.message);
        break;
      }
      assert.ok(mine.length <= 4, 'the node took more than its capacity');
    }
    assert.ok(mine.length > 0, 'the other tests left the node full');

    const p = start(['containers', 'create', '--preset', 'sleeper', '--queue', '--json']);
    await until(async () => /^queued as q\d+, position 1$/m.test(p.stderr()) || null, 20_000, 'the queued line');
    const positions = [];
    let queueId = null;
    const cancelled = c
      .containerCreate({ preset: 'sleeper', queue: true }, { onQueued: (q) => {
        positions.push(q.position);
        queueId = q.queue_id;
      } })
      .then(
        () => assert.fail('a cancelled queued create resolved'),
        (err) => err,
      );
    await until(async () => queueId, 20_000, 'the client\'s container_queued');
    assert.deepEqual(positions, [2]);

    await c.containerRemove({ container_id: mine.pop(), force: true });
    const lines = [];
    for await (const line of p.lines) lines.push(line);
    const { code } = await p.exited;
    assert.equal(code, 0, p.stderr());
    const { container: waited } = JSON.parse(lines.join('\n'));
    assert.equal(waited.state, 'running');
    await until(async () => (positions.at(-1) === 1 ? true : null), 20_000, 'position 1');

    assert.deepEqual(await c.containerCancelQueued(queueId), { queue_id: queueId });
    const err = await cancelled;
    assert.equal(err.code, 'unavailable');
    assert.equal(err.message, `queued container create ${queueId} was cancelled`);

    for (const id of [...mine, waited.container_id]) await c.containerRemove({ container_id: id, force: true });
  });

  test('containers: list, logs -f, extend, stop and rm a container made with the client', async () => {
    const { container } = await c.containerCreate({
      image: testImage,
      name: 'cli-job',
      command: ['sh', '-c', 'echo one; echo two >&2; sleep 1; echo three; sleep 60'],
      ttl_seconds: 60,
    });
    const id = container.container_id;

    const list = await run(['containers', 'list', '--state', 'running']);
    assert.equal(list.code, 0, list.stderr);
    const rows = list.stdout.split('\n');
    assert.match(rows[0], /^CONTAINER\s+NAME\s+IMAGE\s+ENGINE\s+STATE\s+EXPIRES$/);
    const image = testImage.replace(/[/.]/g, '\\$&');
    assert.match(rows[1], new RegExp(`^${id}\\s+cli-job\\s+${image}\\s+node-1\\s+running\\s+in \\d+s$`));
    assert.equal(rows.length, 2);

    // Followed logs stream until the container stops.
    const logs = start(['containers', 'logs', '-f', id]);
    assert.equal(await nextLine(logs.lines, 20_000), 'one');
    assert.equal(await nextLine(logs.lines, 20_000), 'three');
    assert.equal(logs.child.exitCode, null, 'still following');

    const extended = await run(['containers', 'extend', id, '--ttl', '600']);
    assert.equal(extended.code, 0, extended.stderr);
    assert.match(extended.stdout, new RegExp(`^${id}: expires in (10m|59\\ds)$`));
    const listed = (await c.containerList()).containers.find((x) => x.container_id === id);
    assert.ok(listed.expires_at_ms - Date.now() > 500_000, 'the lease runs 600 s from now');

    const stopped = await run(['containers', 'stop', '--grace', '0', id]);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal(stopped.stdout, `stopped ${id}`);
    const { code: logsCode } = await logs.exited;
    assert.equal(logsCode, 0, logs.stderr());
    assert.equal(logs.stderr(), 'two\n');
    assert.equal((await c.containerList()).containers.find((x) => x.container_id === id).state, 'exited');

    const removed = await run(['containers', 'rm', id]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, `removed ${id}`);
    const after = await run(['containers', '--json']);
    assert.deepEqual(JSON.parse(after.stdout).containers, []);
    assert.deepEqual(await podman.containers(`io.registry.instance=${owner}`), []);
  });
  test('containers create --follow prints the output until the container ends; "created" on stderr', async () => {
    const r = await run(['containers', 'create', '--image', testImage, '--ttl', '60', '--follow', '--', 'sh', '-c', 'echo a; sleep 1; echo b; echo c >&2']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'a\nb');
    const m = /^created ([0-9a-f]{64}) \(\w+\) on node-1, expires in \d+s\n/.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.equal(r.stderr.slice(m[0].length), 'c\n');
    await c.containerRemove({ container_id: m[1], force: true });
  });

  test('containers logs -f | head -1 exits 0 at its next line, without a stack trace', async () => {
    const { container } = await c.containerCreate({
      image: testImage,
      command: ['sh', '-c', 'i=0; while :; do echo "line $i"; i=$((i+1)); sleep 0.3; done'],
      ttl_seconds: 120,
    });
    const shell = spawn(
      'bash',
      ['-c', '"$0" "$1" containers logs -f "$2" | head -1; echo "registryctl exited ${PIPESTATUS[0]}" >&2', process.execPath, bin, container.container_id],
      { env: { ...process.env, REGISTRY_URL: daemon.url, REGISTRY_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(shell);
    let stdout = '';
    let stderr = '';
    shell.stdout.setEncoding('utf8').on('data', (t) => (stdout += t));
    shell.stderr.setEncoding('utf8').on('data', (t) => (stderr += t));
    const code = await new Promise((r) => shell.on('exit', r));
    children.delete(shell);
    assert.equal(code, 0);
    assert.equal(stdout, 'line 0\n');
    assert.equal(stderr, 'registryctl exited 0\n');
    await c.containerRemove({ container_id: container.container_id, force: true });
  });

  test('run | head -1 cancels the execution at its next line and exits 130, without a stack trace', async () => {
    const shell = spawn(
      'bash',
      ['-c', '"$0" "$1" run sh - <<< "$2" | head -1; echo "registryctl exited ${PIPESTATUS[0]}" >&2', process.execPath, bin,
        'i=0; while :; do echo "line $i"; i=$((i+1)); sleep 0.2; done'],
      { env: { ...process.env, REGISTRY_URL: daemon.url, REGISTRY_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(shell);
    let stdout = '';
    let stderr = '';
    shell.stdout.setEncoding('utf8').on('data', (t) => (stdout += t));
    shell.stderr.setEncoding('utf8').on('data', (t) => (stderr += t));
    const code = await new Promise((r) => shell.on('exit', r));
    children.delete(shell);
    assert.equal(code, 0);
    assert.equal(stdout, 'line 0\n');
    assert.equal(stderr, 'registryctl: cancelled\nregistryctl exited 130\n');
  });

  test('watch shows container events like the others', async () => {
    const p = start(['watch', '--event', 'container_state_changed']);
    // The snapshot line: subscribed.
    assert.match(await nextLine(p.lines, 20_000), /^\d+ registry_loaded - services=\d+$/);
    const { container } = await c.containerCreate({ image: testImage, name: 'cli-watched', command: ['sh', '-c', 'exit 5'], ttl_seconds: 60 });
    const id = container.container_id;
    const short = id.slice(0, 12);
    const image = testImage.replace(/[/.]/g, '\\$&');
    const lines = [];
    for (;;) {
      const line = await nextLine(p.lines, 30_000);
      if (!line.includes(short)) continue;
      lines.push(line);
      if (/ -> exited /.test(line)) break;
    }
    assert.match(lines.at(-1), new RegExp(`^\\d+ container_state_changed ${short} \\(cli-watched\\) running -> exited exit_code=5 image=${image} engine=node-1$`));
    await c.containerRemove({ container_id: id });
    for (;;) {
      const line = await nextLine(p.lines, 30_000);
      if (!line.includes(short)) continue;
      assert.match(line, new RegExp(`^\\d+ container_state_changed ${short} \\(cli-watched\\) exited -> removed exit_code=5 image=${image} engine=node-1 \\(removed\\)$`));
      break;
    }
    p.child.kill('SIGINT');
    assert.equal((await p.exited).code, 0);
  });

  test('languages: the configured languages with their limits', async () => {
    const r = await run(['languages']);
    assert.equal(r.code, 0, r.stderr);
    const [head, ...rows] = r.stdout.split('\n');
    assert.match(head, /^LANGUAGE\s+VERSION\s+IMAGE\s+COMPILED\s+TIMEOUT\s+MEMORY\s+OUTPUT$/);
    const image = testImage.replace(/[/.]/g, '\\$&');
    const limits = '20s \\(max 60s\\)\\s+128 MiB \\(max 512 MiB\\)\\s+64 KiB \\(max 1 MiB\\)';
    assert.equal(rows.length, 2, r.stdout);
    assert.match(rows[0], new RegExp(`^sh\\s+busybox\\s+${image}\\s+no\\s+${limits}$`));
    assert.match(rows[1], new RegExp(`^shc\\s+\\S+\\s+${image}\\s+yes\\s+${limits}$`));
    const json = JSON.parse((await run(['languages', '--json'])).stdout);
    assert.deepEqual(json.languages.map((l) => l.name), ['sh', 'shc']);
  });

  test("images pull: each node's failure as a line, the engine's error, exit 1", async () => {
    const r = await run(['images', 'pull', '127.0.0.1:1/registry-test/nope:latest']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0], /^node-1: failed: [a-z_]+: \S/);
    assert.doesNotMatch(r.stderr, /[\r\x1b]/, 'piped: plain lines');
    assert.match(lines.at(-1), /^registryctl: [a-z_]+: node-1: .*127\.0\.0\.1:1/);
    const json = await run(['images', 'pull', '127.0.0.1:1/registry-test/nope:latest', '--engine', 'node-1', '--json']);
    assert.equal(json.code, 1);
    const last = JSON.parse(json.stdout.split('\n').at(-1));
    assert.equal(last.engine, 'node-1');
    assert.equal(last.end, true);
    assert.ok(last.error.code);
    const unknown = await run(['images', 'pull', 'x:1', '--engine', 'node-9']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /not_found: .*node-9/);
  });
  // Last: it restarts registryd.
  test('logs -f when registryd goes away: the stream cannot be resumed, exit 69', async () => {
    const { container } = await c.containerCreate({
      image: testImage,
      command: ['sh', '-c', 'while :; do echo tick; sleep 0.3; done'],
      ttl_seconds: 120,
    });
    const p = start(['containers', 'logs', '-f', container.container_id]);
    assert.equal(await nextLine(p.lines, 20_000), 'tick');
    await daemon.restart();
    const { code } = await p.exited;
    assert.equal(code, 69, p.stderr());
    assert.match(p.stderr(), /^registryctl: connection_lost: /m);
    await until(async () => (await c.listNodes()).nodes[0]?.status === 'online', 15_000, 'the engine online again');
    await c.containerRemove({ container_id: container.container_id, force: true });
  });
});
