// registryctl's commands about registryctl and registryd themselves: help,
// version, status.

import { readFileSync } from 'node:fs';

import { daemonInfo } from './daemon_http.js';
import { describe } from './exit_codes.js';
import * as fmt from './format.js';
import { helpText } from './usage.js';
import { usageError } from './usage_error.js';

export const clientVersion = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

export const help = {
  args: '[COMMAND [SUBCOMMAND]]',
  summary: "show the commands, or one command's usage",
  local: true,
  async run(ctx) {
    if (ctx.positionals.length > 2) throw usageError(`unexpected argument '${ctx.positionals[2]}'`);
    const { text, error } = helpText(ctx.positionals);
    if (error) throw usageError(error);
    ctx.out(text);
  },
};

export const version = {
  args: '[--client]',
  summary: "show registryctl's version and registryd's; registryd's comes from its GET /metrics; --client: registryctl's only",
  options: { client: { type: 'boolean', default: false } },
  async run(ctx) {
    if (ctx.positionals.length) throw usageError(`unexpected argument '${ctx.positionals[0]}'`);
    const mine = { version: clientVersion, node: process.version };
    if (ctx.values.client) {
      print(ctx, { client: mine }, (d) => `registryctl ${d.client.version} (node ${d.client.node})`);
      return;
    }
    // With several URLs, the first registryd that answers (the error: the last one's).
    let daemon;
    let url;
    for (const u of ctx.connection.urls) {
      try {
        daemon = await daemonInfo(u, ctx.connection);
        url = u;
        break;
      } catch (e) {
        if (u === ctx.connection.urls.at(-1)) throw e;
      }
    }
    print(ctx, { client: mine, daemon: { url, version: daemon.version, compiler: daemon.compiler } }, (d) =>
      [
        `registryctl ${d.client.version} (node ${d.client.node})`,
        `registryd   ${d.daemon.version ?? '(not reported)'}${d.daemon.compiler ? ` (${d.daemon.compiler})` : ''} at ${d.daemon.url}`,
      ].join('\n'),
    );
  },
};

// What a source of status answered: its data, or why there is none (the
// WebSocket answered already, so a part missing is not the whole failing:
// /metrics may want a token, a daemon may have no container engines).
async function attempt(promise) {
  try {
    return { data: await promise };
  } catch (e) {
    return { error: e };
  }
}

function nodesText(nodes) {
  if (nodes.error) {
    if (nodes.error.code === 'unavailable') return `none (${nodes.error.message})`;
    return `not available (${describe(nodes.error)})`;
  }
  const list = nodes.data.nodes ?? [];
  if (!list.length) return 'none';
  return list.map((n) => `${n.name} ${n.status} ${n.running}/${n.capacity}`).join(', ');
}

export const status = {
  args: '',
  summary:
    "registryd's version, uptime, revision, services, store and nodes; " +
    'from list_services, list_nodes and GET /metrics',
  async run(ctx) {
    if (ctx.positionals.length) throw usageError(`unexpected argument '${ctx.positionals[0]}'`);
    const { client, connection } = ctx;
    // The WebSocket first: if registryd is not there, that is the error.
    const listing = await client.listServices({ limit: 1 });
    // The registryd that answered (one of several URLs).
    const url = client.url;
    const [metrics, nodes] = await Promise.all([attempt(daemonInfo(url, connection)), attempt(client.listNodes())]);
    const m = metrics.data ?? {};
    const data = {
      url,
      version: m.version ?? null,
      compiler: m.compiler ?? null,
      started_at_ms: m.started_at_ms ?? null,
      revision: listing.revision,
      services: listing.services.length + (listing.remaining ?? 0),
      store: { available: m.store_available ?? null, kind: m.store_kind ?? null, state: m.store_state ?? null },
      connections: m.connections ?? null,
      nodes: nodes.data?.nodes ?? null,
    };
    if (metrics.error) data.metrics_error = describe(metrics.error);
    if (nodes.error) data.nodes_error = describe(nodes.error);
    print(ctx, data, (d) => {
      const unknown = `not available (${d.metrics_error})`;
      const storeStates = {
        ok: 'writable',
        unreachable: 'unreachable: changes are refused (unavailable) until it is back; reads may be stale',
        failed: 'failed: changes are refused (unavailable) until registryd restarts',
      };
      const storeState =
        d.store.available === null
          ? unknown
          : (storeStates[d.store.state] ?? (d.store.available ? storeStates.ok : storeStates.failed));
      const rows = [
        ['registryd', d.version === null ? unknown : `${d.version}${d.compiler ? ` (${d.compiler})` : ''}`],
        ['url', d.url],
        ['started', d.started_at_ms === null ? unknown : `${new Date(d.started_at_ms).toISOString()} (${fmt.relativeTime(d.started_at_ms)})`],
        ['revision', d.revision],
        ['services', `${d.services} instance${d.services === 1 ? '' : 's'}`],
        ['store', d.store.kind ? `${d.store.kind}, ${storeState}` : storeState],
        ['connections', d.connections ?? unknown],
        ['nodes', nodesText(nodes)],
      ];
      const w = Math.max(...rows.map((r) => r[0].length));
      return rows.map(([k, v]) => `${`${k}:`.padEnd(w + 1)} ${v}`).join('\n');
    });
  },
};

function print(ctx, data, human) {
  ctx.out(ctx.json ? JSON.stringify(data, null, 2) : human(data));
}
