// What registerService() returns: a registration whose lease the client keeps
// alive (keepalive every third of the TTL by default) until close(). A lease
// that is gone anyway (it expired while the daemon was unreachable for longer
// than the TTL) is replaced by a new registration, reported as
// 'reregistered'. Session-bound registrations are also renewed by the client
// on every reconnect.

export class ServiceHandle {
  #client;
  #params;
  #intervalMs;
  #timer = null;
  #closed = false;
  #listeners = new Map();

  instanceId = null;
  leaseId = null;
  ttlSeconds = null;
  expiresAtMs = null;

  constructor(client, service, { ttlSeconds = 30, sessionBound = false, keepaliveIntervalMs } = {}) {
    this.#client = client;
    this.#params = { service: { ...service }, ttl_seconds: ttlSeconds };
    if (sessionBound) this.#params.session_bound = true;
    this.#intervalMs = keepaliveIntervalMs ?? Math.max(100, (ttlSeconds * 1000) / 3);
  }

  get closed() {
    return this.#closed;
  }

  // 'renewed' (keepalive data), 'reregistered' (register data), 'error'.
  on(name, fn) {
    if (!this.#listeners.has(name)) this.#listeners.set(name, new Set());
    this.#listeners.get(name).add(fn);
    return () => this.#listeners.get(name)?.delete(fn);
  }

  setState(state, reason) {
    return this.#client.setState(this.instanceId, state, reason);
  }

  // Re-registers under the same lease with `changes` merged into the service.
  async update(changes) {
    const params = { ...this.#params, service: { ...this.#params.service, ...changes } };
    const data = await this.#client.register({ ...params, lease_id: this.leaseId });
    this.#params = params;
    this.#apply(data);
    return data;
  }

  // Stops renewing; deregisters unless {deregister: false} (then the lease
  // runs out at its TTL).
  async close({ deregister = true } = {}) {
    if (this.#closed) return;
    this._stop();
    this.#client._forgetHandle(this);
    this.#client._forgetSessionRegistration(this.instanceId);
    if (!deregister) return;
    try {
      await this.#client.deregister(this.instanceId);
    } catch (err) {
      if (err.code !== 'not_found') throw err;
    }
  }

  // ---- called by the client ---------------------------------------------

  async _start() {
    const data = await this.#client.register(this.#params);
    this.#apply(data);
    this.#params.service.instance_id = data.instance_id; // a generated id is kept on re-registration
    if (this.#params.session_bound) {
      this.#client._onSessionRenewed(this.instanceId, (d) => this.#renewed('reregistered', d));
    }
    this.#schedule();
  }

  _stop() {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #schedule() {
    if (this.#closed) return;
    this.#timer = setTimeout(() => this.#keepalive(), this.#intervalMs);
  }

  async #keepalive() {
    try {
      this.#renewed('renewed', await this.#client.keepalive(this.leaseId));
    } catch (err) {
      if (this.#closed) return;
      if (err.code === 'lease_not_found') {
        try {
          this.#renewed('reregistered', await this.#client.register(this.#params));
        } catch (err2) {
          this.#emit('error', err2);
        }
      } else {
        this.#emit('error', err); // timeouts and lost connections: the next round retries
      }
    }
    this.#schedule();
  }

  #renewed(name, data) {
    if (this.#closed) return;
    this.#apply(data);
    this.#emit(name, data);
  }

  #apply(data) {
    this.instanceId = data.instance_id;
    this.leaseId = data.lease_id;
    this.ttlSeconds = data.ttl_seconds;
    this.expiresAtMs = data.expires_at_ms;
  }

  #emit(name, value) {
    const fns = this.#listeners.get(name);
    if (name === 'error' && !fns?.size) this.#client._report(value);
    for (const fn of fns ?? []) fn(value);
  }
}
