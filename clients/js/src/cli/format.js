// Human output of registryctl: aligned tables and one-line event summaries.

// Renders rows (arrays of strings) under `headers`, columns padded to fit.
export function table(headers, rows) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i] ?? '').length)));
  const line = (cells) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? String(c ?? '') : String(c ?? '').padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function endpointText(e) {
  return `${e.name}=${e.protocol}://${e.address}:${e.port}`;
}

// "in 25s", "in 3m", "2s ago"; less than half a second away is "0s ago" (a
// heartbeat just now is not in the future).
export function relativeTime(ms, now = Date.now()) {
  const d = Math.round((ms - now) / 1000);
  const abs = Math.abs(d);
  const text = abs < 120 ? `${abs}s` : abs < 7200 ? `${Math.round(abs / 60)}m` : `${Math.round(abs / 3600)}h`;
  return d > 0 ? `in ${text}` : `${text} ago`;
}

export function servicesTable(services) {
  return table(
    ['INSTANCE', 'NAME', 'VERSION', 'STATE', 'HEALTH', 'ENDPOINTS', 'LEASE'],
    services.map((s) => [
      s.instance_id,
      s.name,
      s.version || '-',
      s.state === 'failed' && s.failure_reason ? `failed (${s.failure_reason})` : s.state,
      s.health?.status ?? '-',
      s.endpoints.map(endpointText).join(',') || '-',
      `${s.lease.id} (expires ${relativeTime(s.lease.expires_at_ms)})`,
    ]),
  );
}

export function endpointsTable(endpoints) {
  return table(
    ['SERVICE', 'INSTANCE', 'ENDPOINT', 'ADDRESS', 'PORT', 'PROTOCOL', 'STATE'],
    endpoints.map((e) => [e.service, e.instance_id, e.name, e.address, e.port, e.protocol, e.state]),
  );
}

// A service in detail, one "key: value" a line.
export function serviceDetail(s) {
  const exec = Object.entries(s.execution)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const loc = Object.entries(s.location)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const rows = [
    ['instance', s.instance_id],
    ['name', s.name],
    ['version', s.version || '-'],
    ['state', s.failure_reason ? `${s.state} (${s.failure_reason})` : s.state],
    ['health', s.health ? `${s.health.status} ${JSON.stringify(s.health.output)}` : '-'],
    ['execution', exec],
    ['location', loc],
    ['endpoints', s.endpoints.map(endpointText).join(', ') || '-'],
    ['depends on', s.depends_on.join(', ') || '-'],
    ['metadata', Object.entries(s.metadata).map(([k, v]) => `${k}=${v}`).join(', ') || '-'],
    [
      'lease',
      `${s.lease.id}, ttl ${s.lease.ttl_seconds}s, expires ${relativeTime(s.lease.expires_at_ms)}` +
        (s.lease.session_bound ? ', session-bound' : ''),
    ],
    ['registered', new Date(s.registered_at_ms).toISOString()],
    ['revisions', `created ${s.created_revision}, modified ${s.modified_revision}`],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w + 1)} ${v}`).join('\n');
}

// A byte count as "64 MiB", "1.5 GiB", "512 B".
export function bytesText(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

// A command as a shell would read it back: words with anything special quoted.
function commandText(args) {
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

function timeText(ms) {
  return ms === undefined ? '-' : `${new Date(ms).toISOString()} (${relativeTime(ms)})`;
}

// A container in detail (container_get), one "key: value" a line.
export function containerDetail(c) {
  const limits = [];
  if (c.limits?.memory_bytes !== undefined) limits.push(`memory ${bytesText(c.limits.memory_bytes)}`);
  if (c.limits?.cpus !== undefined) limits.push(`cpus ${c.limits.cpus}`);
  if (c.limits?.pids !== undefined) limits.push(`pids ${c.limits.pids}`);
  const rows = [
    ['container', c.container_id],
    ['name', c.name || '-'],
    ['image', c.image],
    ['command', c.command?.length ? commandText(c.command) : '(the image\'s)'],
    ['engine', c.engine],
    ['state', c.exit_code !== undefined ? `${c.state} (exit code ${c.exit_code})` : c.state],
    ['created', timeText(c.created_at_ms)],
    ['started', timeText(c.started_at_ms)],
    ['finished', timeText(c.finished_at_ms)],
  ];
  if (c.error) rows.push(['error', c.error]);
  rows.push(
    ['lease', `${c.lease_id}, ttl ${c.ttl_seconds}s, expires ${relativeTime(c.expires_at_ms)}`],
    ['limits', limits.join(', ') || '-'],
    ['labels', Object.entries(c.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ') || '-'],
  );
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(w + 1)} ${v}`).join('\n');
}

// A container in an event line: its id cut to 12 characters as engines
// print it (the whole id is in --json), and its name.
function containerText(c) {
  return `${c.container_id.slice(0, 12)}${c.name ? ` (${c.name})` : ''}`;
}

// One line for an event: "REVISION EVENT SUBJECT details", the subject
// being a service instance or a container.
export function eventLine(e) {
  const d = e.data;
  const id = d.service?.instance_id ?? d.instance_id ?? (d.container ? containerText(d.container) : '-');
  let details = '';
  switch (e.event) {
    case 'service_registered':
      details = `state=${d.service.state} endpoints=${d.service.endpoints.map(endpointText).join(',') || '-'}`;
      break;
    case 'service_deregistered':
      details = `reason=${d.reason}`;
      break;
    case 'service_state_changed':
      details = `${d.previous_state} -> ${d.state}${d.reason ? ` (${d.reason})` : ''}`;
      break;
    case 'endpoint_updated':
      details = `endpoints=${d.endpoints.map(endpointText).join(',') || '-'}`;
      break;
    case 'health_check_result':
      details = `health=${d.health?.status ?? '-'}`;
      break;
    case 'lease_expired':
      details = `lease=${d.lease_id} reason=${d.reason}`;
      break;
    case 'container_state_changed':
      details =
        `${d.previous_state ? `${d.previous_state} -> ` : ''}${d.state}` +
        (d.container.exit_code !== undefined ? ` exit_code=${d.container.exit_code}` : '') +
        ` image=${d.container.image} engine=${d.container.engine}` +
        (d.reason ? ` (${d.reason})` : '');
      break;
    case 'container_reap_failed':
      details = `attempts=${d.attempts} error=${d.error.code}: ${d.error.message}`;
      break;
    case 'registry_loaded':
      details = `services=${d.services.length}`;
      break;
    case 'resync_required':
      details = `from_revision=${d.from_revision} oldest_revision=${d.oldest_revision}`;
      break;
    case 'deployment_started':
    case 'deployment_stage':
    case 'deployment_succeeded':
    case 'deployment_failed':
    case 'deployment_rolled_back':
      details =
        `${d.from_version ?? '-'} -> ${d.to_version} on ${d.target}` +
        (d.stage ? ` stage=${d.stage}` : '') +
        (d.healthy !== undefined ? ` healthy=${d.healthy}` : '') +
        (d.message ? ` (${d.message})` : '');
      break;
    default:
      details = JSON.stringify(d);
  }
  return `${e.revision} ${e.event} ${id} ${details}`.trimEnd();
}

// Data of a shape registryctl does not know yet (actions of capabilities
// still being built): the first array of objects as a table, else key: value.
export function generic(data) {
  if (data === null || typeof data !== 'object') return String(data);
  const list = Object.values(data).find((v) => Array.isArray(v) && v.every((x) => x && typeof x === 'object'));
  if (list) {
    const cols = [...new Set(list.flatMap((x) => Object.keys(x).filter((k) => typeof x[k] !== 'object')))];
    return table(
      cols.map((c) => c.toUpperCase()),
      list.map((x) => cols.map((c) => x[c] ?? '')),
    );
  }
  return Object.entries(data)
    .map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`)
    .join('\n');
}
