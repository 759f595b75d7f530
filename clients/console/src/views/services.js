// Services: every instance, live. One subscription with a snapshot keeps
// `sub.services` (the client maintains it); each event re-renders the rows in
// view once per frame. A row shows state, health, endpoints, version,
// metadata and the lease countdown; selecting it shows its events.

import { batched, countdown, h, notice, setText, time } from '../dom.js';
import { VirtualList } from '../virtual_list.js';

const historyLimit = 50;

export function servicesView(section, client) {
  const status = h('p', { class: 'notice', role: 'status' });
  const nameFilter = h('input', { id: 'svc-filter-name', type: 'search', placeholder: 'name or instance' });
  const stateFilter = h(
    'select',
    { id: 'svc-filter-state' },
    h('option', { value: '' }, 'any state'),
    ['registered', 'starting', 'running', 'stopping', 'stopped', 'failed'].map((s) => h('option', { value: s }, s)),
  );
  const metaFilter = h('input', { id: 'svc-filter-meta', type: 'search', placeholder: 'key=value' });
  const count = h('span', { class: 'count', 'aria-live': 'polite' });
  const history = h('aside', { class: 'history', 'aria-label': 'Instance history', hidden: true });
  const histories = new Map(); // instance_id -> [{revision, event, summary}]
  let selected = null;

  const list = new VirtualList({
    label: 'Service instances',
    rowHeight: 36,
    createRow: () =>
      h('div', { class: 'row svc', tabindex: 0 },
        h('span', { class: 'c-name' }), h('span', { class: 'c-id' }), h('span', { class: 'c-state' }),
        h('span', { class: 'c-health' }), h('span', { class: 'c-endpoints' }), h('span', { class: 'c-version' }),
        h('span', { class: 'c-meta' }), h('span', { class: 'c-lease' })),
    render: (s, row) => {
      const [name, id, state, health, endpoints, version, meta, lease] = row.children;
      row.dataset.instance = s.instance_id;
      row.setAttribute('aria-selected', String(s.instance_id === selected));
      setText(name, s.name);
      setText(id, s.instance_id);
      setText(state, s.state);
      state.dataset.state = s.state;
      setText(health, s.health?.status ?? '—');
      health.dataset.health = s.health?.status ?? 'none';
      setText(endpoints, s.endpoints.map((e) => `${e.name} ${e.address}:${e.port}`).join(', '));
      setText(version, s.version);
      setText(meta, Object.entries(s.metadata ?? {}).map(([k, v]) => `${k}=${v}`).join(' '));
      setText(lease, s.lease.session_bound ? 'session' : countdown(s.lease.expires_at_ms - Date.now()));
    },
  });
  const open = (e) => {
    const row = e.target.closest('.row');
    if (row && (e.type === 'click' || e.key === 'Enter')) select(row.dataset.instance);
  };
  list.element.addEventListener('click', open);
  list.element.addEventListener('keydown', open);

  section.append(
    h('div', { class: 'toolbar' },
      h('label', { for: 'svc-filter-name' }, 'Filter'), nameFilter,
      h('label', { for: 'svc-filter-state' }, 'State'), stateFilter,
      h('label', { for: 'svc-filter-meta' }, 'Metadata'), metaFilter, count),
    h('div', { class: 'split' },
      h('div', { class: 'listcol' },
        h('div', { class: 'head row svc', 'aria-hidden': 'true' },
          ['Name', 'Instance', 'State', 'Health', 'Endpoints', 'Version', 'Metadata', 'Lease'].map((t) => h('span', {}, t))),
        list.element),
      history),
    status,
  );

  let sub = null;
  const matches = (s) => {
    const n = nameFilter.value.trim();
    if (n && !s.name.includes(n) && !s.instance_id.includes(n)) return false;
    if (stateFilter.value && s.state !== stateFilter.value) return false;
    const m = metaFilter.value.trim();
    if (m) {
      const [k, v] = m.split('=', 2);
      if (!(k in (s.metadata ?? {}))) return false;
      if (v !== undefined && s.metadata[k] !== v) return false;
    }
    return true;
  };
  const render = batched(() => {
    if (!sub) return;
    const all = [...sub.services.values()];
    const shown = all.filter(matches).sort((a, b) => (a.instance_id < b.instance_id ? -1 : 1));
    list.set(shown);
    setText(count, `${shown.length} of ${all.length} instances · revision ${sub.revision}`);
    if (selected) renderHistory();
  });
  for (const input of [nameFilter, stateFilter, metaFilter]) input.addEventListener('input', render);

  const select = (id) => {
    selected = id;
    history.hidden = false;
    render();
  };
  const renderHistory = () => {
    const s = sub.services.get(selected);
    history.replaceChildren(
      h('h2', {}, selected),
      s ? h('p', {}, `${s.name} ${s.version} · registered ${time(s.registered_at_ms)}`) : h('p', {}, 'no longer registered'),
      h('ol', { reversed: true },
        (histories.get(selected) ?? []).slice().reverse().map((e) => h('li', {}, h('code', {}, `#${e.revision}`), ' ', e.event, ' ', e.summary))),
      h('button', { type: 'button', onclick: () => { selected = null; history.hidden = true; render(); } }, 'Close'),
    );
  };

  const remember = (event) => {
    const s = event.data?.service;
    if (!s) return;
    const list = histories.get(s.instance_id) ?? [];
    const summary = event.data.reason ?? event.data.state ?? event.data.health?.status ?? '';
    list.push({ revision: event.revision, event: event.event, summary });
    if (list.length > historyLimit) list.shift();
    histories.set(s.instance_id, list);
  };

  (async () => {
    try {
      sub = await client.subscribe({ snapshot: true });
      sub.on((event) => {
        if (event.event === 'resync_required') notice(status, 'Events were missed; the list was reloaded from a snapshot.', 'warn');
        remember(event);
        render();
      });
      sub.onEnd((error) => error && notice(status, `The subscription ended: ${error.message}`, 'error'));
      render();
    } catch (e) {
      notice(status, `Cannot subscribe: ${e.message}`, 'error');
    }
  })();
  // Lease countdowns tick without events.
  setInterval(() => !section.hidden && list.refresh(), 1000);
}
