// registryctl: the command line on RegistryClient. main() parses the
// arguments, runs one command and returns the exit code (exit_codes.js: 0
// ok, 1 refused, 2 bad usage, 69 registryd unreachable, 77 not permitted;
// `run` the program's own). A usage error prints the usage of the command
// (or subcommand) it is about; `help` and `--help` print it on stdout.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { RegistryClient } from '../client.js';
import { RegistryError } from '../errors.js';
import { commands } from './commands.js';
import { describe, exitCodeOf, exitCodes } from './exit_codes.js';
import { guardOutput, lineWriter } from './output.js';
import { closestCommand, commandUsage, globalOptions, overview, subcommandOf } from './usage.js';
import { UsageError } from './usage_error.js';

// The command name: the first argument that is neither an option nor the
// value of a global option that takes one.
function splitCommand(argv) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') break;
    if (!a.startsWith('-')) return [a, [...argv.slice(0, i), ...argv.slice(i + 1)]];
    const name = a.replace(/^--?/, '');
    if (globalOptions[name]?.type === 'string' && !a.includes('=')) i += 1;
  }
  return [null, argv];
}

// The URLs of --url (repeated, each comma-separated) or of $REGISTRY_URL.
function urlList(given, flag) {
  const urls = given.flatMap((u) => u.split(',')).map((u) => u.trim()).filter((u) => u !== '');
  if (!urls.length) throw new UsageError(`${flag}: no URL given`);
  return urls;
}

function positiveInt(text, flag) {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${flag}: expected a non-negative integer, got '${text}'`);
  return n;
}

// The subcommand a command line that did not parse is about: the first word
// that names one.
function subcommandIn(command, args) {
  if (!command.subcommands) return null;
  return args.find((a) => Object.hasOwn(command.subcommands, a)) ?? null;
}

export async function main(argv, { env = process.env, stdout = process.stdout, stderr = process.stderr } = {}) {
  guardOutput([stdout, stderr]);
  const out = lineWriter(stdout);
  const err = lineWriter(stderr);
  let client = null;
  let name = null;
  let command = null;
  let sub = null;
  try {
    let rest;
    [name, rest] = splitCommand(argv);
    if (!name) {
      if (rest.includes('--help') || rest.includes('-h')) {
        out(overview());
        return exitCodes.ok;
      }
      throw new UsageError('no command given');
    }
    command = Object.hasOwn(commands, name) ? commands[name] : null;
    if (!command) {
      const meant = closestCommand(name);
      throw new UsageError(`unknown command '${name}'${meant ? ` (did you mean '${meant}'?)` : ''}`);
    }
    sub = subcommandIn(command, rest);
    let parsed;
    try {
      parsed = parseArgs({
        args: rest,
        options: { ...globalOptions, ...command.options },
        allowPositionals: true,
        strict: true,
      });
    } catch (e) {
      throw new UsageError(`${name}${sub ? ` ${sub}` : ''}: ${e.message}`);
    }
    const { values, positionals } = parsed;
    // Only a subcommand named is shown: `containers --help` is about them all.
    sub = positionals.length ? subcommandOf(command, positionals) : null;
    if (values.help) {
      out(commandUsage(name, sub));
      return exitCodes.ok;
    }
    const urls = values.url
      ? urlList(values.url, '--url')
      : env.REGISTRY_URL
        ? urlList([env.REGISTRY_URL], 'REGISTRY_URL')
        : ['ws://127.0.0.1:8080'];
    let ca;
    if (values['ca-file'] !== undefined) {
      try {
        ca = readFileSync(values['ca-file']);
      } catch (e) {
        throw new UsageError(`--ca-file: cannot read ${values['ca-file']}: ${e.message}`);
      }
    }
    const connection = {
      // The first URL; the client's `url` is the one it is connected to.
      url: urls[0],
      urls,
      token: values.token || env.REGISTRY_TOKEN || undefined,
      ca,
      timeoutMs: positiveInt(values.timeout, '--timeout') ?? 10_000,
      connectWaitMs: positiveInt(values.wait, '--wait') ?? 5_000,
    };
    const ctx = {
      values,
      positionals,
      json: values.json,
      out,
      err,
      name,
      stdout,
      stderr,
      connection,
      // Connected on first use: help and completion never connect.
      get client() {
        if (!client) {
          client = new RegistryClient(urls, {
            token: connection.token,
            ca,
            requestTimeoutMs: connection.timeoutMs,
            connectWaitMs: connection.connectWaitMs,
          });
          client.on('error', (e) => err(`registryctl: ${e.message}`));
        }
        return client;
      },
    };
    const code = await command.run(ctx);
    return code ?? exitCodes.ok;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`registryctl: ${e.message}\n\n${command ? commandUsage(name, sub, { brief: true }) : overview({ brief: true })}`);
      return exitCodes.usage;
    }
    const failed = command?.failureExitCode ?? exitCodes.failed;
    if (e instanceof RegistryError) {
      err(`registryctl: ${describe(e)}`);
      return exitCodeOf(e, failed);
    }
    // A system error (a file that cannot be read) says all in its message.
    err(`registryctl: ${e?.syscall ? e.message : (e?.stack ?? e)}`);
    return failed;
  } finally {
    await client?.close();
  }
}
