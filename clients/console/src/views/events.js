// Events: the live stream, newest first, with type and service filters,
// pause (events are kept while paused and shown on resume), and a replay from
// a revision. A reconnect is shown where it happened in the stream, and a
// `resync_required` says plainly that history was lost.

import { batched, h, notice, setText, time } from '../dom.js';

const keep = 2000; // events held by the view

export function eventsView(section, client) {
  const status = h('p', { class: 'notice', role: 'status' });
  const typeFilter = h('input', { id: 'ev-filter-type', type: 'search', placeholder: 'e.g. service_registered' });
  const serviceFilter = h('input', { id: 'ev-filter-service', type: 'search', placeholder: 'service name' });
  const pause = h('button', { type: 'button', id: 'ev-pause', 'aria-pressed': 'false' }, 'Pause');
  const fromInput = h('input', { id: 'ev-from', type: 'number', min: 0, inputmode: 'numeric', placeholder: 'revision' });
  const replay = h('button', { type: 'button', id: 'ev-replay' }, 'Replay from');
  const info = h('span', { class: 'count', 'aria-live': 'off' });
  const log = h('ol', { class: 'events', 'aria-label': 'Events, newest first' });
  section.append(
    h('div', { class: 'toolbar' },
      h('label', { for: 'ev-filter-type' }, 'Type'), typeFilter,
      h('label', { for: 'ev-filter-service' }, 'Service'), serviceFilter,
      pause, h('label', { for: 'ev-from' }, 'From'), fromInput, replay, info),
    status, log,
  );

  let entries = []; // newest last
  let paused = false;
  let held = 0;
  let sub = null;

  const describe = (e) => {
    const d = e.data ?? {};
    const who = d.service?.instance_id ?? d.container?.container_id ?? d.instance_id ?? '';
    const what = d.reason ?? d.state ?? d.stage ?? d.health?.status ?? d.message ?? '';
    return { who, what, service: d.service?.name ?? d.package ?? '' };
  };
  const visible = (entry) => {
    if (entry.marker) return true;
    const t = typeFilter.value.trim();
    const s = serviceFilter.value.trim();
    if (t && !entry.event.includes(t)) return false;
    if (s && !entry.service.includes(s) && !entry.who.includes(s)) return false;
    return true;
  };
  const render = batched(() => {
    if (paused) {
      setText(info, `paused · ${held} new`);
      return;
    }
    const shown = entries.filter(visible).slice(-300).reverse();
    log.replaceChildren(
      ...shown.map((e) =>
        e.marker
          ? h('li', { class: 'marker', dataset: { kind: e.kind } }, `${time(e.at)} — ${e.marker}`)
          : h('li', { dataset: { event: e.event } },
              h('code', { class: 'rev' }, `#${e.revision}`), ' ', h('span', { class: 'etype' }, e.event), ' ',
              h('span', { class: 'who' }, e.who), ' ', h('span', { class: 'what' }, e.what))),
    );
    setText(info, `${entries.length} events · revision ${sub?.revision ?? '—'}`);
  });
  const add = (entry) => {
    entries.push(entry);
    if (entries.length > keep) entries = entries.slice(-keep);
    if (paused) ++held;
    render();
  };
  const marker = (text, kind = 'info') => add({ marker: text, kind, at: Date.now() });

  const follow = async (params) => {
    if (sub) await sub.close().catch(() => {});
    try {
      sub = await client.subscribe(params);
      sub.on((e) => {
        if (e.event === 'resync_required') {
          marker(`history from revision ${e.data.from_revision} is gone (oldest kept: ${e.data.oldest_revision}); a snapshot follows`, 'warn');
          return;
        }
        if (e.event === 'registry_loaded') {
          marker(`snapshot: ${e.data.services.length} instances at revision ${e.revision}`);
          return;
        }
        add({ event: e.event, revision: e.revision, ...describe(e) });
      });
      sub.onEnd((error) => error && notice(status, `The stream ended: ${error.message}`, 'error'));
      notice(status, params.from_revision !== undefined ? `Replaying from revision ${params.from_revision}.` : 'Live.');
    } catch (e) {
      notice(status, `Cannot subscribe: ${e.message}`, 'error');
    }
  };

  client.on('reconnecting', () => marker('connection lost; reconnecting', 'warn'));
  client.on('open', () => sub && marker(`reconnected; resuming after revision ${sub.revision}`));

  pause.addEventListener('click', () => {
    paused = !paused;
    pause.setAttribute('aria-pressed', String(paused));
    setText(pause, paused ? 'Resume' : 'Pause');
    held = 0;
    render();
  });
  replay.addEventListener('click', () => {
    const from = Number(fromInput.value);
    if (!Number.isInteger(from) || from < 0) {
      notice(status, 'A revision is a whole number ≥ 0.', 'error');
      return;
    }
    entries = [];
    follow({ from_revision: from });
  });
  for (const input of [typeFilter, serviceFilter]) input.addEventListener('input', render);

  follow({ snapshot: false });
}
