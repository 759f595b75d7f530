// Containers and nodes: containers per node with image, state and a live TTL
// countdown; extend, stop, remove; follow a container's logs (the view keeps
// to the bottom until the user scrolls up). Container events keep it live:
// the list is loaded once, then changed by events only.

import { batched, countdown, h, notice, setText, time } from '../dom.js';
import { guard, noteRefusal } from '../permissions.js';

export function containersView(section, client) {
  const status = h('p', { class: 'notice', role: 'status' });
  const nodesBody = h('tbody');
  const table = h('tbody');
  const logs = h('pre', { id: 'ct-logs', class: 'output', tabindex: 0, 'aria-label': 'Container log' });
  const logsTitle = h('h2', { id: 'ct-logs-title' }, 'Logs');
  const logsBox = h('div', { class: 'logs', hidden: true }, logsTitle, logs);
  section.append(
    h('h2', {}, 'Nodes'),
    h('table', { class: 'grid', id: 'nodes' },
      h('thead', {}, h('tr', {}, ['Node', 'Endpoint', 'Status', 'Running', 'Capacity', 'Last heartbeat'].map((t) => h('th', { scope: 'col' }, t)))),
      nodesBody),
    h('h2', {}, 'Containers'),
    h('table', { class: 'grid', id: 'containers' },
      h('thead', {}, h('tr', {}, ['Container', 'Node', 'Image', 'State', 'TTL', '', '', '', ''].map((t) => h('th', { scope: 'col' }, t)))),
      table),
    status, logsBox,
  );

  const containers = new Map(); // container_id -> container
  const rows = new Map(); // container_id -> {tr, state, ttl}
  let following = null;

  const act = async (action, params, what) => {
    try {
      const data = await client.request(action, params);
      // An extension moves the deadline without a state change, hence without an event.
      const c = containers.get(params.container_id);
      if (action === 'container_extend' && c) {
        containers.set(c.container_id, { ...c, expires_at_ms: data.expires_at_ms, ttl_seconds: data.ttl_seconds });
        render();
      }
      notice(status, `${what}: done.`);
    } catch (e) {
      noteRefusal(action, e);
      notice(status, `${what}: ${e.code}: ${e.message}`, 'error');
    }
  };
  const button = (label, family, onclick) => {
    const b = h('button', { type: 'button', onclick }, label);
    guard(b, family);
    return b;
  };

  const render = batched(() => {
    const now = Date.now();
    for (const [id, c] of containers) {
      let r = rows.get(id);
      if (!r) {
        const state = h('td', { class: 'c-state' });
        const ttl = h('td', { class: 'c-ttl' });
        const tr = h('tr', { dataset: { container: id } },
          h('th', { scope: 'row' }, h('code', {}, c.name || id.slice(0, 12))), h('td', {}, c.engine), h('td', {}, c.image), state, ttl,
          h('td', {}, button('Extend', 'containers.write', () => act('container_extend', { container_id: id }, `extend ${c.name || id}`))),
          h('td', {}, button('Stop', 'containers.write', () => act('container_stop', { container_id: id }, `stop ${c.name || id}`))),
          h('td', {}, button('Remove', 'containers.write', () => act('container_remove', { container_id: id, force: true }, `remove ${c.name || id}`))),
          h('td', {}, h('button', { type: 'button', onclick: () => follow(id, c.name || id) }, 'Logs')));
        r = { tr, state, ttl };
        rows.set(id, r);
        table.append(tr);
      }
      setText(r.state, c.state);
      r.state.dataset.state = c.state;
      const live = c.state === 'created' || c.state === 'running';
      setText(r.ttl, live ? countdown(c.expires_at_ms - now) : c.state === 'exited' ? `exit ${c.exit_code ?? '?'}` : '');
    }
    for (const [id, r] of rows) {
      if (!containers.has(id)) {
        r.tr.remove();
        rows.delete(id);
      }
    }
  });

  const follow = async (id, name) => {
    if (following) await following.close().catch(() => {});
    logs.replaceChildren();
    setText(logsTitle, `Logs of ${name}`);
    logsBox.hidden = false;
    try {
      const stream = await client.requestStream('container_logs', { container_id: id, follow: true, tail: 200 });
      following = stream.subscription;
      following.on('container_log', (e) => {
        const atBottom = logs.scrollHeight - logs.scrollTop - logs.clientHeight < 8;
        if (e.data.end) logs.append(h('span', { class: 'marker' }, `\n— the container stopped${e.data.error ? `: ${e.data.error.message}` : ''} —\n`));
        else logs.append(h('span', { class: e.data.stream }, e.data.data));
        if (atBottom) logs.scrollTop = logs.scrollHeight;
      });
    } catch (e) {
      notice(status, `Logs: ${e.code}: ${e.message}`, 'error');
    }
  };

  const loadNodes = async () => {
    const { nodes } = await client.listNodes();
    nodesBody.replaceChildren(...nodes.map((n) => h('tr', { dataset: { node: n.name } },
      h('th', { scope: 'row' }, n.name), h('td', {}, n.endpoint), h('td', { dataset: { status: n.status } }, n.status),
      h('td', {}, n.running), h('td', {}, n.capacity), h('td', {}, n.last_heartbeat_ms ? time(n.last_heartbeat_ms) : 'never'))));
  };

  // A node's load changes with its containers' events: re-read once per burst.
  const refreshNodes = batched(() => loadNodes().catch(() => {}));

  (async () => {
    try {
      const sub = await client.subscribe({ events: ['container_state_changed', 'lease_expired', 'container_reap_failed'], snapshot: false });
      const list = await client.containerList();
      for (const c of list.containers) containers.set(c.container_id, c);
      sub.on((e) => {
        const c = e.data?.container;
        if (!c) return;
        if (e.event === 'container_state_changed' && c.state === 'removed') containers.delete(c.container_id);
        else containers.set(c.container_id, c);
        if (e.event === 'container_reap_failed') notice(status, `Reaping ${c.name || c.container_id} failed: ${e.data.error.message}`, 'error');
        render();
        refreshNodes();
      });
      await loadNodes();
      render();
    } catch (e) {
      notice(status, e.code === 'unavailable' ? 'No container engine is configured on this registryd.' : `${e.code}: ${e.message}`, 'warn');
    }
  })();
  setInterval(() => !section.hidden && render(), 1000);
}
