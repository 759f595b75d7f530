// A TCP proxy on loopback in front of registryd, so a test can take the
// network away from a client without touching the daemon: cut() drops every
// connection and refuses new ones until restore(); stall() keeps connections
// up but holds the server's bytes back (a request then times out).
import net from 'node:net';

export class Proxy {
  #server;
  #target;
  #pairs = new Set();
  #refusing = false;
  #stalled = false;
  port = 0;
  connections = 0; // accepted and forwarded connections, over the proxy's life

  constructor(targetHost, targetPort) {
    this.#target = { host: targetHost, port: targetPort };
    this.#server = net.createServer((client) => this.#accept(client));
  }

  get url() {
    return `ws://127.0.0.1:${this.port}/`;
  }

  async listen() {
    await new Promise((res) => this.#server.listen(0, '127.0.0.1', res));
    this.port = this.#server.address().port;
    return this;
  }

  #accept(client) {
    if (this.#refusing) {
      client.destroy();
      return;
    }
    this.connections += 1;
    const upstream = net.connect(this.#target);
    const pair = { client, upstream, held: [] };
    this.#pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.#pairs.delete(pair);
    };
    client.on('data', (b) => upstream.write(b));
    upstream.on('data', (b) => {
      if (this.#stalled) pair.held.push(b);
      else client.write(b);
    });
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  }

  cut() {
    this.#refusing = true;
    for (const { client, upstream } of this.#pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  restore() {
    this.#refusing = false;
  }

  // While stalled the server's bytes are held back; un-stalling sends them.
  stall(on = true) {
    this.#stalled = on;
    if (on) return;
    for (const pair of this.#pairs) for (const b of pair.held.splice(0)) pair.client.write(b);
  }

  async close() {
    this.cut();
    await new Promise((res) => this.#server.close(res));
  }
}
