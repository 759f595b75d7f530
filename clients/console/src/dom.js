// A few DOM helpers instead of a framework: h() builds an element, and each
// view keeps the elements it updates, so an event changes one row's cells
// rather than re-rendering a page (no layout shift while events stream in).

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function setText(el, value) {
  const s = String(value ?? '');
  if (el.textContent !== s) el.textContent = s;
}

// "1m 05s" for a countdown; "expired" past it.
export function countdown(ms) {
  if (ms <= 0) return 'expired';
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

export function time(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : '';
}

// A status line the views share: role="status" so screen readers hear it.
export function notice(el, message, kind = 'info') {
  setText(el, message);
  el.dataset.kind = kind;
}

// Runs `fn` at most once per animation frame, however often it is asked:
// a fast event stream becomes one render per frame.
export function batched(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}
