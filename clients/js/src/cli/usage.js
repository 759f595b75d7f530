// registryctl's help, made from the command table: the overview (one line a
// command), a command's usage, a subcommand's usage. A usage error prints the
// usage of the command (or subcommand) it is about, not the overview.

import { commands } from './commands.js';
import { exitCodesText } from './exit_codes.js';

// Options every command takes (main() parses them with the command's own).
export const globalOptions = {
  url: { type: 'string', multiple: true },
  json: { type: 'boolean', default: false },
  timeout: { type: 'string' },
  wait: { type: 'string' },
  token: { type: 'string' },
  'ca-file': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
};

const globalSynopsis = '[--url URL] [--token TOKEN] [--ca-file PEM] [--json] [--timeout MS] [--wait MS]';

const globalText = `global options:
  --url URL     registryd's WebSocket URL, ws:// or wss:// (default: $REGISTRY_URL, else ws://127.0.0.1:8080);
                several registryd sharing one registry: comma-separated or repeated (writes go to the writer)
  --token T     bearer token (default: $REGISTRY_TOKEN)
  --ca-file PEM the CA that signed registryd's TLS certificate (a private CA; wss:// only)
  --json        machine-readable output: the response's data as JSON (watch: one event a line)
  --timeout MS  request timeout (default 10000)
  --wait MS     how long to wait for a connection (default 5000)
  -h, --help    this command's usage`;

// The subcommand `positionals` name, if `command` has subcommands: the first
// positional, or the default one when there is none.
export function subcommandOf(command, positionals) {
  if (!command.subcommands) return null;
  const [first] = positionals;
  if (first === undefined) return command.defaultSubcommand ?? null;
  return Object.hasOwn(command.subcommands, first) ? first : null;
}

// Every command with its summary; `brief` (after a usage error that names
// no command): without the global options and exit codes.
export function overview({ brief = false } = {}) {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${headline(c.summary)}`);
  const text = `usage: registryctl ${globalSynopsis} COMMAND [ARGS]

commands:
${lines.join('\n')}

'registryctl help COMMAND' (or 'registryctl COMMAND --help') shows a command's usage.`;
  return brief ? text : `${text}\n\n${globalText}\n\n${exitCodesText}`;
}

// A summary up to its first "; ": the overview's line of a command.
export function headline(summary) {
  const i = summary.indexOf('; ');
  return i < 0 ? summary : summary.slice(0, i);
}

function synopsis(name, c) {
  if (c.subcommands) return `${name} ${Object.keys(c.subcommands).join('|')} ...`;
  return `${name} ${c.args ?? ''}`.trimEnd();
}

// A command's usage, or one of its subcommand's; `brief` (after a usage
// error): without the global options.
export function commandUsage(name, sub = null, { brief = false } = {}) {
  const c = commands[name];
  const globals = brief ? "'registryctl --help' shows the global options." : globalText;
  if (sub !== null) {
    const s = c.subcommands[sub];
    return `usage: registryctl ${name} ${sub} ${s.args ?? ''}`.trimEnd() + `\n\n${s.summary}\n\n${globals}`;
  }
  const lines = [`usage: registryctl ${synopsis(name, c)}`, '', c.summary];
  if (c.subcommands) {
    const width = Math.max(...Object.keys(c.subcommands).map((n) => n.length));
    lines.push('', 'subcommands:');
    for (const [subName, s] of Object.entries(c.subcommands)) {
      lines.push(`  ${subName.padEnd(width)}  ${s.summary}`);
      if (s.args) lines.push(`  ${' '.repeat(width)}  ${name} ${subName} ${s.args}`);
    }
    lines.push('', `'registryctl help ${name} SUBCOMMAND' shows one in full.`);
  }
  lines.push('', globals);
  return lines.join('\n');
}

// `registryctl help [COMMAND [SUBCOMMAND]]`: the text, or a UsageError's
// message when there is no such command.
export function helpText(words) {
  const [name, sub] = words;
  if (name === undefined) return { text: overview() };
  const c = Object.hasOwn(commands, name) ? commands[name] : null;
  if (!c) return { error: `help: unknown command '${name}'` };
  if (sub === undefined) return { text: commandUsage(name) };
  if (!c.subcommands || !Object.hasOwn(c.subcommands, sub)) {
    return { error: `help: '${name}' has no subcommand '${sub}'` };
  }
  return { text: commandUsage(name, sub) };
}

// The flags (long, with "--") a command or a subcommand takes, besides the
// global ones: a subcommand's are the command's options its usage names.
export function flagsOf(name, sub = null) {
  const c = commands[name];
  const flags = Object.keys(c.options ?? {}).map((o) => `--${o}`);
  if (sub === null || !c.subcommands) return flags;
  const named = new Set(c.subcommands[sub].args?.match(/--[a-z][a-z0-9-]*/g) ?? []);
  return flags.filter((f) => named.has(f));
}

// Edit distance (insertions, deletions, substitutions) of two short words.
function distance(a, b) {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length];
}

// The command `word` was probably meant to be (a typo of at most two
// letters, or the start of one command's name), or null.
export function closestCommand(word) {
  const names = Object.keys(commands);
  const starting = names.filter((n) => n.startsWith(word));
  if (word.length >= 2 && starting.length === 1) return starting[0];
  let best = null;
  for (const n of names) {
    const d = distance(word, n);
    if (d <= 2 && (best === null || d < best.d)) best = { n, d };
  }
  return best?.n ?? null;
}
