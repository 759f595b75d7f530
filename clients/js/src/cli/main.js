// registryctl: the command line on RegistryClient. main() parses the
// arguments, runs one command and returns the exit code: 0 ok, 1 the request
// failed (the server's error code and message are printed), 2 bad usage, 77
// not permitted (sysexits' NOPERM: a 401 at the upgrade, or `forbidden`); for
// `run` the program's own exit code, and 125 when it could not be run.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { RegistryClient } from '../client.js';
import { RegistryError } from '../errors.js';
import { commands } from './commands.js';
import { UsageError } from './usage_error.js';

const globalOptions = {
  url: { type: 'string' },
  json: { type: 'boolean', default: false },
  timeout: { type: 'string' },
  wait: { type: 'string' },
  token: { type: 'string' },
  'ca-file': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
};

export function usage() {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name} ${c.args ?? ''}\n      ${c.summary}`);
  return `usage: registryctl [--url URL] [--token TOKEN] [--ca-file PEM] [--json] [--timeout MS] [--wait MS] COMMAND [ARGS]

commands:
${lines.join('\n')}

  --url URL     registryd's WebSocket URL, ws:// or wss:// (default: $REGISTRY_URL, else ws://127.0.0.1:8080)
  --token T     bearer token (default: $REGISTRY_TOKEN)
  --ca-file PEM the CA that signed registryd's TLS certificate (a private CA; wss:// only)
  --json        machine-readable output: the response's data as JSON (watch: one event a line)
  --timeout MS  request timeout (default 10000)
  --wait MS     how long to wait for a connection (default 5000)
exit codes: 0 ok, 1 the request failed, 2 bad usage, 77 not permitted (HTTP 401 at the
  upgrade: no or a wrong token; forbidden: the token's role lacks the permission).`;
}

// The command name: the first argument that is neither an option nor the
// value of a global option that takes one.
function splitCommand(argv) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('-')) return [a, [...argv.slice(0, i), ...argv.slice(i + 1)]];
    const name = a.replace(/^--?/, '');
    if (globalOptions[name]?.type === 'string' && !a.includes('=')) i += 1;
  }
  return [null, argv];
}

function positiveInt(text, flag) {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${flag}: expected a non-negative integer, got '${text}'`);
  return n;
}

export async function main(argv, { env = process.env, stdout = process.stdout, stderr = process.stderr } = {}) {
  const write = (stream) => (text) => stream.write(`${text}\n`);
  const out = write(stdout);
  const err = write(stderr);
  let client = null;
  let command = null;
  try {
    const [name, rest] = splitCommand(argv);
    if (!name) {
      if (rest.includes('--help') || rest.includes('-h')) {
        out(usage());
        return 0;
      }
      throw new UsageError('no command given');
    }
    command = commands[name];
    if (!command) throw new UsageError(`unknown command '${name}'`);
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...globalOptions, ...command.options },
        allowPositionals: true,
        strict: true,
      });
    } catch (e) {
      throw new UsageError(`${name}: ${e.message}`);
    }
    const { values, positionals } = parsed;
    if (values.help) {
      out(`usage: registryctl ${name} ${command.args ?? ''}\n  ${command.summary}`);
      return 0;
    }
    const url = values.url ?? env.REGISTRY_URL ?? 'ws://127.0.0.1:8080';
    let ca;
    if (values['ca-file'] !== undefined) {
      try {
        ca = readFileSync(values['ca-file']);
      } catch (e) {
        throw new UsageError(`--ca-file: cannot read ${values['ca-file']}: ${e.message}`);
      }
    }
    client = new RegistryClient(url, {
      token: values.token || env.REGISTRY_TOKEN || undefined,
      ca,
      requestTimeoutMs: positiveInt(values.timeout, '--timeout') ?? 10_000,
      connectWaitMs: positiveInt(values.wait, '--wait') ?? 5_000,
    });
    client.on('error', (e) => err(`registryctl: ${e.message}`));
    const code = await command.run({ client, values, positionals, json: values.json, out, err, name, stdout });
    return code ?? 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`registryctl: ${e.message}\n\n${usage()}`);
      return 2;
    }
    const failed = command?.failureExitCode ?? 1;
    if (e instanceof RegistryError) {
      err(`registryctl: ${describe(e)}`);
      return notPermitted(e) ? exitNoPerm : failed;
    }
    // A system error (a file that cannot be read) says all in its message.
    err(`registryctl: ${e?.syscall ? e.message : (e?.stack ?? e)}`);
    return failed;
  } finally {
    await client?.close();
  }
}

// sysexits.h EX_NOPERM.
export const exitNoPerm = 77;

// Refused for who the caller is: a 401 at the upgrade (also when it shows as
// not_connected: it was the last connection error) or `forbidden`.
function notPermitted(e) {
  const why = e.code === 'not_connected' ? e.cause : e;
  return why?.code === 'unauthorized' || why?.code === 'forbidden';
}

function describe(e) {
  if (e.code === 'unauthorized') return e.message;
  if (e.code === 'forbidden') return `not permitted: ${e.message}`;
  if (e.code === 'unknown_action') {
    return (
      `this registryd does not support '${e.action}' yet (${e.code}: ${e.message}); ` +
      'the command needs a daemon with that capability'
    );
  }
  if (e.code === 'not_connected') return `cannot reach registryd: ${e.message}`;
  return `${e.code}: ${e.message}`;
}
