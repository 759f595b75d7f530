// One subscription as the application sees it: it outlives connections.
// The client re-subscribes it after every reconnect from the last revision it
// delivered, so the application sees every event once and in order; when the
// server can no longer replay that far back it sends `resync_required` and a
// fresh `registry_loaded` snapshot, which reloads `services`.
//
// Events are plain objects {event, revision, data}. They are delivered to
// listeners (on/off) and to async iterators, each with its own filter. The
// events that arrive before the first listener or iterator is attached (the
// snapshot usually comes with the subscribe response) are kept and handed to
// every consumer attached in the same tick as the first one.

// The events of one change share a revision: a lease expiry is
// `lease_expired` then `service_deregistered` (docs/protocol.md). After a
// `lease_expired` its revision is incomplete until the second event arrives,
// so the resume point is the last complete revision plus how many events of
// the incomplete one were already delivered, which the replay then skips.
// (Resuming from the last revision itself would matter: after a daemon
// restart the history starts at the restart's revision, and an earlier
// from_revision would force a resync.)
export class ResumePoint {
  complete = 0;     // every matching event with a revision <= this was delivered
  partial = 0;      // revision of the last delivered event, when > complete
  partialCount = 0; // how many events of `partial` were delivered
  skip = null;      // {revision, count} while a replay repeats delivered events
  #pairs;           // whether a `service_deregistered` follows each `lease_expired`

  constructor(events) {
    this.#pairs = !events || events.includes('service_deregistered');
  }

  startAt(revision) {
    this.complete = revision;
    this.partial = 0;
    this.partialCount = 0;
  }

  // Returns false for an event that a replay repeats (already delivered).
  accept(frame) {
    const { event, revision } = frame;
    if (event === 'registry_loaded' || event === 'bookmark' || event === 'resync_required') {
      // A snapshot or a bookmark is the whole state as of its revision.
      this.skip = null;
      if (event !== 'resync_required') this.startAt(Math.max(revision, this.complete));
      return true;
    }
    if (this.skip) {
      if (revision === this.skip.revision && this.skip.count > 0) {
        this.skip.count -= 1;
        return false;
      }
      this.skip = null;
    }
    if (revision > this.partial) {
      this.complete = Math.max(this.complete, revision - 1); // events come in revision order
      this.partial = revision;
      this.partialCount = 0;
    }
    this.partialCount += 1;
    if (!(event === 'lease_expired' && this.#pairs)) this.startAt(revision); // the change is complete
    return true;
  }

  // The `from_revision` to resume from, and what the replay will repeat.
  resume() {
    this.skip = this.partial > this.complete ? { revision: this.partial, count: this.partialCount } : null;
    return this.complete;
  }

  get last() {
    return Math.max(this.complete, this.partial);
  }
}

// Builds an event predicate from {types, filter}: `types` is an event name or
// a list of names ('*' or absent: every event except bookmarks).
function matcher(types, filter) {
  const list = types === undefined || types === '*' ? null : [].concat(types);
  return (e) => {
    if (list ? !list.includes(e.event) : e.event === 'bookmark') return false;
    return filter ? Boolean(filter(e)) : true;
  };
}

export class Subscription {
  #client;
  #params;
  #resume;
  #listeners = new Set(); // {match, fn}
  #closed = false;
  #error = null;
  #subscribedOnce = false;
  #backlog = []; // events before the first consumer; null once handed over
  #endListeners = new Set();

  id = null; // the server's id on the current connection (changes on reconnect)
  services = new Map(); // instance_id -> service: the state this subscription has seen

  constructor(client, params) {
    this.#client = client;
    this.#params = { ...params };
    this.#resume = new ResumePoint(params.events);
    if (params.from_revision !== undefined) this.#resume.startAt(params.from_revision);
  }

  get closed() {
    return this.#closed;
  }

  // The revision of the last event delivered (or of the snapshot).
  get revision() {
    return this.#resume.last;
  }

  // `fn(event)` for every event of `types` (see matcher) that passes `filter`.
  // Returns a function that removes the listener.
  on(types, fn, { filter } = {}) {
    if (typeof types === 'function') [types, fn] = ['*', types];
    const entry = { match: matcher(types, filter), fn };
    this.#attach(entry);
    return () => this.#listeners.delete(entry);
  }

  // `fn(error)` when the subscription ends: error is null after close(), a
  // RegistryError when it could not go on (a refused re-subscribe, a lost
  // stream). Iterators end the same way (they throw the error).
  onEnd(fn) {
    if (this.#closed) queueMicrotask(() => fn(this.#error));
    else this.#endListeners.add(fn);
    return () => this.#endListeners.delete(fn);
  }

  off(fn) {
    for (const l of this.#listeners) if (l.fn === fn) this.#listeners.delete(l);
  }

  // An async iterator over the events of `types` that pass `filter`; it ends
  // when the subscription is closed. Events are buffered until consumed.
  events({ types, filter } = {}) {
    const match = matcher(types, filter);
    const buffered = [];
    let wake = null;
    const entry = {
      match,
      fn: (e) => {
        buffered.push(e);
        if (wake) wake();
      },
      wake: () => wake?.(),
    };
    this.#attach(entry);
    const sub = this;
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        await null; // lets the backlog (handed over in a microtask) arrive first
        for (;;) {
          if (buffered.length) return { value: buffered.shift(), done: false };
          if (sub.#error) throw sub.#error;
          if (sub.#closed || !sub.#listeners.has(entry)) return { value: undefined, done: true };
          await new Promise((resolve) => {
            wake = resolve;
          });
          wake = null;
        }
      },
      async return() {
        sub.#listeners.delete(entry);
        if (wake) wake();
        return { value: undefined, done: true };
      },
    };
  }

  [Symbol.asyncIterator]() {
    return this.events();
  }

  // Unsubscribes (when connected) and ends every iterator.
  async close() {
    if (this.#closed) return;
    await this.#client.unsubscribe(this);
  }

  #attach(entry) {
    this.#listeners.add(entry);
    if (this.#backlog && this.#listeners.size === 1) {
      queueMicrotask(() => {
        const backlog = this.#backlog;
        this.#backlog = null;
        for (const e of backlog) this.#dispatch(e);
      });
    }
  }

  #dispatch(e) {
    for (const l of [...this.#listeners]) if (l.match(e)) this.#client._callback(l.fn, e);
  }

  // ---- called by the client ---------------------------------------------

  // The params of the next `subscribe` request: the original ones, resumed
  // from the last complete revision once a first subscribe succeeded.
  _subscribeParams() {
    if (!this.#subscribedOnce) return this.#params;
    const { snapshot, ...rest } = this.#params;
    return { ...rest, from_revision: this.#resume.resume() };
  }

  _attached(id, revision) {
    this.id = id;
    if (!this.#subscribedOnce && this.#params.from_revision === undefined) this.#resume.startAt(revision);
    this.#subscribedOnce = true;
  }

  // Whether the client must re-subscribe it on a new connection (it was
  // subscribed before; its first subscribe is the application's own request).
  get _needsResubscribe() {
    return this.#subscribedOnce && !this.#closed && this.id === null;
  }

  _detached() {
    this.id = null;
  }

  _deliver(frame) {
    if (this.#closed || !this.#resume.accept(frame)) return;
    this.#apply(frame);
    const e = { event: frame.event, revision: frame.revision, data: frame.data };
    if (this.#backlog) this.#backlog.push(e);
    else this.#dispatch(e);
  }

  _end(error = null) {
    if (this.#closed) return;
    this.#closed = true;
    this.id = null;
    this.#error = error;
    for (const l of this.#listeners) l.wake?.(); // iterators see the end
    for (const fn of this.#endListeners) this.#client._callback(fn, error);
  }

  // Keeps `services` equal to the state the events describe.
  #apply({ event, data }) {
    switch (event) {
      case 'registry_loaded':
        this.services = new Map(data.services.map((s) => [s.instance_id, s]));
        break;
      case 'service_registered':
      case 'service_state_changed':
      case 'endpoint_updated':
      case 'health_check_result':
        this.services.set(data.service.instance_id, data.service);
        break;
      case 'service_deregistered':
        this.services.delete(data.service.instance_id);
        break;
      default:
        break;
    }
  }
}
