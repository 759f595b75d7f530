// registry-client: the JavaScript client of registryd (docs/protocol.md).
export { RegistryClient, defaultOptions } from './client.js';
export { RegistryError, clientErrorCodes } from './errors.js';
export { Subscription } from './subscription.js';
export { ReplExecution } from './repl_execution.js';
export { ServiceHandle } from './service_handle.js';
export { backoffDelay, defaultBackoff } from './backoff.js';
