// registryctl's commands: each parses its arguments, calls the client and
// prints a table (or the data as JSON with --json).

import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';

import { RegistryError } from '../errors.js';
import { completion } from './completion.js';
import * as fmt from './format.js';
import { help, status, version } from './info.js';
import { outputClosed } from './output.js';
import { Progress, progressBar } from './progress.js';
import { PullDisplay } from './pull_display.js';
import { usageError } from './usage_error.js';

// ---- argument helpers -----------------------------------------------------

function need(positionals, count, what) {
  if (positionals.length < count) throw usageError(`missing ${what}`);
  if (positionals.length > count) throw usageError(`unexpected argument '${positionals[count]}'`);
  return positionals;
}

// ["k=v", ...] -> {k: v}
function pairs(list, flag) {
  const o = {};
  for (const item of list ?? []) {
    const i = item.indexOf('=');
    if (i <= 0) throw usageError(`${flag}: expected KEY=VALUE, got '${item}'`);
    o[item.slice(0, i)] = item.slice(i + 1);
  }
  return o;
}

// "http=http://127.0.0.1:8080" -> an endpoint of the protocol.
function endpoint(text) {
  const m = /^([^=]+)=([a-z0-9+.-]+):\/\/(.+):(\d+)$/.exec(text);
  if (!m) throw usageError(`--endpoint: expected NAME=PROTOCOL://ADDRESS:PORT, got '${text}'`);
  return { name: m[1], protocol: m[2], address: m[3], port: Number(m[4]) };
}

function int(text, flag) {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw usageError(`${flag}: expected an integer, got '${text}'`);
  return n;
}

// Resolves on SIGINT/SIGTERM, or when the output's reader went away (and
// returns a way to stop listening).
function untilSignal() {
  let done;
  const promise = new Promise((r) => {
    done = r;
  });
  const on = () => done();
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
  outputClosed.then(on);
  return {
    promise,
    dispose() {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

function print(ctx, data, human) {
  ctx.out(ctx.json ? JSON.stringify(data, null, 2) : human(data));
}

// ---- registry -------------------------------------------------------------

const services = {
  args: '[--name N] [--state S] [--version V] [--host H] [--meta K=V]... [--health passing|passing_or_warning]',
  summary: 'list service instances',
  options: {
    name: { type: 'string' },
    state: { type: 'string' },
    version: { type: 'string' },
    host: { type: 'string' },
    meta: { type: 'string', multiple: true },
    health: { type: 'string' },
  },
  async run(ctx) {
    need(ctx.positionals, 0, '');
    const { name, state, version, host, meta, health } = ctx.values;
    const filter = Object.fromEntries(
      Object.entries({ name, state, version, host, health }).filter(([, v]) => v !== undefined),
    );
    if (meta) filter.metadata = pairs(meta, '--meta');
    print(ctx, await ctx.client.listServices(filter), (d) => fmt.servicesTable(d.services));
  },
};

const get = {
  args: '<instance_id> | --name NAME [--health passing|passing_or_warning]',
  summary: 'show one instance, or every instance of a service name',
  options: { name: { type: 'string' }, health: { type: 'string' } },
  async run(ctx) {
    if (ctx.values.name !== undefined) {
      need(ctx.positionals, 0, '');
      const query = { name: ctx.values.name };
      if (ctx.values.health !== undefined) query.health = ctx.values.health;
      print(ctx, await ctx.client.getService(query), (d) => fmt.servicesTable(d.services));
      return;
    }
    const [id] = need(ctx.positionals, 1, 'instance id');
    print(ctx, await ctx.client.getService(id), (d) => fmt.serviceDetail(d.service));
  },
};

const endpoints = {
  args: '[--service S] [--endpoint E] [--protocol P] [--health passing|passing_or_warning]',
  summary: 'list endpoints',
  options: {
    service: { type: 'string' },
    endpoint: { type: 'string' },
    protocol: { type: 'string' },
    health: { type: 'string' },
  },
  async run(ctx) {
    need(ctx.positionals, 0, '');
    const filter = Object.fromEntries(Object.entries(ctx.values).filter(([k, v]) => k in this.options && v !== undefined));
    print(ctx, await ctx.client.listEndpoints(filter), (d) => fmt.endpointsTable(d.endpoints));
  },
};

const watch = {
  args: '[--service S]... [--event E]... [--from REV] [--no-snapshot] [--count N]',
  summary: 'print live events, one a line, until Ctrl-C (or N events)',
  options: {
    service: { type: 'string', multiple: true },
    event: { type: 'string', multiple: true },
    from: { type: 'string' },
    'no-snapshot': { type: 'boolean', default: false },
    count: { type: 'string' },
  },
  async run(ctx) {
    need(ctx.positionals, 0, '');
    const v = ctx.values;
    const params = {};
    if (v.service) params.services = v.service;
    if (v.event) params.events = v.event;
    if (v.from !== undefined) params.from_revision = int(v.from, '--from');
    if (v['no-snapshot']) params.snapshot = false;
    const limit = v.count === undefined ? Infinity : int(v.count, '--count');
    // The watch survives daemon restarts: the client reconnects and resumes.
    const sub = await ctx.client.subscribe(params);
    const signal = untilSignal();
    let seen = 0;
    let failure = null;
    const done = new Promise((r) => {
      if (limit <= 0) r();
      sub.on('*', (e) => {
        ctx.out(ctx.json ? JSON.stringify(e) : fmt.eventLine(e));
        seen += 1;
        if (seen >= limit) r();
      });
      sub.onEnd((err) => {
        failure = err; // a re-subscribe the daemon refused
        r();
      });
    });
    await Promise.race([done, signal.promise]);
    signal.dispose();
    if (failure) throw failure;
  },
};

const register = {
  args: '<name> [--id ID] [--version V] [--endpoint NAME=PROTO://ADDR:PORT]... [--meta K=V]... [--depends S]... [--ttl S] [--state S] [--keep]',
  summary: 'register an instance (--keep: keep its lease alive until Ctrl-C, then deregister)',
  options: {
    id: { type: 'string' },
    version: { type: 'string' },
    endpoint: { type: 'string', multiple: true },
    meta: { type: 'string', multiple: true },
    depends: { type: 'string', multiple: true },
    ttl: { type: 'string' },
    state: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
  async run(ctx) {
    const [name] = need(ctx.positionals, 1, 'service name');
    const v = ctx.values;
    const service = { name };
    if (v.id !== undefined) service.instance_id = v.id;
    if (v.version !== undefined) service.version = v.version;
    if (v.endpoint) service.endpoints = v.endpoint.map(endpoint);
    if (v.meta) service.metadata = pairs(v.meta, '--meta');
    if (v.depends) service.depends_on = v.depends;
    const ttl = v.ttl === undefined ? undefined : int(v.ttl, '--ttl');
    const { client } = ctx;

    if (!v.keep) {
      const data = await client.register(ttl === undefined ? { service } : { service, ttl_seconds: ttl });
      if (v.state) await client.setState(data.instance_id, v.state);
      print(ctx, data, (d) => `registered ${d.instance_id} (lease ${d.lease_id}, expires ${fmt.relativeTime(d.expires_at_ms)})`);
      return;
    }
    const handle = await client.registerService(service, ttl === undefined ? {} : { ttlSeconds: ttl });
    const signal = untilSignal();
    try {
      if (v.state) await handle.setState(v.state);
      const info = { instance_id: handle.instanceId, lease_id: handle.leaseId, ttl_seconds: handle.ttlSeconds };
      print(ctx, info, (d) => `registered ${d.instance_id} (lease ${d.lease_id}); keeping it alive, Ctrl-C deregisters it`);
      handle.on('reregistered', (d) => ctx.err(`registryctl: lease was lost; registered again under lease ${d.lease_id}`));
      handle.on('error', (e) => ctx.err(`registryctl: keepalive failed: ${e.code}: ${e.message}`));
      await signal.promise;
    } finally {
      signal.dispose();
    }
    await handle.close();
    if (!ctx.json) ctx.out(`deregistered ${handle.instanceId}`);
  },
};

const deregister = {
  args: '<instance_id>',
  summary: 'deregister an instance',
  async run(ctx) {
    const [id] = need(ctx.positionals, 1, 'instance id');
    print(ctx, await ctx.client.deregister(id), (d) => `deregistered ${d.instance_id} (revision ${d.revision})`);
  },
};

const setState = {
  args: '<instance_id> <state> [--reason R]',
  summary: 'change the state of an instance',
  options: { reason: { type: 'string' } },
  async run(ctx) {
    const [id, state] = need(ctx.positionals, 2, 'instance id and state');
    const data = await ctx.client.setState(id, state, ctx.values.reason);
    print(ctx, data, (d) => (d.changed ? `${id}: ${d.service.state}` : `${id}: already ${d.service.state}`));
  },
};

const reportHealth = {
  args: '<instance_id> <lease_id> <passing|warning|critical> [--output TEXT] [--check NAME]',
  summary: "report an instance's own health (what a ttl check waits for)",
  options: { output: { type: 'string' }, check: { type: 'string' } },
  async run(ctx) {
    const [id, lease, status] = need(ctx.positionals, 3, 'instance id, lease id and status');
    const params = { instance_id: id, lease_id: int(lease, 'lease id'), status };
    if (ctx.values.output !== undefined) params.output = ctx.values.output;
    if (ctx.values.check !== undefined) params.check = ctx.values.check;
    const data = await ctx.client.reportHealth(params);
    print(ctx, data, (d) => `${id}: ${d.health ? d.health.status : 'no health'} (${d.state})`);
  },
};

const keepalive = {
  args: '<lease_id>',
  summary: 'renew a lease once',
  async run(ctx) {
    const [lease] = need(ctx.positionals, 1, 'lease id');
    const data = await ctx.client.keepalive(int(lease, 'lease id'));
    print(ctx, data, (d) => `lease ${d.lease_id} (${d.instance_id}) expires ${fmt.relativeTime(d.expires_at_ms)}`);
  },
};

// ---- capabilities being built (containers, REPL, deployment) --------------
//
// A daemon without them answers unknown_action, which main() reports as such.
// Params follow the work in progress on those capabilities; check them
// against docs/protocol.md when they land.

const nodes = {
  args: '',
  summary: 'list the nodes (container engines) of the registry',
  async run(ctx) {
    need(ctx.positionals, 0, '');
    print(ctx, await ctx.client.listNodes(), (d) =>
      fmt.table(
        ['NODE', 'ENDPOINT', 'STATUS', 'RUNNING', 'CAPACITY', 'HEARTBEAT'],
        (d.nodes ?? []).map((n) => [
          n.name,
          n.endpoint,
          n.status,
          n.running,
          n.capacity,
          n.last_heartbeat_ms ? fmt.relativeTime(n.last_heartbeat_ms) : '-',
        ]),
      ),
    );
  },
};

// Writes container output chunks ({stream, data}) to stdout/stderr.
function writeOutput(ctx, chunk) {
  if (chunk.data !== undefined) (chunk.stream === 'stderr' ? process.stderr : ctx.stdout).write(chunk.data);
}

const containers = {
  summary: 'manage containers',
  // Each one's usage names the options it takes (help and completion use them).
  subcommands: {
    list: { args: '[--state S] [--engine E]', summary: 'list the managed containers (the default)' },
    create: {
      args: '(--preset NAME | --image IMG) [--name N] [--ttl S] [--engine E] [--label K=V]... [--memory BYTES] [--cpus N] [--pids N] [--queue] [-f|--follow] [-- CMD...]',
      summary:
        "create and start a container under a lease (--ttl seconds); a preset's settings, the flags override them; " +
        '--queue: wait for a free slot when every engine is full; --follow: then print its output until it ends, as logs -f',
    },
    get: { args: 'ID', summary: 'one container in full: command, times, exit code, error, lease, limits, labels' },
    logs: { args: '[-f|--follow] [--tail N] ID', summary: "a container's output; -f follows it until the container ends" },
    stop: { args: '[--grace S] ID', summary: 'stop a container (SIGTERM, SIGKILL after the grace seconds)' },
    rm: { args: '[--force] ID', summary: 'remove a container (--force: a running one too)' },
    extend: { args: 'ID --ttl S', summary: "renew a container's lease: it expires S seconds from now" },
  },
  defaultSubcommand: 'list',
  options: {
    state: { type: 'string' },
    engine: { type: 'string' },
    follow: { type: 'boolean', short: 'f', default: false },
    tail: { type: 'string' },
    grace: { type: 'string' },
    force: { type: 'boolean', default: false },
    ttl: { type: 'string' },
    preset: { type: 'string' },
    image: { type: 'string' },
    name: { type: 'string' },
    label: { type: 'string', multiple: true },
    memory: { type: 'string' },
    cpus: { type: 'string' },
    pids: { type: 'string' },
    queue: { type: 'boolean', default: false },
  },
  async run(ctx) {
    const [sub = 'list', ...args] = ctx.positionals;
    const { client, values } = ctx;
    switch (sub) {
      case 'list': {
        need(args, 0, '');
        const filter = {};
        if (values.state !== undefined) filter.state = values.state;
        if (values.engine !== undefined) filter.engine = values.engine;
        print(ctx, await client.containerList(filter), (d) =>
          fmt.table(
            ['CONTAINER', 'NAME', 'IMAGE', 'ENGINE', 'STATE', 'EXPIRES'],
            (d.containers ?? []).map((x) => [
              x.container_id,
              x.name || '-',
              x.image,
              x.engine,
              x.state,
              x.expires_at_ms ? fmt.relativeTime(x.expires_at_ms) : '-',
            ]),
          ),
        );
        return;
      }
      case 'create': {
        // What the preset gives, the flags override (docs/protocol.md, container_create).
        if (values.preset === undefined && values.image === undefined) {
          throw usageError('containers create: --preset or --image is required');
        }
        const params = {};
        if (values.preset !== undefined) params.preset = values.preset;
        if (values.image !== undefined) params.image = values.image;
        if (values.name !== undefined) params.name = values.name;
        if (values.ttl !== undefined) params.ttl_seconds = int(values.ttl, '--ttl');
        if (values.engine !== undefined) params.engine = values.engine;
        if (values.label) params.labels = pairs(values.label, '--label');
        const limits = {};
        if (values.memory !== undefined) limits.memory_bytes = int(values.memory, '--memory');
        if (values.cpus !== undefined) {
          const cpus = Number(values.cpus);
          if (!(cpus > 0)) throw usageError(`--cpus: expected a positive number, got '${values.cpus}'`);
          limits.cpus = cpus;
        }
        if (values.pids !== undefined) limits.pids = int(values.pids, '--pids');
        if (Object.keys(limits).length) params.limits = limits;
        if (args.length) params.command = args;
        // --queue: wait for a free slot when every engine is full, saying where it waits.
        if (values.queue) params.queue = true;
        const onQueued = (q) => ctx.err(`queued as ${q.queue_id}, position ${q.position}`);
        const created = await client.containerCreate(params, { onQueued });
        const line = ({ container: c }) =>
          `created ${c.container_id}${c.name ? ` (${c.name})` : ''} on ${c.engine}, expires ${fmt.relativeTime(c.expires_at_ms)}`;
        if (!values.follow) {
          print(ctx, created, line);
          return;
        }
        // stdout is the container's output: the "created" line goes to stderr.
        ctx.err(line(created));
        await followLogs(ctx, { container_id: created.container.container_id });
        return;
      }
      case 'get': {
        const [id] = need(args, 1, 'container id');
        print(ctx, await client.containerGet(id), (d) => fmt.containerDetail(d.container));
        return;
      }
      case 'logs': {
        const [id] = need(args, 1, 'container id');
        const params = { container_id: id };
        if (values.tail !== undefined) params.tail = int(values.tail, '--tail');
        if (!values.follow) {
          const data = await client.containerLogs(params);
          if (ctx.json) ctx.out(JSON.stringify(data));
          else for (const chunk of data.output ?? []) writeOutput(ctx, chunk);
          return;
        }
        await followLogs(ctx, params);
        return;
      }
      case 'stop': {
        const [id] = need(args, 1, 'container id');
        const params = { container_id: id };
        if (values.grace !== undefined) params.grace_seconds = int(values.grace, '--grace');
        print(ctx, await client.containerStop(params), () => `stopped ${id}`);
        return;
      }
      case 'rm': {
        const [id] = need(args, 1, 'container id');
        const params = values.force ? { container_id: id, force: true } : { container_id: id };
        print(ctx, await client.containerRemove(params), () => `removed ${id}`);
        return;
      }
      case 'extend': {
        const [id] = need(args, 1, 'container id');
        if (values.ttl === undefined) throw usageError('containers extend: --ttl is required');
        const data = await client.containerExtend({ container_id: id, ttl_seconds: int(values.ttl, '--ttl') });
        print(ctx, data, (d) => `${id}: expires ${fmt.relativeTime(d.expires_at_ms)}`);
        return;
      }
      default:
        throw usageError(`containers: unknown subcommand '${sub}'`);
    }
  },
};

// A subcommand-only command's subcommand ("images pull"): the first
// positional, which must be one of `command.subcommands`.
function subcommand(name, command, positionals) {
  const [sub, ...rest] = positionals;
  if (sub === undefined) throw usageError(`${name}: missing subcommand (${Object.keys(command.subcommands).join(', ')})`);
  if (!Object.hasOwn(command.subcommands, sub)) throw usageError(`${name}: unknown subcommand '${sub}'`);
  return [sub, rest];
}

const images = {
  summary: 'container images on the nodes',
  subcommands: {
    pull: {
      args: 'REFERENCE [--engine E]',
      summary:
        'pull an image on every online node, one after the other (or on --engine E), showing its progress: ' +
        'a bar redrawn in place on a terminal, a line per layer and status when piped (--json: the events)',
    },
  },
  options: { engine: { type: 'string' } },
  async run(ctx) {
    const [, args] = subcommand(ctx.name, this, ctx.positionals);
    const [reference] = need(args, 1, 'image reference');
    const { client, values } = ctx;
    const params = { reference };
    if (values.engine !== undefined) params.engine = values.engine;
    // The daemon pulls on the nodes online when it gets the request and ends
    // each one's events with an "end"; it does not say how many there are.
    const nodes =
      values.engine !== undefined ? 1 : ((await client.listNodes()).nodes ?? []).filter((n) => n.status === 'online').length;
    if (nodes === 0) throw new RegistryError('unavailable', 'no node is online to pull on');
    const { subscription } = await client.imagePull(params);
    const display = new PullDisplay(new Progress(ctx.stderr));
    const pulled = [];
    const failed = [];
    const signal = untilSignal();
    let failure = null;
    const ended = new Promise((r) => {
      subscription.on('image_pull_progress', (e) => {
        const d = e.data;
        if (ctx.json) ctx.out(JSON.stringify(d));
        if (!d.end) {
          if (!ctx.json) display.show(d);
          return;
        }
        if (!ctx.json) display.end(d);
        (d.error ? failed : pulled).push(d);
        if (pulled.length + failed.length >= nodes) r();
      });
      subscription.onEnd((err) => {
        failure = err;
        r();
      });
    });
    await Promise.race([ended, signal.promise]);
    signal.dispose();
    if (failure) throw failure;
    if (!ctx.json && pulled.length) ctx.out(`pulled ${reference} on ${pulled.map((d) => d.engine).join(', ')}`);
    if (failed.length) {
      const [first] = failed;
      throw new RegistryError(first.error.code, `${first.engine}: ${first.error.message}`);
    }
  },
};

// "10s", "1.5s", "250ms" (limits are in milliseconds).
function msText(ms) {
  if (ms === undefined) return '-';
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`;
}

// "default (max maximum)" of one limit of a language.
function limitText(l, key, text) {
  const d = l.defaults?.[key];
  const m = l.maximum?.[key];
  if (d === undefined && m === undefined) return '-';
  return m === undefined || m === d ? text(d) : `${text(d)} (max ${text(m)})`;
}

const languages = {
  args: '',
  summary:
    "the languages 'run' takes, each version (of several, the default marked *); " +
    'with their default limits and the most an execution may ask for (repl_languages)',
  async run(ctx) {
    need(ctx.positionals, 0, '');
    print(ctx, await ctx.client.replLanguages(), (d) => {
      const versions = new Map();
      for (const l of d.languages ?? []) versions.set(l.name, (versions.get(l.name) ?? 0) + 1);
      return fmt.table(
        ['LANGUAGE', 'VERSION', 'IMAGE', 'COMPILED', 'TIMEOUT', 'MEMORY', 'OUTPUT'],
        (d.languages ?? []).map((l) => [
          l.name,
          `${l.version || '-'}${l.default && versions.get(l.name) > 1 ? ' *' : ''}`,
          l.image,
          l.compiled ? 'yes' : 'no',
          limitText(l, 'timeout_ms', msText),
          limitText(l, 'memory_bytes', fmt.bytesText),
          limitText(l, 'output_bytes', fmt.bytesText),
        ]),
      );
    });
  },
};

const uploads = {
  summary: "package uploads ('deploy' sends the file in chunks before it deploys)",
  subcommands: {
    status: {
      args: 'UPLOAD_ID',
      summary: 'how far an upload got (package_upload_status): bytes received of its size, complete or not, when it expires',
    },
  },
  async run(ctx) {
    const [, args] = subcommand(ctx.name, this, ctx.positionals);
    const [id] = need(args, 1, 'upload id');
    print(ctx, await ctx.client.request('package_upload_status', { upload_id: id }), (d) =>
      `${d.upload_id}: received ${d.received} of ${d.size} bytes` +
      (d.size ? ` (${Math.floor((100 * d.received) / d.size)}%)` : '') +
      `, ${d.complete ? 'complete' : 'incomplete'}, expires ${fmt.relativeTime(d.expires_at_ms)}`,
    );
  },
};

// Prints a container's output until it ends (or Ctrl-C, or the output's
// reader is gone). Followed logs come as container_log events of a
// subscription the server opens; the last one has "end": true.
async function followLogs(ctx, params) {
  const { subscription } = await ctx.client.requestStream('container_logs', { ...params, follow: true });
  const signal = untilSignal();
  let failure = null;
  const ended = new Promise((r) => {
    subscription.on('container_log', (e) => {
      if (ctx.json) ctx.out(JSON.stringify(e.data));
      else writeOutput(ctx, e.data);
      if (e.data.end) r();
    });
    subscription.onEnd((err) => {
      failure = err;
      r();
    });
  });
  await Promise.race([ended, signal.promise]);
  signal.dispose();
  if (failure) throw failure;
}

// `run`'s exit status when the program has none of its own (docs in README).
const runExitCodes = Object.freeze({
  timedOut: 124, // as timeout(1)
  failed: 125, // registryctl or registryd could not run it, as `docker run`
  cancelled: 130, // 128 + SIGINT: Ctrl-C (or a repl_cancel) stopped it
});

// --limit timeout_ms=1500 -> {timeout_ms: 1500}; network takes true/false.
function limits(list) {
  const o = {};
  for (const [key, value] of Object.entries(pairs(list, '--limit'))) {
    if (key === 'network') {
      if (value !== 'true' && value !== 'false') throw usageError(`--limit network: expected true or false, got '${value}'`);
      o.network = value === 'true';
    } else {
      o[key] = int(value, `--limit ${key}`);
    }
  }
  return o;
}

// The exit status of `registryctl run` for a repl_finished.
function runExitCode(f) {
  if (f.error) return runExitCodes.failed;
  if (f.compile && f.compile.exit_code !== 0) return f.compile.exit_code;
  if (Number.isInteger(f.exit_code)) return f.exit_code;
  if (f.timed_out) return runExitCodes.timedOut;
  if (f.cancelled) return runExitCodes.cancelled;
  if (Number.isInteger(f.signal)) return 128 + f.signal; // the output cap: SIGKILL, 137
  return runExitCodes.failed;
}

// What the program's own output does not say about its end, for stderr.
function runNotes(f) {
  const notes = [];
  if (f.compile && f.compile.exit_code !== 0) notes.push(`compile step failed with exit code ${f.compile.exit_code}`);
  if (f.timed_out) notes.push(`timed out after ${f.duration_ms} ms; killed`);
  if (f.truncated) notes.push('output cap reached; killed');
  if (f.cancelled) notes.push('cancelled');
  if (f.error) notes.push(`${f.error.code}: ${f.error.message}`);
  return notes.map((n) => `registryctl: ${n}`);
}

const run = {
  args: '<language> <file|-> [ARGS...] [--version V] [--stdin FILE|-] [--limit KEY=VALUE]... [--key IDEMPOTENCY_KEY]',
  summary:
    "run code in a container, streaming its stdout and stderr; exits with the program's exit code " +
    '(124 timeout, 130 cancelled, 137 output cap, 125 could not run; a failed compile: its exit code)',
  options: {
    version: { type: 'string' },
    stdin: { type: 'string' },
    limit: { type: 'string', multiple: true },
    key: { type: 'string' },
  },
  // A failure of its own must not look like the program's exit status.
  failureExitCode: runExitCodes.failed,
  async run(ctx) {
    if (ctx.positionals.length < 2) throw usageError('missing language and file');
    const [language, file, ...args] = ctx.positionals;
    const { values } = ctx;
    if (file === '-' && values.stdin === '-') throw usageError('run: the program and --stdin cannot both be read from stdin');
    const params = { language, code: await readSource(file) };
    if (values.version !== undefined) params.version = values.version;
    if (values.stdin !== undefined) params.stdin = await readSource(values.stdin);
    if (args.length) params.args = args;
    if (values.limit) params.limits = limits(values.limit);
    if (values.key !== undefined) params.idempotency_key = values.key;

    const execution = await ctx.client.execute(params, {
      onQueued: (position) => ctx.err(`registryctl: queued at position ${position}`),
    });
    // Ctrl-C cancels the execution, whose end is then reported as usual.
    const signal = untilSignal();
    signal.promise.then(() => execution.cancel().catch(() => {}));
    let finished;
    const written = { stdout: 0, stderr: 0 }; // characters of each stream written so far
    try {
      try {
        if (!ctx.json) {
          for await (const chunk of execution.output) {
            writeOutput(ctx, chunk);
            written[chunk.stream] += chunk.data.length;
          }
        }
        finished = await execution.finished;
      } catch (e) {
        // The execution runs on: once the client has reconnected, its kept
        // result (the whole capped output) completes what was written.
        if (e?.code !== 'connection_lost') throw e;
        ctx.err(`registryctl: connection lost; waiting for the result of ${execution.id}`);
        finished = await awaitResult(ctx.client, execution.id);
        if (!ctx.json) {
          ctx.stdout.write(finished.stdout.slice(written.stdout));
          process.stderr.write(finished.stderr.slice(written.stderr));
        }
      }
    } finally {
      signal.dispose();
    }
    if (ctx.json) {
      ctx.out(JSON.stringify(finished));
    } else {
      if (finished.compile && finished.compile.exit_code !== 0) {
        ctx.stdout.write(finished.compile.stdout);
        process.stderr.write(finished.compile.stderr);
      }
      for (const note of runNotes(finished)) ctx.err(note);
    }
    return runExitCode(finished);
  },
};

// How long `run` keeps trying to reach registryd again after its connection
// dropped, and how often it asks for a result that is not there yet.
const resultRetryMs = 300_000;
const resultPollMs = 500;

// repl_result of a finished execution: asked until it has finished, across
// reconnects (a request waits for the client's reconnect, up to --wait).
async function awaitResult(client, id) {
  let unreachableSince = null;
  for (;;) {
    try {
      const r = await client.replResult(id);
      unreachableSince = null;
      if (r.state === 'finished') return r;
    } catch (e) {
      if (!['not_connected', 'connection_lost', 'timeout'].includes(e?.code)) throw e;
      unreachableSince ??= Date.now();
      if (Date.now() - unreachableSince > resultRetryMs) throw e;
    }
    await new Promise((wake) => setTimeout(wake, resultPollMs));
  }
}

// A kept result, as `run` shows a finished execution: its output, then notes.
const result = {
  args: '<execution_id>',
  summary:
    "a finished execution's kept result (its output, then what ended it); exits with run's exit code; " +
    'one still running: its state, exit 0',
  failureExitCode: runExitCodes.failed,
  async run(ctx) {
    const [id] = need(ctx.positionals, 1, 'execution id');
    const r = await ctx.client.replResult(id);
    if (ctx.json) {
      ctx.out(JSON.stringify(r, null, 2));
    } else if (r.state !== 'finished') {
      ctx.out(`${id}: ${r.state}`);
    } else {
      if (r.compile && r.compile.exit_code !== 0) {
        ctx.stdout.write(r.compile.stdout);
        process.stderr.write(r.compile.stderr);
      }
      ctx.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      for (const note of runNotes(r)) ctx.err(note);
    }
    return r.state === 'finished' ? runExitCode(r) : 0;
  },
};

// "1.5 MiB" for a memory figure, "-" when there is none.
function mebibytes(bytes) {
  return bytes === undefined ? '-' : `${(bytes / 1048576).toFixed(1)} MiB`;
}

const history = {
  args: '[--limit N] [--owner IDENTITY]',
  summary: "the caller's recent executions, newest first (admins: everyone's, or --owner's)",
  options: { limit: { type: 'string' }, owner: { type: 'string' } },
  async run(ctx) {
    need(ctx.positionals, 0, '');
    const params = {};
    if (ctx.values.limit !== undefined) params.limit = int(ctx.values.limit, '--limit');
    if (ctx.values.owner !== undefined) params.owner = ctx.values.owner;
    print(ctx, await ctx.client.replHistory(params), (d) =>
      fmt.table(
        ['EXECUTION', 'LANGUAGE', 'OWNER', 'EXIT', 'DURATION', 'CPU', 'MEMORY', 'FINISHED'],
        d.executions.map((e) => [
          e.execution_id,
          e.language,
          e.owner,
          runExitCode(e),
          `${e.duration_ms} ms`,
          e.usage?.cpu_ms === undefined ? '-' : `${e.usage.cpu_ms} ms`,
          mebibytes(e.usage?.memory_peak_bytes),
          fmt.relativeTime(e.finished_at_ms),
        ]),
      ),
    );
  },
};

// A deployment_progress event for Progress: "uploading: received 1 of 2
// bytes" after a bar when it counts bytes of a total.
function deployProgress(d) {
  const fraction = d.bytes_total ? Math.min(1, (d.bytes ?? 0) / d.bytes_total) : null;
  const bytes = fraction === null && d.bytes !== undefined ? ` (${d.bytes} bytes)` : '';
  return { fraction, text: `${d.stage}${bytes}${d.message ? `: ${d.message}` : ''}` };
}

// "static-site-1.2.0.tar.gz" -> {name: 'static-site', version: '1.2.0'}
// (registry-pack's {name}-{version}.tar.gz): the version starts after the
// last '-' that a digit follows. {} when the file name is not of that form.
export function packageIdentity(file) {
  const stem = /^(.+)\.(?:tar\.gz|tgz)$/.exec(basename(file))?.[1] ?? '';
  for (let i = stem.length - 2; i > 0; i--) {
    if (stem[i] !== '-' || !/[0-9]/.test(stem[i + 1])) continue;
    const name = stem.slice(0, i);
    const version = stem.slice(i + 1);
    if (!/^[A-Za-z0-9._-]+$/.test(name) || !/^[A-Za-z0-9._+-]+$/.test(version)) break;
    return { name, version };
  }
  return {};
}

const deploy = {
  args: '<package.tar.gz> [--host H] [--on-server] [--name N] [--version V]',
  summary:
    'upload a package (in chunks, with its sha256) and deploy it, showing its progress; ' +
    "--on-server: the path is on the daemon's host instead (inside its deploy.package_dirs); " +
    'the daemon checks that the manifest has the name and version the file name ({name}-{version}.tar.gz) ' +
    'or --name / --version state',
  options: {
    host: { type: 'string' },
    'on-server': { type: 'boolean' },
    name: { type: 'string' },
    version: { type: 'string' },
  },
  async run(ctx) {
    const [file] = need(ctx.positionals, 1, 'package file');
    // deployment_progress events are about the request that caused them
    // (each upload chunk, then the deploy) and come before its response. The
    // upload is a bar redrawn on a terminal (piped: a line per 5 %), each
    // later stage a line.
    const progress = new Progress(ctx.stderr);
    const onEvent = (e) => {
      if (e.event !== 'deployment_progress') return;
      if (ctx.json) return ctx.out(JSON.stringify(e.data));
      const shown = deployProgress(e.data);
      if (e.data.stage === 'uploading' && e.data.bytes_total) {
        progress.update({ ...shown, key: Math.floor((20 * e.data.bytes) / e.data.bytes_total) });
        return;
      }
      progress.end(); // the upload's bar stays on the screen
      progress.line(shown.fraction === null ? shown.text : `${progressBar(shown.fraction)} ${shown.text}`);
    };
    const target = ctx.values.host ?? 'local';
    const params = ctx.values['on-server'] ? { path: resolve(file), target } : { file: resolve(file), target };
    const stated = packageIdentity(file);
    const name = ctx.values.name ?? stated.name;
    const version = ctx.values.version ?? stated.version;
    if (name !== undefined) params.name = name;
    if (version !== undefined) params.version = version;
    const data = await ctx.client.deployPackage(params, { timeoutMs: 600_000, onEvent }).finally(() => progress.end());
    print(ctx, data, (d) => `deployed ${d.name ?? ''} ${d.version ?? ''} as ${d.instance_id ?? '?'}`.replace(/ +/g, ' '));
  },
};

const undeploy = {
  args: '<instance_id> [--force]',
  summary:
    'stop, deregister and remove a deployed service; if its stop.sh fails nothing is removed, ' +
    'unless --force: then its processes are killed first',
  options: { force: { type: 'boolean' } },
  async run(ctx) {
    const [id] = need(ctx.positionals, 1, 'instance id');
    const params = ctx.values.force ? { instance_id: id, force: true } : { instance_id: id };
    print(ctx, await ctx.client.undeploy(params, { timeoutMs: 120_000 }), () => `undeployed ${id}`);
  },
};

const action = {
  args: 'start|stop|restart <instance_id>',
  summary: 'start, stop or restart a deployed service',
  async run(ctx) {
    const [verb, id] = need(ctx.positionals, 2, 'action and instance id');
    if (!['start', 'stop', 'restart'].includes(verb)) throw usageError(`action: expected start, stop or restart, got '${verb}'`);
    const data = await ctx.client.serviceAction({ instance_id: id, action: verb }, { timeoutMs: 120_000 });
    print(ctx, data, () => `${verb}: ${id}`);
  },
};

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

// A file's text, or stdin's for '-'.
function readSource(file) {
  return file === '-' ? readStdin() : readFile(file, 'utf8');
}

export const commands = {
  services,
  get,
  endpoints,
  watch,
  register,
  deregister,
  'set-state': setState,
  'report-health': reportHealth,
  keepalive,
  nodes,
  containers,
  images,
  languages,
  run,
  result,
  history,
  deploy,
  undeploy,
  action,
  uploads,
  status,
  version,
  help,
  completion,
};
