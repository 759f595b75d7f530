// The one error class of the client. `code` is either a protocol error code
// from docs/protocol.md (invalid_request, not_found, unknown_action, ...) or
// one of the client's own codes, which never collide with the server's:
//
//   timeout          no response within the request timeout
//   not_connected    no connection within the wait bound (or waiting disabled)
//   connection_lost  the connection dropped after the request was sent; the
//                    server may or may not have carried it out
//   closed           the client was closed
//   file_unreadable  a local file (a package to upload) cannot be read
//   unauthorized     registryd refused the connection with HTTP 401 at the
//                    upgrade (no token, or one it does not accept)
export class RegistryError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'RegistryError';
    this.code = code;
    if (details.action !== undefined) this.action = details.action;
    if (details.cause !== undefined) this.cause = details.cause;
  }

  // The error of a response frame: {"error": {"code", "message"}}.
  static fromResponse(error, action) {
    const code = typeof error?.code === 'string' ? error.code : 'internal';
    const message = typeof error?.message === 'string' ? error.message : 'malformed error response';
    return new RegistryError(code, message, { action });
  }
}

// Codes the client produces itself (as opposed to the server's).
export const clientErrorCodes = Object.freeze([
  'timeout',
  'not_connected',
  'connection_lost',
  'closed',
  'file_unreadable',
  'unauthorized',
]);
