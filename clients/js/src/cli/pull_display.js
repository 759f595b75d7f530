// `images pull`'s progress (image_pull_progress events, docs/protocol.md)
// on a Progress: per node, a bar of the bytes of its layers so far (of those
// whose size the engine gave) and the last status, then a line saying
// whether the node pulled the image.

export class PullDisplay {
  #progress;
  #layers = new Map(); // "engine id" -> {current, total}
  #printed = new Set(); // piped: "engine id status" shown

  constructor(progress) {
    this.#progress = progress;
  }

  // A progress event (not the last one of its node).
  show(d) {
    if (d.id) {
      const key = `${d.engine} ${d.id}`;
      if (d.total > 0) this.#layers.set(key, { current: d.current ?? 0, total: d.total });
      // The engine's last word on a layer carries no byte counts.
      const layer = this.#layers.get(key);
      if (layer && /complete|exists/i.test(d.status ?? '')) layer.current = layer.total;
    }
    let current = 0;
    let total = 0;
    for (const [key, l] of this.#layers) {
      if (!key.startsWith(`${d.engine} `)) continue;
      current += Math.min(l.current, l.total);
      total += l.total;
    }
    const text = `${d.engine}: ${d.status ?? ''}${d.id ? ` ${d.id}` : ''}`.trimEnd();
    if (this.#progress.isTTY) {
      this.#progress.update({ fraction: total > 0 ? current / total : null, text });
      return;
    }
    // Piped, a line for each layer and status once (layers download side by
    // side): no bar, it would be stale at once.
    const key = `${d.engine} ${d.id ?? ''} ${d.status ?? ''}`;
    if (this.#printed.has(key)) return;
    this.#printed.add(key);
    this.#progress.line(text);
  }

  // A node's last event: pulled, or failed with the engine's error.
  end(d) {
    this.#progress.line(d.error ? `${d.engine}: failed: ${d.error.code}: ${d.error.message}` : `${d.engine}: pulled ${d.reference}`);
  }
}
