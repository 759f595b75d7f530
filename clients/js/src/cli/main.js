// registryctl: the command line on RegistryClient. main() parses the
// arguments, runs one command and returns the exit code: 0 ok, 1 the request
// failed (the server's error code and message are printed), 2 bad usage; for
// `run` the program's own exit code, and 125 when it could not be run.

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
  help: { type: 'boolean', short: 'h', default: false },
};

export function usage() {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name} ${c.args ?? ''}\n      ${c.summary}`);
  return `usage: registryctl [--url URL] [--json] [--timeout MS] [--wait MS] COMMAND [ARGS]

commands:
${lines.join('\n')}

  --url URL     registryd's WebSocket URL (default: $REGISTRY_URL, else ws://127.0.0.1:8080)
  --json        machine-readable output: the response's data as JSON (watch: one event a line)
  --timeout MS  request timeout (default 10000)
  --wait MS     how long to wait for a connection (default 5000)
  REGISTRY_TOKEN in the environment is sent as a bearer token.`;
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
    client = new RegistryClient(url, {
      token: env.REGISTRY_TOKEN || undefined,
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
      return failed;
    }
    // A system error (a file that cannot be read) says all in its message.
    err(`registryctl: ${e?.syscall ? e.message : (e?.stack ?? e)}`);
    return failed;
  } finally {
    await client?.close();
  }
}

function describe(e) {
  if (e.code === 'unknown_action') {
    return (
      `this registryd does not support '${e.action}' yet (${e.code}: ${e.message}); ` +
      'the command needs a daemon with that capability'
    );
  }
  if (e.code === 'not_connected') return `cannot reach registryd: ${e.message}`;
  return `${e.code}: ${e.message}`;
}
