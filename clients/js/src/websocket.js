// Picks the WebSocket implementation: an explicit one from the options, the
// platform's global WebSocket (browsers, Node 22+), else the `ws` package
// (Node 20). Both speak the same browser API (onopen/onmessage/onclose/onerror).
// In Node, a private CA (`ca`) selects the `ws` package even where a global
// WebSocket exists: only it takes TLS options.

let wsPackage;

const inNode = typeof process !== 'undefined' && Boolean(process.versions?.node);

export async function resolveWebSocket(explicit, { ca } = {}) {
  if (explicit) return explicit;
  const wantsWs = inNode && Boolean(ca);
  if (typeof globalThis.WebSocket === 'function' && !wantsWs) return globalThis.WebSocket;
  if (!wsPackage) {
    const name = 'ws'; // a variable keeps browser bundlers from resolving it
    wsPackage = (await import(name)).default;
  }
  return wsPackage;
}

// Whether `Impl` is the `ws` package (loaded here or passed in), which,
// unlike the browsers' WebSocket, takes HTTP headers and TLS options in a
// third constructor argument; it is the one that is also a Node EventEmitter.
function acceptsHeaders(Impl) {
  return Impl === wsPackage || typeof Impl.prototype?.on === 'function';
}

// Opens a socket to `url`. The token goes in an `Authorization: Bearer`
// header where the implementation can send headers, otherwise (browsers) in
// an `access_token` query parameter; registryd accepts either. `ca` (PEM)
// is the CA that signed a wss:// server's certificate, when it is not one
// the platform trusts: `ws` only (a browser trusts its own store).
export function openSocket(Impl, url, { token, ca } = {}) {
  if (!token && !ca) return new Impl(url);
  if (acceptsHeaders(Impl)) {
    const options = {};
    if (token) options.headers = { Authorization: `Bearer ${token}` };
    if (ca) options.ca = ca;
    return new Impl(url, [], options);
  }
  if (ca) throw new Error('the `ca` option needs the `ws` package (Node); a browser uses the CAs it trusts');
  const u = new URL(url);
  u.searchParams.set('access_token', token);
  return new Impl(u.toString());
}

// The HTTP status of a refused upgrade, from the error `ws` reports
// ("Unexpected server response: 401"); undefined where it is not known (a
// browser does not expose it).
export function upgradeStatus(error) {
  const m = /Unexpected server response: (\d{3})/.exec(error?.message ?? '');
  return m ? Number(m[1]) : undefined;
}
