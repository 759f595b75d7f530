// What registryd tells over plain HTTP on its WebSocket port
// (docs/protocol.md, "Plain HTTP"): GET /metrics, which carries its version
// (registryd_build_info), revision, store state and start time. The
// WebSocket protocol has no action for these.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

import { RegistryError } from '../errors.js';

// A response bigger than this is not registryd's /metrics.
const maxBody = 4 * 1024 * 1024;

// ws://host:port/... -> http://host:port/metrics (wss: https).
function httpUrl(wsUrl, path) {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = path;
  u.search = '';
  u.hash = '';
  return u;
}

// GET `path` of the daemon at `wsUrl`: the body as text. A connection error
// rejects with not_connected, a 401/403 with unauthorized/forbidden, another
// status with `http_status`.
function httpGet(wsUrl, path, { token, ca, timeoutMs = 10_000 } = {}) {
  const url = httpUrl(wsUrl, path);
  const get = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return new Promise((resolve, reject) => {
    const req = get(url, { method: 'GET', headers, ca, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (s) => {
        body += s;
        if (body.length > maxBody) req.destroy(new Error(`GET ${url}: more than ${maxBody} bytes`));
      });
      res.on('end', () => {
        const status = res.statusCode;
        if (status === 200) return resolve(body);
        const code = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'http_status';
        reject(new RegistryError(code, `GET ${url.pathname}: HTTP ${status} ${body.trim().slice(0, 200)}`.trimEnd()));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(new RegistryError('not_connected', `GET ${url}: ${e.message}`, { cause: e })));
    req.end();
  });
}

// The samples of a Prometheus text exposition: [{name, labels, value}].
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

// What `version` and `status` show of a daemon, from its /metrics.
export async function daemonInfo(wsUrl, options) {
  const samples = parseMetrics(await httpGet(wsUrl, '/metrics', options));
  const one = (name) => samples.find((s) => s.name === name);
  const build = one('registryd_build_info');
  return {
    version: build?.labels.version ?? null,
    compiler: build?.labels.compiler ?? null,
    revision: one('registryd_revision')?.value ?? null,
    services: one('registryd_services')?.value ?? null,
    store_available: one('registryd_store_available') ? one('registryd_store_available').value === 1 : null,
    store_kind: one('registryd_store_info')?.labels.kind ?? null,
    store_state: one('registryd_store_info')?.labels.state ?? null,
    started_at_ms: one('process_start_time_seconds') ? one('process_start_time_seconds').value * 1000 : null,
    connections: one('registryd_connections')?.value ?? null,
  };
}
