// A virtualised list: only the rows in view (plus a margin) exist in the
// DOM, so thousands of services scroll smoothly. Rows have one fixed height;
// `render(item, row)` fills a recycled row element, `key(item)` names it.

import { h } from './dom.js';

export class VirtualList {
  #viewport;
  #spacer;
  #rows = new Map(); // index -> element
  #items = [];
  #rowHeight;
  #render;
  #createRow;

  constructor({ rowHeight = 34, createRow, render, label }) {
    this.#rowHeight = rowHeight;
    this.#render = render;
    this.#createRow = createRow;
    this.#spacer = h('div', { class: 'vlist-spacer', role: 'presentation' });
    this.#viewport = h('div', { class: 'vlist', tabindex: 0, role: 'list', 'aria-label': label }, this.#spacer);
    this.#viewport.addEventListener('scroll', () => this.#paint(), { passive: true });
    new ResizeObserver(() => this.#paint()).observe(this.#viewport);
  }

  get element() {
    return this.#viewport;
  }

  get size() {
    return this.#items.length;
  }

  // Replaces the items; rows in view are re-rendered in place.
  set(items) {
    this.#items = items;
    this.#spacer.style.height = `${items.length * this.#rowHeight}px`;
    for (const [i, row] of this.#rows) {
      if (i >= items.length) {
        row.remove();
        this.#rows.delete(i);
      }
    }
    this.#paint(true);
  }

  #paint(all = false) {
    const top = this.#viewport.scrollTop;
    const height = this.#viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / this.#rowHeight) - 10);
    const last = Math.min(this.#items.length, Math.ceil((top + height) / this.#rowHeight) + 10);
    for (const [i, row] of this.#rows) {
      if (i < first || i >= last) {
        row.remove();
        this.#rows.delete(i);
      }
    }
    for (let i = first; i < last; ++i) {
      let row = this.#rows.get(i);
      const fresh = !row;
      if (fresh) {
        row = this.#createRow();
        row.setAttribute('role', 'listitem');
        row.style.top = `${i * this.#rowHeight}px`;
        row.style.height = `${this.#rowHeight}px`;
        this.#rows.set(i, row);
        this.#spacer.append(row);
      }
      if (fresh || all) this.#render(this.#items[i], row, i);
    }
  }

  // Re-renders the rows in view (countdowns).
  refresh() {
    for (const [i, row] of this.#rows) this.#render(this.#items[i], row, i);
  }
}
