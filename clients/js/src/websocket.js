// Picks the WebSocket implementation: an explicit one from the options, the
// platform's global WebSocket (browsers, Node 22+), else the `ws` package
// (Node 20). Both speak the same browser API (onopen/onmessage/onclose/onerror).

let wsPackage;

export async function resolveWebSocket(explicit) {
  if (explicit) return explicit;
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  if (!wsPackage) {
    const name = 'ws'; // a variable keeps browser bundlers from resolving it
    wsPackage = (await import(name)).default;
  }
  return wsPackage;
}

// Whether `Impl` is the `ws` package (loaded here or passed in), which,
// unlike the browsers' WebSocket, takes HTTP headers in a third constructor
// argument; it is the one that is also a Node EventEmitter.
function acceptsHeaders(Impl) {
  return Impl === wsPackage || typeof Impl.prototype?.on === 'function';
}

// Opens a socket to `url`. The token goes in an `Authorization: Bearer`
// header where the implementation can send headers, otherwise (browsers) in
// an `access_token` query parameter. registryd does not check tokens yet and
// ignores both (it neither reads headers nor logs the request target), so a
// token is harmless until the server starts to require one.
export function openSocket(Impl, url, token) {
  if (!token) return new Impl(url);
  if (acceptsHeaders(Impl)) return new Impl(url, [], { headers: { Authorization: `Bearer ${token}` } });
  const u = new URL(url);
  u.searchParams.set('access_token', token);
  return new Impl(u.toString());
}
