// The console's one connection to registryd, on the page's own origin, and
// the sign-in when access control is on. The token lives in sessionStorage:
// it is this tab's only, and gone when the tab closes.

import { RegistryClient } from '../../js/src/index.js';

const tokenKey = 'registry-console-token';

export function storedToken() {
  return sessionStorage.getItem(tokenKey) ?? '';
}

export function forgetToken() {
  sessionStorage.removeItem(tokenKey);
}

export function keepToken(token) {
  sessionStorage.setItem(tokenKey, token);
}

// What the HTTP view says of `token` (the WebSocket's access rules): 'ok',
// 'unauthorized' (no or a wrong token), 'forbidden' or 'unreachable'. A
// browser cannot read a refused WebSocket upgrade's status, so this asks first.
export async function probe(token) {
  try {
    const r = await fetch('/v1/services?limit=1', {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      cache: 'no-store',
    });
    if (r.status === 401) return 'unauthorized';
    if (r.status === 403) return 'forbidden';
    return r.ok ? 'ok' : 'unreachable';
  } catch {
    return 'unreachable';
  }
}

export function socketUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/`;
}

export function connect(token) {
  return new RegistryClient(socketUrl(), { token: token || undefined, reconnect: { maxDelayMs: 5000 } });
}
