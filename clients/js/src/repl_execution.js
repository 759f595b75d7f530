// One REPL execution as the application sees it (client.execute()): its
// output as an async iterable and its end as a promise.
//
// registryd sends an execution's events (repl_queued, repl_output,
// repl_finished) only to the connection that started it, marked with the
// `request_id` of its repl_execute request, after the response; the client
// routes them here by that id. Output chunks are kept (registryd caps an
// execution's output), so every iterator gets every chunk from the first,
// whenever it starts. When the connection drops the events are gone for good:
// the iterators throw and `finished` rejects with `connection_lost`.

import { RegistryError } from './errors.js';

export class ReplExecution {
  #client;
  #chunks = []; // repl_output data, in order
  #waiters = new Set(); // wake-ups of iterators waiting for the next chunk
  #ended = false;
  #error = null;
  #resolveFinished;
  #rejectFinished;
  #onQueued;

  id;
  created;
  requestId;
  // The last position reported by repl_queued (1: next); null when it never
  // waited or once it runs.
  queuePosition = null;
  // Resolves to repl_finished's data (docs/protocol.md), whatever the ending:
  // an exit, a timeout, the output cap, a cancel, or an `error` of the
  // execution. Rejects only when the events could not arrive (the connection
  // dropped, the client closed).
  finished;

  constructor(client, requestId, data, onQueued) {
    this.#client = client;
    this.requestId = requestId;
    this.id = data.execution_id;
    this.created = data.created;
    this.#onQueued = onQueued;
    this.finished = new Promise((resolve, reject) => {
      this.#resolveFinished = resolve;
      this.#rejectFinished = reject;
    });
    // Whoever reads only the output must not get an unhandled rejection.
    this.finished.catch(() => {});
  }

  // {stream: 'stdout'|'stderr', seq, data} for each write of the program.
  get output() {
    return { [Symbol.asyncIterator]: () => this.#iterate() };
  }

  // Stops the execution (repl_cancel); `finished` then resolves with
  // `cancelled: true`.
  cancel(options) {
    return this.#client.replCancel({ execution_id: this.id }, options);
  }

  async *#iterate() {
    for (let i = 0; ; i++) {
      while (i >= this.#chunks.length && !this.#ended) {
        await new Promise((wake) => this.#waiters.add(wake));
      }
      if (i < this.#chunks.length) {
        yield this.#chunks[i];
        continue;
      }
      if (this.#error) throw this.#error;
      return;
    }
  }

  #wake() {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  // An event frame of this execution (the client matched its request_id).
  _deliver(frame) {
    if (this.#ended) return;
    const { event, data } = frame;
    if (event === 'repl_output') {
      this.#chunks.push({ stream: data.stream, seq: data.seq, data: data.data });
      this.#wake();
    } else if (event === 'repl_queued') {
      this.queuePosition = data.position;
      if (this.#onQueued) this.#client._callback(this.#onQueued, data.position);
    } else if (event === 'repl_finished') {
      this.queuePosition = null;
      this.#ended = true;
      this.#resolveFinished(data);
      this.#wake();
    }
  }

  // The events can no longer arrive.
  _end(error) {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#rejectFinished(error);
    this.#wake();
  }
}

export function executionLost(execution) {
  return new RegistryError(
    'connection_lost',
    `connection lost during execution ${execution.id}; its events cannot be resumed on another connection ` +
      '(repeat repl_execute with its idempotency_key to get its repl_finished)',
    { action: 'repl_execute' },
  );
}
