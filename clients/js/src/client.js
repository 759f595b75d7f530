// RegistryClient: registryd's WebSocket protocol (docs/protocol.md) as one
// promise-returning method per action, over a connection that reconnects by
// itself.
//
// - A request made while disconnected waits for the connection, at most
//   `connectWaitMs`, then fails with `not_connected` (naming the last
//   connection error). A sent request fails with `timeout` after
//   `requestTimeoutMs`, or with `connection_lost` when the connection drops
//   first (it is not re-sent: the server may have carried it out).
// - Reconnects use exponential backoff with jitter (backoff.js). After each
//   reconnect the client first renews its session-bound registrations (a
//   re-register under the same lease, or a new lease if that one is gone),
//   then re-subscribes every subscription from the last revision it saw
//   (subscription.js), then sends the requests that waited.
// - Several URLs (several registryd on one etcd: one writer, standbys that
//   serve reads and subscriptions): a failed connect or a lost connection
//   goes on to the next URL, round robin, the backoff applying once per full
//   round so that a dead registryd does not slow the way to a live one. A
//   request answered `not_writer` (a standby's answer to a write: it was not
//   carried out) moves the connection to the next URL and is sent again
//   there, at most once per URL; the connection then stays where writes
//   succeed. Moving is a reconnect like any other: what was in flight on the
//   old connection fails with `connection_lost`, subscriptions resume with
//   from_revision (the same revisions on every registryd).

import { backoffDelay, defaultBackoff } from './backoff.js';
import { RegistryError } from './errors.js';
import { executionLost, ReplExecution } from './repl_execution.js';
import { ServiceHandle } from './service_handle.js';
import { Subscription } from './subscription.js';
import { openSocket, resolveWebSocket, upgradeStatus } from './websocket.js';

// An ended socket keeps a no-op error handler: `ws` throws an 'error' event
// that nobody listens to (closing a socket that is still connecting emits one).
const ignore = () => {};

// The longest delay setTimeout keeps (a longer one fires at once): "no
// timeout" for a request that may wait as long as it takes (a queued create).
const MAX_TIMER_MS = 2 ** 31 - 1;
// Moving to the writer, the client waits this long at most for the answers
// to the other requests in flight on the standby before it leaves.
const leaveGraceMs = 1000;

export const defaultOptions = Object.freeze({
  token: undefined,
  ca: undefined,
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 5_000,
  connectWaitMs: 10_000,
  reconnect: defaultBackoff,
  WebSocket: undefined,
});

// The RegistryError of an upgrade registryd refused: 401 (no token, or one
// it does not accept) is `unauthorized`, 403 (an Origin it does not allow)
// `forbidden`; null for any other error.
function refusal(err) {
  const status = upgradeStatus(err);
  if (status === 401) {
    return new RegistryError(
      'unauthorized',
      'registryd refused the connection (HTTP 401): a valid token is needed (--token or REGISTRY_TOKEN)',
      { cause: err },
    );
  }
  if (status === 403) {
    return new RegistryError('forbidden', 'registryd refused the connection (HTTP 403): origin not allowed', {
      cause: err,
    });
  }
  return null;
}

export class RegistryClient {
  #urls; // frozen; tried round robin
  #index = 0; // the URL of the current (or next) connection
  #tried = 0; // connection attempts started in the current round of URLs
  #openUrl = null; // the URL of the last connection that opened
  #leaveReason = null; // why the client left #openUrl: 'not_writer' | 'connection_lost'
  #leaving = null; // moving to the writer: the bound on waiting for the answers in flight
  #opts;
  #ws = null;
  #state = 'idle'; // idle | connecting | open | waiting (to reconnect) | closed
  #nextId = 1;
  #pending = new Map(); // request id -> entry (sent, awaiting the response)
  #late = new Map(); // request id -> onData of a request that timed out (this connection)
  #queue = []; // entries waiting for a connection
  #attempt = 0; // rounds of URLs (with one URL, attempts) since the last connection that lasted
  #openedAt = 0;
  #lastError = null;
  #reconnectTimer = null;
  #subscriptions = new Set();
  #streams = new Set(); // subscriptions the server opened (requestStream): not resumable
  #executions = new Map(); // repl_execute request id -> ReplExecution (current connection)
  #bySubscriptionId = new Map(); // server subscription id -> Subscription (current connection)
  #sessionRegistrations = new Map(); // instance_id -> {params, leaseId, onRenewed}
  #handles = new Set();
  #timers = new Set(); // retries of session-bound renewals, cleared by close()
  #listeners = new Map(); // client event name -> Set<fn>

  // `urls`: one URL (a string or URL), or several (an array): every
  // registryd sharing one registry.
  constructor(urls, options = {}) {
    const list = (Array.isArray(urls) ? urls : [urls]).map(String);
    if (list.length === 0) throw new TypeError('RegistryClient: no URL given');
    this.#urls = Object.freeze(list);
    this.#opts = { ...defaultOptions, ...options, reconnect: { ...defaultBackoff, ...options.reconnect } };
  }

  // The URL of the current connection (or of the next attempt).
  get url() {
    return this.#urls[this.#index];
  }

  get urls() {
    return this.#urls;
  }

  // 'idle', 'connecting', 'open', 'waiting' (for the next reconnect attempt) or 'closed'.
  get state() {
    return this.#state;
  }

  // ---- actions (docs/protocol.md): one small method each ----------------
  //
  // Params are the protocol's, unchanged (snake_case); the promise resolves
  // to the response's `data` or rejects with a RegistryError.

  async register(params, options) {
    const data = await this.request('register', params, options);
    if (params.session_bound) this.#trackSessionRegistration(params, data);
    return data;
  }

  keepalive(leaseId, options) {
    return this.request('keepalive', typeof leaseId === 'object' ? leaseId : { lease_id: leaseId }, options);
  }

  async deregister(instanceId, options) {
    const params = typeof instanceId === 'object' ? instanceId : { instance_id: instanceId };
    try {
      const data = await this.request('deregister', params, options);
      this.#sessionRegistrations.delete(params.instance_id);
      return data;
    } catch (err) {
      if (err.code === 'not_found') this.#sessionRegistrations.delete(params.instance_id);
      throw err;
    }
  }

  // `instanceId` or {instance_id} resolves to {service}; {name} to {revision,
  // services}, every page gathered (with `limit` or `continue`: that one page).
  getService(query, options) {
    if (typeof query === 'object' && query.name !== undefined) {
      return this.#gather('get_service', 'services', query, options);
    }
    return this.request('get_service', typeof query === 'object' ? query : { instance_id: query }, options);
  }

  // Every match, gathered from all the pages of one listing (one revision).
  // With `limit` or `continue` in `filter`: that one page, as the server sent it.
  listServices(filter = {}, options) {
    return this.#gather('list_services', 'services', filter, options);
  }

  listEndpoints(filter = {}, options) {
    return this.#gather('list_endpoints', 'endpoints', filter, options);
  }

  // The pages of one listing, as an async iterator: each page's data
  // ({revision, services, continue?, remaining?}), every page of the same
  // revision. `filter.limit` bounds each page (the server bounds it too). A
  // listing the server no longer holds rejects with code 'continue_expired'
  // (a reconnect drops the connection's listings): list again.
  listServicesPages(filter = {}, options) {
    return this.#pages('list_services', filter, options);
  }

  listEndpointsPages(filter = {}, options) {
    return this.#pages('list_endpoints', filter, options);
  }

  async *#pages(action, filter, options) {
    let page = await this.request(action, filter, options);
    yield page;
    while (page.continue !== undefined) {
      const params = { continue: page.continue };
      if (filter.limit !== undefined) params.limit = filter.limit;
      page = await this.request(action, params, options);
      yield page;
    }
  }

  async #gather(action, key, filter, options) {
    if (filter.limit !== undefined || filter.continue !== undefined) return this.request(action, filter, options);
    let all = null;
    for await (const page of this.#pages(action, filter, options)) {
      if (all === null) all = { revision: page.revision, [key]: [] };
      all[key].push(...page[key]);
    }
    return all;
  }

  setState(instanceId, state, reason, options) {
    const params = typeof instanceId === 'object' ? instanceId : { instance_id: instanceId, state };
    if (reason !== undefined && typeof instanceId !== 'object') params.reason = reason;
    return this.request('set_state', params, options);
  }

  // The lease holder's own health report: {lease_id, instance_id, status:
  // 'passing' | 'warning' | 'critical', output?, check?} (what a ttl check waits for).
  reportHealth(params, options) {
    return this.request('report_health', params, options);
  }

  // Resolves to a Subscription once the server accepted it. `params` are the
  // protocol's (events, services, from_revision, snapshot).
  async subscribe(params = {}, options) {
    const sub = new Subscription(this, params);
    this.#subscriptions.add(sub);
    try {
      await this.#subscribeOnce(sub, options);
    } catch (err) {
      this.#subscriptions.delete(sub);
      sub._end(err);
      throw err;
    }
    return sub;
  }

  // Ends `subscription` (a Subscription); no event of it follows.
  async unsubscribe(subscription, options) {
    this.#subscriptions.delete(subscription);
    this.#streams.delete(subscription);
    const id = subscription.id;
    subscription._end();
    if (id === null || this.#state !== 'open') return { subscription: id };
    this.#bySubscriptionId.delete(id);
    try {
      return await this.request('unsubscribe', { subscription: id }, options);
    } catch (err) {
      if (err.code === 'not_found' || err.code === 'connection_lost') return { subscription: id };
      throw err;
    }
  }

  // The actions below belong to capabilities that registryd may not have yet
  // (containers, REPL, package deployment); a daemon without them answers
  // `unknown_action`, which rejects as a RegistryError with that code.

  listNodes(params = {}, options) {
    return this.request('list_nodes', params, options);
  }

  // With `queue: true`, a create that finds every engine it may use at
  // capacity waits for a free slot and resolves once its container is
  // created: options.onQueued({queue_id, position}) gets each
  // container_queued event. Such a create has no timeout unless
  // options.timeoutMs gives one; one that times out is cancelled
  // (container_cancel_queued), so the server does not create it for nobody.
  async containerCreate(params, options = {}) {
    if (params?.queue !== true) return this.request('container_create', params, options);
    const { onQueued, onEvent, ...requestOptions } = options;
    let queueId = null;
    const onQueueEvent = (e) => {
      if (e.event === 'container_queued') {
        queueId = e.data.queue_id;
        if (onQueued) onQueued(e.data);
      }
      if (onEvent) onEvent(e);
    };
    try {
      return await this.request('container_create', params, {
        timeoutMs: MAX_TIMER_MS,
        ...requestOptions,
        onEvent: onQueueEvent,
      });
    } catch (err) {
      if (err?.code === 'timeout' && queueId !== null) {
        this.containerCancelQueued(queueId).catch(() => {});
      }
      throw err;
    }
  }

  // `queueId` or {queue_id}: takes a queued create out of the queue (its
  // containerCreate rejects with `unavailable`); resolves to {queue_id}.
  containerCancelQueued(query, options) {
    return this.request('container_cancel_queued', typeof query === 'object' ? query : { queue_id: query }, options);
  }

  containerList(params = {}, options) {
    return this.request('container_list', params, options);
  }

  // `containerId` or {container_id} resolves to {container}: one managed
  // container in full (command, limits, labels, times, exit code, error).
  containerGet(query, options) {
    return this.request('container_get', typeof query === 'object' ? query : { container_id: query }, options);
  }

  // Without `follow`: {container_id, output}. With `follow: true` the
  // response opens a subscription of container_log events, so this is
  // requestStream(): {data, subscription}.
  containerLogs(params, options) {
    if (params?.follow === true) return this.requestStream('container_logs', params, options);
    return this.request('container_logs', params, options);
  }

  containerStop(params, options) {
    return this.request('container_stop', params, options);
  }

  containerRemove(params, options) {
    return this.request('container_remove', params, options);
  }

  containerExtend(params, options) {
    return this.request('container_extend', params, options);
  }

  // The response opens a subscription of image_pull_progress events:
  // {data, subscription}, as requestStream().
  imagePull(params, options) {
    return this.requestStream('image_pull', params, options);
  }

  replLanguages(params = {}, options) {
    return this.request('repl_languages', params, options);
  }

  replExecute(params, options) {
    return this.request('repl_execute', params, options);
  }

  replCancel(params, options) {
    return this.request('repl_cancel', params, options);
  }

  // A finished execution's result, kept by registryd for
  // repl.result_retention_seconds (or {execution_id, state: 'queued' |
  // 'running'} while it has not finished); takes the id or {execution_id}.
  replResult(executionId, options) {
    const params = typeof executionId === 'object' ? executionId : { execution_id: executionId };
    return this.request('repl_result', params, options);
  }

  // The caller's kept results, newest first, without their output: {limit, owner (admins)}.
  replHistory(params = {}, options) {
    return this.request('repl_history', params, options);
  }

  // Starts a REPL execution (repl_execute) and resolves to a ReplExecution
  // once registryd accepted it: its `output` (an async iterable) and its
  // `finished` promise carry the events registryd sends this connection
  // about it. options: those of request(), and onQueued(position) for the
  // repl_queued events.
  async execute(params, options = {}) {
    const { onQueued, ...requestOptions } = options;
    let execution = null;
    let settled = false;
    await this.#request('repl_execute', params, requestOptions, (data, requestId) => {
      if (settled) {
        // The request timed out: nobody follows this execution.
        this.replCancel({ execution_id: data.execution_id }).catch(() => {});
        return;
      }
      execution = new ReplExecution(this, requestId, data, onQueued);
      this.#executions.set(requestId, execution);
    }).finally(() => {
      settled = true;
    });
    return execution;
  }

  // With `file` (a path in Node; a Blob or File anywhere), uploads it in
  // chunks with its sha256 first (package_upload.js); otherwise `path` or
  // `upload_id`.
  async deployPackage(params, options) {
    if (params?.file === undefined) return this.request('deploy_package', params, options);
    const { deployPackageFile } = await import('./package_upload.js');
    return deployPackageFile(this, params, options);
  }

  async uploadPackage(file, options) {
    const { uploadPackage } = await import('./package_upload.js');
    return uploadPackage(this, file, options);
  }

  undeploy(params, options) {
    return this.request('undeploy', params, options);
  }

  serviceAction(params, options) {
    return this.request('service_action', params, options);
  }

  // ---- higher level -----------------------------------------------------

  // Registers `service` and keeps its lease alive until handle.close().
  async registerService(service, options = {}) {
    const handle = new ServiceHandle(this, service, options);
    await handle._start();
    this.#handles.add(handle);
    return handle;
  }

  _forgetHandle(handle) {
    this.#handles.delete(handle);
  }

  // ---- the request path -------------------------------------------------

  // Sends {"id","type":"request","action","params"} and resolves to `data`.
  // options: timeoutMs (after sending), connectWaitMs (waiting for a
  // connection; 0 fails at once when disconnected), onEvent (events the
  // server sends about this request, marked with its id as `request_id`).
  request(action, params = {}, options = {}) {
    return this.#request(action, params, options, null);
  }

  // For actions whose response opens a subscription of the server's making
  // (`data.subscription`: followed container logs, image pulls): resolves to
  // {data, subscription}. Such a stream cannot be resumed; when the
  // connection drops it ends with a `connection_lost` error.
  async requestStream(action, params = {}, options = {}) {
    let subscription = null;
    let settled = false;
    const data = await this.#request(action, params, options, (d) => {
      if (typeof d?.subscription !== 'string') return;
      if (settled) {
        // The request timed out: nobody reads this stream.
        this.request('unsubscribe', { subscription: d.subscription }).catch(() => {});
        return;
      }
      subscription = new Subscription(this, {});
      this.#streams.add(subscription);
      this.#bySubscriptionId.set(d.subscription, subscription);
      subscription._attached(d.subscription, 0);
    }).finally(() => {
      settled = true;
    });
    if (!subscription) throw new RegistryError('internal', `${action}: the response opened no subscription`, { action });
    return { data, subscription };
  }

  #request(action, params, options, onData) {
    if (this.#state === 'closed') {
      return Promise.reject(new RegistryError('closed', `client closed; cannot send ${action}`, { action }));
    }
    const id = String(this.#nextId++);
    const frame = JSON.stringify({ id, type: 'request', action, params });
    return new Promise((resolve, reject) => {
      const entry = {
        id,
        action,
        frame,
        resolve,
        reject,
        onData,
        onEvent: options.onEvent,
        timeoutMs: options.timeoutMs ?? this.#opts.requestTimeoutMs,
        waitMs: options.connectWaitMs ?? this.#opts.connectWaitMs,
        notWriter: 0, // how many registryd answered it not_writer
        timer: null,
        waitTimer: null,
      };
      if (this.#state === 'open' && (this.#leaving === null || entry.waitMs <= 0)) {
        this.#send(entry);
        return;
      }
      if (entry.waitMs <= 0) {
        reject(this.#notConnected(action));
        return;
      }
      this.#enqueue(entry);
      this.#ensureConnecting();
    });
  }

  // `entry` waits for the next connection, at most entry.waitMs.
  #enqueue(entry) {
    entry.waitTimer = setTimeout(() => {
      const i = this.#queue.indexOf(entry);
      if (i >= 0) this.#queue.splice(i, 1);
      entry.reject(this.#notConnected(entry.action, entry.waitMs));
    }, entry.waitMs);
    this.#queue.push(entry);
  }

  #notConnected(action, waitedMs) {
    const why = this.#lastError
      ? `: ${this.#lastError.message}`
      : this.#state === 'connecting' ? ': still connecting' : '';
    const waited = waitedMs ? ` within ${waitedMs} ms` : '';
    const where = this.#urls.length === 1 ? this.#urls[0] : `any of ${this.#urls.join(', ')}`;
    return new RegistryError('not_connected', `not connected to ${where}${waited}${why}`, {
      action,
      cause: this.#lastError ?? undefined,
    });
  }

  #send(entry) {
    this.#pending.set(entry.id, entry);
    entry.timer = setTimeout(() => {
      this.#pending.delete(entry.id);
      // A subscribe that timed out may still be answered: its bookkeeping
      // then still runs (and ends a server subscription nobody waits for).
      if (entry.onData) this.#late.set(entry.id, entry.onData);
      entry.reject(
        new RegistryError('timeout', `${entry.action}: no response within ${entry.timeoutMs} ms`, {
          action: entry.action,
        }),
      );
    }, entry.timeoutMs);
    try {
      this.#ws.send(entry.frame);
    } catch (err) {
      this.#settle(entry, new RegistryError('connection_lost', `${entry.action}: send failed: ${err.message}`));
    }
  }

  #settle(entry, error, data) {
    clearTimeout(entry.timer);
    clearTimeout(entry.waitTimer);
    this.#pending.delete(entry.id);
    if (error) entry.reject(error);
    else entry.resolve(data);
    if (this.#leaving !== null && this.#pending.size === 0) this.#leave();
  }

  // ---- connection -------------------------------------------------------

  // Resolves once connected; rejects with `not_connected` after connectWaitMs.
  async connect(options = {}) {
    if (this.#state === 'open') return;
    if (this.#state === 'closed') throw new RegistryError('closed', 'client closed; cannot connect', { action: 'connect' });
    // An empty request that is never sent: it waits in the queue like any other.
    await new Promise((resolve, reject) => {
      const waitMs = options.connectWaitMs ?? this.#opts.connectWaitMs;
      this.#enqueue({ id: null, action: 'connect', resolve, reject, waitMs, waitTimer: null, connectOnly: true });
      this.#ensureConnecting();
    });
  }

  #ensureConnecting() {
    if (this.#state === 'idle') this.#openConnection();
  }

  async #openConnection() {
    this.#state = 'connecting';
    let ws;
    try {
      const { token, ca } = this.#opts;
      const Impl = await resolveWebSocket(this.#opts.WebSocket, { ca });
      if (this.#state === 'closed') return;
      this.#tried += 1;
      ws = openSocket(Impl, this.url, { token, ca });
    } catch (err) {
      this.#lastError = err;
      this.#scheduleReconnect();
      return;
    }
    this.#ws = ws;
    const connectTimer = setTimeout(() => {
      this.#lastError = new Error(`connection not established within ${this.#opts.connectTimeoutMs} ms`);
      ws.close();
      this.#connectionEnded(ws, {});
    }, this.#opts.connectTimeoutMs);
    ws.onopen = () => {
      clearTimeout(connectTimer);
      this.#connected(ws);
    };
    ws.onmessage = (e) => this.#onMessage(ws, e.data);
    ws.onerror = (e) => {
      const err = e?.error ?? new Error(e?.message || 'WebSocket error');
      this.#lastError = refusal(err) ?? err;
    };
    ws.onclose = (e) => {
      clearTimeout(connectTimer);
      this.#connectionEnded(ws, e);
    };
  }

  #connected(ws) {
    if (ws !== this.#ws || this.#state === 'closed') return;
    this.#state = 'open';
    this.#openedAt = Date.now();
    this.#lastError = null;
    const from = this.#openUrl;
    this.#openUrl = this.url;
    this.#emit('open', { url: this.url });
    if (from !== null && from !== this.url) this.#emit('moved', { from, to: this.url, reason: this.#leaveReason });
    for (const rec of this.#sessionRegistrations.values()) this.#renewSessionRegistration(rec);
    for (const sub of this.#subscriptions) {
      if (!sub._needsResubscribe) continue;
      this.#subscribeOnce(sub).catch((err) => {
        if (err.code === 'connection_lost' || err.code === 'closed') return; // the next reconnect retries
        this.#subscriptions.delete(sub);
        sub._end(err);
        this.#report(err);
      });
    }
    const waiting = this.#queue.splice(0);
    for (const entry of waiting) {
      clearTimeout(entry.waitTimer);
      if (entry.connectOnly) entry.resolve();
      else this.#send(entry);
    }
  }

  // `moving`: the client left an open connection for the next URL (a write
  // answered not_writer), which it tries at once.
  #connectionEnded(ws, e, moving = false) {
    if (ws !== this.#ws) return;
    clearTimeout(this.#leaving);
    this.#leaving = null;
    this.#ws = null;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = ignore;
    const wasOpen = this.#state === 'open';
    for (const entry of [...this.#pending.values()]) {
      this.#settle(
        entry,
        new RegistryError('connection_lost', `${entry.action}: connection lost before the response`, {
          action: entry.action,
        }),
      );
    }
    this.#bySubscriptionId.clear();
    this.#late.clear();
    for (const sub of this.#subscriptions) sub._detached();
    for (const stream of this.#streams) {
      stream._end(new RegistryError('connection_lost', 'connection lost; the stream cannot be resumed'));
    }
    this.#streams.clear();
    for (const execution of this.#executions.values()) execution._end(executionLost(execution));
    this.#executions.clear();
    if (this.#state === 'closed') return;
    // A connection closed right after it opened (a daemon at its connection
    // limit, say) does not reset the backoff, so it cannot become a tight loop.
    // Such a connection also starts a new round of URLs.
    if (wasOpen && Date.now() - this.#openedAt >= 1000) {
      this.#attempt = 0;
      this.#tried = 0;
    }
    // Moving on from the URL left, the next one of the round comes at once.
    if (moving) this.#tried = Math.max(this.#tried, 1);
    if (wasOpen) this.#leaveReason = moving ? 'not_writer' : 'connection_lost';
    if (wasOpen) {
      const reason = e.reason ? `: ${e.reason}` : '';
      this.#lastError = new Error(`connection closed (code ${e.code ?? 'none'}${reason})`);
      this.#emit('close', { code: e.code, reason: e.reason });
    }
    // Refused at the upgrade: waiting requests fail now with the reason (a
    // retry with the same credentials would be refused again); reconnecting
    // goes on, for a token the server may accept later.
    if (this.#lastError instanceof RegistryError) {
      const refused = this.#lastError;
      for (const entry of this.#queue.splice(0)) {
        clearTimeout(entry.waitTimer);
        entry.reject(new RegistryError(refused.code, refused.message, { action: entry.action, cause: refused.cause }));
      }
    }
    this.#scheduleReconnect();
  }

  // The next attempt goes to the next URL: at once within a round of URLs,
  // after the backoff delay when a round starts (with one URL, every time).
  #scheduleReconnect() {
    if (this.#state === 'closed') return;
    this.#state = 'waiting';
    this.#index = (this.#index + 1) % this.#urls.length;
    let delayMs = 0;
    if (this.#tried === 0 || this.#tried >= this.#urls.length) {
      this.#tried = 0;
      delayMs = backoffDelay(this.#attempt, this.#opts.reconnect);
      this.#attempt += 1;
    }
    this.#emit('reconnecting', { attempt: this.#attempt, delayMs, error: this.#lastError, url: this.url });
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = null;
      if (this.#state === 'waiting') this.#openConnection();
    }, delayMs);
  }

  #onMessage(ws, raw) {
    if (ws !== this.#ws) return;
    let msg;
    try {
      msg = JSON.parse(typeof raw === 'string' ? raw : String(raw));
    } catch {
      this.#report(new RegistryError('internal', 'server sent a frame that is not JSON'));
      return;
    }
    if (msg.type === 'event') {
      if (msg.subscription !== undefined) {
        this.#bySubscriptionId.get(msg.subscription)?._deliver(msg);
        return;
      }
      // Events about one request: progress before its response
      // (deploy_package), or an execution's events after it (repl_execute).
      const entry = msg.request_id === undefined ? undefined : this.#pending.get(msg.request_id);
      const execution = msg.request_id === undefined ? undefined : this.#executions.get(msg.request_id);
      if (entry?.onEvent) {
        this.#callback(entry.onEvent, { event: msg.event, data: msg.data });
      } else if (execution) {
        execution._deliver(msg);
        if (msg.event === 'repl_finished') this.#executions.delete(msg.request_id);
      } else {
        this.#emit('event', { event: msg.event, request_id: msg.request_id, data: msg.data });
      }
      return;
    }
    if (msg.type !== 'response') return;
    if (msg.id === null) {
      this.#report(RegistryError.fromResponse(msg.error));
      return;
    }
    const entry = this.#pending.get(msg.id);
    if (!entry) {
      // It timed out already.
      const onData = this.#late.get(msg.id);
      this.#late.delete(msg.id);
      if (onData && msg.data) onData(msg.data, msg.id);
      return;
    }
    if (msg.error) {
      const error = RegistryError.fromResponse(msg.error, entry.action);
      if (error.code === 'not_writer' && this.#toWriter(entry)) return;
      this.#settle(entry, error);
      return;
    }
    // Synchronous bookkeeping before any event that follows in the same read
    // (a promise continuation would run too late).
    entry.onData?.(msg.data, msg.id);
    this.#settle(entry, null, msg.data);
  }

  // A request answered not_writer was not carried out: unless every URL had
  // its turn, it waits for the connection to the next URL, where it is sent
  // again. Returns whether it did. The client leaves once the other requests
  // in flight are answered (writes sent at the same time are answered
  // not_writer too, and move along), or after leaveGraceMs.
  #toWriter(entry) {
    entry.notWriter += 1;
    if (entry.notWriter >= this.#urls.length || entry.waitMs <= 0) return false;
    clearTimeout(entry.timer);
    this.#pending.delete(entry.id);
    this.#enqueue(entry);
    if (this.#leaving === null) this.#leaving = setTimeout(() => this.#leave(), leaveGraceMs);
    if (this.#pending.size === 0) this.#leave();
    return true;
  }

  #leave() {
    clearTimeout(this.#leaving);
    this.#leaving = null;
    const ws = this.#ws;
    if (!ws) return;
    try {
      ws.close(1000, 'moving to the writer');
    } catch {
      // Closed already: what follows is the same.
    }
    this.#connectionEnded(ws, { code: 1000, reason: 'moving to the writer' }, true);
  }

  // Closes the connection for good: pending and waiting requests reject with
  // `closed`, subscriptions end, service handles stop renewing (their leases
  // then expire at their TTL; close the handles first to deregister).
  async close() {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#leaving);
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    const closed = (action) => new RegistryError('closed', `client closed; ${action} abandoned`, { action });
    for (const entry of [...this.#pending.values()]) this.#settle(entry, closed(entry.action));
    for (const entry of this.#queue.splice(0)) {
      clearTimeout(entry.waitTimer);
      entry.reject(closed(entry.action));
    }
    for (const handle of this.#handles) handle._stop();
    this.#handles.clear();
    for (const sub of [...this.#subscriptions, ...this.#streams]) sub._end();
    this.#subscriptions.clear();
    this.#streams.clear();
    for (const execution of this.#executions.values()) execution._end(closed('repl_execute'));
    this.#executions.clear();
    const ws = this.#ws;
    this.#ws = null;
    if (!ws) return;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, 1000);
      ws.onclose = () => {
        clearTimeout(t);
        resolve();
      };
      ws.onmessage = null;
      ws.onerror = ignore;
      try {
        ws.close(1000);
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  }

  // ---- subscriptions and session-bound registrations across reconnects --

  #subscribeOnce(sub, options) {
    return this.#request('subscribe', sub._subscribeParams(), options ?? {}, (data) => {
      if (sub.closed) {
        // Closed while this (re-)subscribe was on its way: end it on the server too.
        this.request('unsubscribe', { subscription: data.subscription }).catch(() => {});
        return;
      }
      this.#bySubscriptionId.set(data.subscription, sub);
      sub._attached(data.subscription, data.revision);
    });
  }

  #trackSessionRegistration(params, data) {
    const service = { ...params.service, instance_id: data.instance_id };
    const { lease_id, ...rest } = params;
    const prev = this.#sessionRegistrations.get(data.instance_id);
    this.#sessionRegistrations.set(data.instance_id, {
      params: { ...rest, service },
      leaseId: data.lease_id,
      onRenewed: prev?.onRenewed,
    });
  }

  // Called by ServiceHandle to learn about renewals done on reconnect.
  _onSessionRenewed(instanceId, fn) {
    const rec = this.#sessionRegistrations.get(instanceId);
    if (rec) rec.onRenewed = fn;
  }

  _forgetSessionRegistration(instanceId) {
    this.#sessionRegistrations.delete(instanceId);
  }

  // Re-register under the same lease from this connection (which moves the
  // session-bound lease here); if that lease is gone, register anew.
  // One renewal at a time: one whose request moved with the connection (a
  // not_writer answer) goes on there. While no registryd takes writes (a
  // standby taking over) every URL answers not_writer: tried again after the
  // reconnect backoff, until one takes it or the client closes.
  async #renewSessionRegistration(rec) {
    if (rec.renewing) return;
    rec.renewing = true;
    try {
      await this.#renewUntilTaken(rec);
    } finally {
      rec.renewing = false;
    }
  }

  async #renewUntilTaken(rec) {
    const instanceId = rec.params.service.instance_id;
    for (let round = 0; ; round += 1) {
      try {
        let data;
        try {
          data = await this.request('register', { ...rec.params, lease_id: rec.leaseId });
        } catch (err) {
          if (err.code !== 'lease_not_found') throw err;
          data = await this.request('register', rec.params);
        }
        if (this.#sessionRegistrations.get(instanceId) !== rec) return; // deregistered meanwhile
        rec.leaseId = data.lease_id;
        rec.onRenewed?.(data);
        this.#emit('reregistered', data);
        return;
      } catch (err) {
        // The next connection renews it (a retry may have found none).
        if (['connection_lost', 'not_connected', 'closed'].includes(err.code)) return;
        if (err.code !== 'not_writer') {
          this.#report(err);
          return;
        }
      }
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          resolve();
        }, backoffDelay(round, this.#opts.reconnect));
        this.#timers.add(timer);
      });
      if (this.#state === 'closed' || this.#sessionRegistrations.get(instanceId) !== rec) return;
    }
  }

  // ---- client events: open, close, reconnecting, reregistered, error, event
  //
  // 'event' gets {event, request_id, data} for each event frame that no
  // subscription, request or execution of this client takes: e.g. those of an
  // execution started with replExecute() rather than execute().

  on(name, fn) {
    if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
    this.#listeners.get(name).add(fn);
    return () => this.#listeners.get(name)?.delete(fn);
  }

  #emit(name, value) {
    for (const fn of this.#listeners.get(name) ?? []) {
      if (name === 'error') fn(value);
      else this.#callback(fn, value);
    }
  }

  // Calls application code; what it throws is reported, not propagated.
  #callback(fn, value) {
    try {
      fn(value);
    } catch (err) {
      this.#report(err);
    }
  }

  // Errors nobody awaits (a failed re-subscribe, a listener that threw):
  // 'error' listeners get them; without any they go to console.error.
  #report(err) {
    if (this.#listeners.get('error')?.size) this.#emit('error', err);
    else console.error('registry client:', err);
  }

  _report(err) {
    this.#report(err);
  }

  _callback(fn, value) {
    this.#callback(fn, value);
  }
}
