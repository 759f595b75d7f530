// Type declarations of registry-client (src/index.js). The protocol's shapes
// follow docs/protocol.md; params and data keep the protocol's snake_case.

// ---------------------------------------------------------------- protocol

export type ServiceState = 'registered' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';
export type HealthStatus = 'healthy' | 'warning' | 'critical' | 'unknown';

export type Execution =
  | { kind: 'managed_process'; pid?: number; command?: string }
  | { kind: 'container'; container_id: string; image?: string }
  | { kind: 'systemd_unit'; unit_name: string };

export type Location = { kind: 'local' } | { kind: 'remote'; host: string; ssh_user?: string; ssh_port?: number };

export interface Endpoint {
  name: string;
  address: string;
  port: number;
  protocol: string;
}

/** What a client describes when it registers. */
export interface ServiceDescription {
  name: string;
  instance_id?: string;
  version?: string;
  execution?: Execution;
  location?: Location;
  endpoints?: Endpoint[];
  depends_on?: string[];
  metadata?: Record<string, string>;
}

/** A service instance as the server sends it. */
export type ContainerState = 'created' | 'running' | 'exited' | 'removed' | 'lost';

// The container object (container_list, container events); the times,
// exit code and error only once known.
export interface Container {
  lease_id: number;
  container_id: string;
  name: string;
  image: string;
  engine: string;
  state: ContainerState;
  exit_code?: number;
  ttl_seconds: number;
  created_at_ms: number;
  expires_at_ms: number;
  started_at_ms?: number;
  finished_at_ms?: number;
  error?: string;
}

// A container in full (container_get).
export interface ContainerDetail extends Container {
  command: string[];
  limits: { memory_bytes?: number; cpus?: number; pids?: number };
  labels: Record<string, string>;
}

export interface Service {
  name: string;
  instance_id: string;
  version: string;
  execution: Execution;
  location: Location;
  endpoints: Endpoint[];
  depends_on: string[];
  metadata: Record<string, string>;
  state: ServiceState;
  failure_reason?: string;
  health: { status: HealthStatus; output: string; checked_at_ms: number } | null;
  lease: { id: number; ttl_seconds: number; expires_at_ms: number; session_bound: boolean };
  registered_at_ms: number;
  created_revision: number;
  modified_revision: number;
}

export interface RegisterParams {
  service: ServiceDescription;
  ttl_seconds?: number;
  session_bound?: boolean;
  lease_id?: number;
}
export interface RegisterData {
  lease_id: number;
  instance_id: string;
  ttl_seconds: number;
  expires_at_ms: number;
  revision: number;
  created: boolean;
}
export interface KeepaliveData {
  lease_id: number;
  instance_id: string;
  ttl_seconds: number;
  expires_at_ms: number;
}
export interface DeregisterData {
  instance_id: string;
  revision: number;
}
/** A listing's page (docs/protocol.md, "Limits"): `continue` goes alone (or with `limit`). */
export interface PageParams {
  limit?: number;
  continue?: string;
}
export interface ServiceFilter extends PageParams {
  name?: string;
  version?: string;
  state?: ServiceState;
  host?: string;
  metadata?: Record<string, string>;
}
export interface EndpointFilter extends PageParams {
  service?: string;
  endpoint?: string;
  protocol?: string;
}
export interface Page {
  revision: number;
  /** Present when more follow: the next page's token. */
  continue?: string;
  /** Present when more follow: how many. */
  remaining?: number;
}
export interface ListedEndpoint extends Endpoint {
  service: string;
  instance_id: string;
  state: ServiceState;
}
export interface SetStateParams {
  instance_id: string;
  state: ServiceState;
  reason?: string;
}
export interface SetStateData {
  changed: boolean;
  revision: number;
  service: Service;
}

export type EventType =
  | 'service_registered'
  | 'service_deregistered'
  | 'service_state_changed'
  | 'endpoint_updated'
  | 'health_check_result'
  | 'lease_expired'
  | 'registry_loaded'
  | 'bookmark'
  | 'resync_required'
  | 'deployment_started'
  | 'deployment_stage'
  | 'deployment_succeeded'
  | 'deployment_failed'
  | 'deployment_rolled_back';

export interface SubscribeParams {
  events?: EventType[];
  services?: string[];
  from_revision?: number;
  snapshot?: boolean;
}

/** An event as delivered to listeners and iterators. */
export type RegistryEvent =
  | { event: 'service_registered'; revision: number; data: { service: Service } }
  | { event: 'service_deregistered'; revision: number; data: { service: Service; reason: 'deregistered' | 'lease_expired' } }
  | {
      event: 'service_state_changed';
      revision: number;
      data: { service: Service; previous_state: ServiceState; state: ServiceState; reason: string };
    }
  | { event: 'endpoint_updated'; revision: number; data: { service: Service; endpoints: Endpoint[] } }
  | { event: 'health_check_result'; revision: number; data: { service: Service; health: Service['health'] } }
  | {
      event: 'lease_expired';
      revision: number;
      data: { lease_id: number; instance_id: string; name: string; reason: 'ttl' | 'session_closed' };
    }
  | { event: 'registry_loaded'; revision: number; data: { services: Service[] } }
  | { event: 'bookmark'; revision: number; data: Record<string, never> }
  | { event: 'resync_required'; revision: number; data: { from_revision: number; oldest_revision: number } }
  | {
      event: 'deployment_started' | 'deployment_stage' | 'deployment_succeeded' | 'deployment_failed' | 'deployment_rolled_back';
      revision: number;
      data: Deployment;
    }
  | { event: string; revision: number; data: any };

/** The data of the deployment_* events: one deploy_package's course, for every subscriber. */
export interface Deployment {
  instance_id: string;
  package: string;
  target: string;
  /** The version running before, or null. */
  from_version: string | null;
  to_version: string;
  /** deployment_stage, deployment_failed: checking_requirements, installing, starting, health_gating (or validating). */
  stage?: string;
  message: string;
  /** deployment_rolled_back: whether the restored version passed its health gate. */
  healthy?: boolean;
  /** deployment_failed, deployment_rolled_back. */
  error?: { code: string; message: string };
  /** The connection and request that asked for it. */
  requested_by?: { connection?: number; request_id?: string };
}

// ------------------------------------------------------------ REPL execution

export interface ReplLimits {
  timeout_ms?: number;
  output_bytes?: number;
  memory_bytes?: number;
  pids?: number;
  cpu_millicores?: number;
  network?: boolean;
}
/** repl_execute's params: exactly one of `code` and `files`. */
export interface ReplExecuteParams {
  language: string;
  code?: string;
  files?: { name: string; content: string }[];
  stdin?: string;
  args?: string[];
  limits?: ReplLimits;
  idempotency_key?: string;
}
/** One write of the program (a repl_output event). */
export interface ReplOutput {
  stream: 'stdout' | 'stderr';
  /** Counts the execution's output events from 1, over both streams. */
  seq: number;
  data: string;
}
/** repl_finished's data. */
export interface ReplFinished {
  execution_id: string;
  language: string;
  engine: string;
  /** null when registryd killed it (timeout, output cap, cancel) or it never ran. */
  exit_code: number | null;
  signal: number | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
  timed_out: boolean;
  cancelled: boolean;
  duration_ms: number;
  compile?: { exit_code: number; stdout: string; stderr: string };
  error?: { code: ErrorCode; message: string };
}
export interface ExecuteOptions extends RequestOptions {
  /** Each repl_queued: the execution waits at this position (1: next). */
  onQueued?: (position: number) => void;
}

/** An execution registryd accepted (client.execute()). */
export class ReplExecution {
  private constructor();
  readonly id: string;
  /** false when its idempotency_key found an earlier execution. */
  readonly created: boolean;
  /** The id of the repl_execute request, which its events carry as request_id. */
  readonly requestId: string;
  /** The last repl_queued position; null when it never waited or once it ran. */
  readonly queuePosition: number | null;
  /** Its output as it comes; every iterator gets every chunk from the first. Throws when `finished` rejects. */
  readonly output: AsyncIterable<ReplOutput>;
  /**
   * repl_finished's data, however it ended (exit, timeout, output cap, cancel,
   * an `error`). Rejects with `connection_lost` or `closed` when its events
   * can no longer arrive.
   */
  readonly finished: Promise<ReplFinished>;
  /** repl_cancel: `finished` then resolves with `cancelled: true`. */
  cancel(options?: RequestOptions): Promise<{ execution_id: string }>;
}

// ------------------------------------------------------------------ client

/** Protocol error codes, and the client's own (timeout, not_connected, connection_lost, closed). */
export type ErrorCode =
  | 'invalid_request'
  | 'unknown_action'
  | 'not_found'
  | 'conflict'
  | 'lease_not_found'
  | 'invalid_transition'
  | 'payload_too_large'
  | 'limit_exceeded'
  | 'unavailable'
  | 'internal'
  | 'timeout'
  | 'not_connected'
  | 'connection_lost'
  | 'closed'
  | 'file_unreadable'
  | (string & {});

export class RegistryError extends Error {
  constructor(code: ErrorCode, message: string, details?: { action?: string; cause?: unknown });
  readonly name: 'RegistryError';
  readonly code: ErrorCode;
  /** The action of the request that failed. */
  readonly action?: string;
  static fromResponse(error: { code: string; message: string }, action?: string): RegistryError;
}
export const clientErrorCodes: readonly ['timeout', 'not_connected', 'connection_lost', 'closed', 'file_unreadable'];

export interface BackoffOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
}
export const defaultBackoff: Readonly<Required<BackoffOptions>>;
/** The delay before reconnect attempt `attempt` (0-based): exponential, capped, drawn from its upper half. */
export function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;

export interface ClientOptions {
  /** Sent as `Authorization: Bearer` (Node, `ws`) or `access_token` query parameter (browsers). */
  token?: string;
  /** Time for a sent request's response (default 10000). */
  requestTimeoutMs?: number;
  /** Time for the WebSocket handshake of one attempt (default 5000). */
  connectTimeoutMs?: number;
  /** How long a request waits for a connection before `not_connected` (default 10000). */
  connectWaitMs?: number;
  reconnect?: BackoffOptions;
  /** A WebSocket implementation (default: the global one, else the `ws` package). */
  WebSocket?: unknown;
}
export const defaultOptions: Readonly<ClientOptions>;

export interface RequestOptions {
  timeoutMs?: number;
  /** 0: fail at once with `not_connected` when disconnected. */
  connectWaitMs?: number;
  /** Events the server sends about this request (marked with its id as `request_id`), e.g. deployment_progress. */
  onEvent?: (event: { event: string; data: any }) => void;
}

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

export interface ClientEvents {
  open: { url: string };
  close: { code?: number; reason?: string };
  reconnecting: { attempt: number; delayMs: number; error: Error | null };
  reregistered: RegisterData;
  error: Error;
  /** An event frame that no subscription, request or execution of this client takes. */
  event: { event: string; request_id?: string; data: any };
}

export class RegistryClient {
  constructor(url: string | URL, options?: ClientOptions);
  readonly url: string;
  readonly state: ConnectionState;

  register(params: RegisterParams, options?: RequestOptions): Promise<RegisterData>;
  keepalive(leaseId: number | { lease_id: number }, options?: RequestOptions): Promise<KeepaliveData>;
  deregister(instanceId: string | { instance_id: string }, options?: RequestOptions): Promise<DeregisterData>;
  getService(instanceId: string | { instance_id: string }, options?: RequestOptions): Promise<{ service: Service }>;
  /** Every instance of the name, all pages gathered; with `limit` or `continue`, that one page. */
  getService(query: { name: string } & PageParams, options?: RequestOptions): Promise<Page & { services: Service[] }>;
  /** Every match, from all the pages of one listing; with `limit` or `continue`, that one page. */
  listServices(filter?: ServiceFilter, options?: RequestOptions): Promise<Page & { services: Service[] }>;
  listEndpoints(filter?: EndpointFilter, options?: RequestOptions): Promise<Page & { endpoints: ListedEndpoint[] }>;
  /** The pages of one listing, all of one revision; rejects with code 'continue_expired' when the server dropped it. */
  listServicesPages(filter?: ServiceFilter, options?: RequestOptions): AsyncGenerator<Page & { services: Service[] }, void, undefined>;
  listEndpointsPages(filter?: EndpointFilter, options?: RequestOptions): AsyncGenerator<Page & { endpoints: ListedEndpoint[] }, void, undefined>;
  setState(instanceId: string, state: ServiceState, reason?: string, options?: RequestOptions): Promise<SetStateData>;
  setState(params: SetStateParams): Promise<SetStateData>;
  subscribe(params?: SubscribeParams, options?: RequestOptions): Promise<Subscription>;
  unsubscribe(subscription: Subscription, options?: RequestOptions): Promise<{ subscription: string | null }>;

  // Actions of capabilities registryd may not have yet; without them they
  // reject with code 'unknown_action'. Params and data as in docs/protocol.md.
  listNodes(params?: object, options?: RequestOptions): Promise<any>;
  containerCreate(params: object, options?: RequestOptions): Promise<any>;
  containerList(params?: object, options?: RequestOptions): Promise<any>;
  containerGet(containerId: string | { container_id: string }, options?: RequestOptions): Promise<{ container: ContainerDetail }>;
  containerLogs(params: object, options?: RequestOptions): Promise<any>;
  containerStop(params: object, options?: RequestOptions): Promise<any>;
  containerRemove(params: object, options?: RequestOptions): Promise<any>;
  containerExtend(params: object, options?: RequestOptions): Promise<any>;
  imagePull(params: object, options?: RequestOptions): Promise<any>;
  replLanguages(params?: object, options?: RequestOptions): Promise<any>;
  replExecute(params: ReplExecuteParams, options?: RequestOptions): Promise<{ execution_id: string; created: boolean }>;
  replCancel(params: { execution_id: string }, options?: RequestOptions): Promise<{ execution_id: string }>;
  /** repl_execute, and the execution's events routed to the ReplExecution it resolves to. */
  execute(params: ReplExecuteParams, options?: ExecuteOptions): Promise<ReplExecution>;
  /** With `file` (a path in Node; a Blob or File anywhere) the package is uploaded in chunks with its sha256 first. */
  deployPackage(params: object, options?: RequestOptions & { chunkBytes?: number }): Promise<any>;
  /** Uploads a package (a path in Node; a Blob or File anywhere); resolves to its upload_id. */
  uploadPackage(file: string | Blob, options?: { chunkBytes?: number; timeoutMs?: number; onEvent?: (e: { event: string; data: any }) => void }): Promise<string>;
  undeploy(params: object, options?: RequestOptions): Promise<any>;
  serviceAction(params: object, options?: RequestOptions): Promise<any>;

  /** Any action: resolves to the response's `data`. */
  request<T = any>(action: string, params?: object, options?: RequestOptions): Promise<T>;
  /**
   * An action whose response opens a subscription of the server's making
   * (`data.subscription`). The stream is not resumable: it ends with a
   * `connection_lost` error when the connection drops.
   */
  requestStream<T = any>(action: string, params?: object, options?: RequestOptions): Promise<{ data: T; subscription: Subscription }>;

  /** Registers and keeps the lease alive until handle.close(). */
  registerService(service: ServiceDescription, options?: ServiceHandleOptions): Promise<ServiceHandle>;

  /** Resolves once connected (rejects with `not_connected` after connectWaitMs). */
  connect(options?: { connectWaitMs?: number }): Promise<void>;
  close(): Promise<void>;
  on<K extends keyof ClientEvents>(name: K, fn: (value: ClientEvents[K]) => void): () => void;
}

export interface EventSelection {
  /** An event type or a list of them; absent or '*': every event but bookmarks. */
  types?: EventType | EventType[] | '*' | string | string[];
  filter?: (event: RegistryEvent) => boolean;
}

export class Subscription implements AsyncIterable<RegistryEvent> {
  /** The server's id on the current connection; null while disconnected. */
  readonly id: string | null;
  readonly closed: boolean;
  /** The revision of the last event (or snapshot) delivered. */
  readonly revision: number;
  /** The instances this subscription's events describe (reloaded by every snapshot). */
  services: Map<string, Service>;

  on(types: EventSelection['types'], fn: (event: RegistryEvent) => void, options?: { filter?: EventSelection['filter'] }): () => void;
  on(fn: (event: RegistryEvent) => void): () => void;
  off(fn: (event: RegistryEvent) => void): void;
  /** `fn(null)` after close(); `fn(error)` when the subscription could not go on. Returns the remover. */
  onEnd(fn: (error: RegistryError | null) => void): () => void;
  events(selection?: EventSelection): AsyncIterableIterator<RegistryEvent>;
  [Symbol.asyncIterator](): AsyncIterableIterator<RegistryEvent>;
  close(): Promise<void>;
}

export interface ServiceHandleOptions {
  ttlSeconds?: number;
  sessionBound?: boolean;
  /** Default: a third of the TTL. */
  keepaliveIntervalMs?: number;
}

export interface ServiceHandleEvents {
  renewed: KeepaliveData;
  reregistered: RegisterData;
  error: Error;
}

export class ServiceHandle {
  readonly instanceId: string;
  readonly leaseId: number;
  readonly ttlSeconds: number;
  readonly expiresAtMs: number;
  readonly closed: boolean;
  on<K extends keyof ServiceHandleEvents>(name: K, fn: (value: ServiceHandleEvents[K]) => void): () => void;
  setState(state: ServiceState, reason?: string): Promise<SetStateData>;
  /** Re-registers under the same lease with `changes` merged into the description. */
  update(changes: Partial<ServiceDescription>): Promise<RegisterData>;
  /** Stops the keepalive; deregisters unless {deregister: false}. */
  close(options?: { deregister?: boolean }): Promise<void>;
}
