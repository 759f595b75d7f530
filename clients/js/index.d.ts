// Type declarations of registry-client (src/index.js). The protocol's shapes
// follow docs/protocol.md; params and data keep the protocol's snake_case.
// Events are discriminated unions on `event`: narrowing on it types `data`.

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
  checks?: HealthCheck[];
}

export interface Health {
  status: HealthStatus;
  output: string;
  checked_at_ms: number;
}

/** Discovery's health filter (get_service by name, list_services, list_endpoints). */
export type HealthFilter = 'passing' | 'passing_or_warning';

/** A registration's health check (docs/protocol.md, "Health checks"). */
export interface HealthCheck {
  name: string;
  kind: 'http' | 'tcp' | 'ttl';
  method?: 'GET' | 'HEAD';
  url?: string;
  endpoint?: string;
  path?: string;
  expected_status?: [number, number];
  tls_verify?: boolean;
  address?: string;
  interval_ms?: number;
  timeout_ms?: number;
  initial_delay_ms?: number;
  successes_before_passing?: number;
  failures_before_critical?: number;
  deregister_critical_after_ms?: number;
}

/** A check as the server sends it: its definition and current result. */
export interface HealthCheckState extends Omit<HealthCheck, 'kind'> {
  kind: 'http' | 'tcp' | 'ttl' | 'script';
  result: { status: HealthStatus; output: string; checked_at_ms: number; since_ms: number };
}

export interface ReportHealthParams {
  lease_id: number;
  instance_id: string;
  status: 'passing' | 'warning' | 'critical';
  output?: string;
  check?: string;
}
export interface ReportHealthData {
  revision: number;
  health: Health | null;
  state: ServiceState;
}

/** A service instance as the server sends it. */
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
  /** Only when `failed`. */
  failure_reason?: string;
  /** null until a health result is recorded; with checks, the worst of them. */
  health: Health | null;
  /** Only when the registration has checks. */
  checks?: HealthCheckState[];
  /** `id` only for its holder and admins; `holder` absent for anonymous (docs/protocol.md, "Ownership"). */
  lease: { id?: number; ttl_seconds: number; expires_at_ms: number; session_bound: boolean; holder?: string };
  registered_at_ms: number;
  created_revision: number;
  modified_revision: number;
}

/** The error object of the protocol (error responses, events, repl_finished). */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
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
  health?: HealthFilter;
}
export interface EndpointFilter extends PageParams {
  service?: string;
  endpoint?: string;
  protocol?: string;
  health?: HealthFilter;
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

// ------------------------------------------------------------------ events

/** One event as listeners and iterators get it: its type, revision and data. */
export interface EventFrame<E extends string, D> {
  event: E;
  revision: number;
  data: D;
}

/**
 * The events of a subscription (docs/protocol.md: "Events", "Container
 * events", "Deployment events"), a union discriminated by `event`.
 * `lease_expired` has two shapes: a service's, and a container's (`'container' in e.data`).
 */
export type RegistryEvent =
  | EventFrame<'service_registered', { service: Service }>
  | EventFrame<'service_deregistered', { service: Service; reason: 'deregistered' | 'lease_expired' | 'undeployed' | 'redeployed' }>
  | EventFrame<'service_state_changed', { service: Service; previous_state: ServiceState; state: ServiceState; reason: string }>
  | EventFrame<'endpoint_updated', { service: Service; endpoints: Endpoint[] }>
  | EventFrame<
      'health_check_result',
      {
        service: Service;
        health: Health;
        check?: { name: string; kind: string; status: HealthStatus; previous_status: HealthStatus; output: string; count: number };
      }
    >
  | EventFrame<'lease_expired', ServiceLeaseExpired>
  | EventFrame<'lease_expired', ContainerLeaseExpired>
  | EventFrame<'registry_loaded', { services: Service[] }>
  | EventFrame<'bookmark', Record<string, never>>
  | EventFrame<'resync_required', { from_revision: number; oldest_revision: number }>
  | EventFrame<'container_state_changed', ContainerStateChanged>
  | EventFrame<'container_reap_failed', { container: Container; attempts: number; error: ErrorBody }>
  | EventFrame<'container_log', ContainerLogOutput | ContainerLogEnd>
  | EventFrame<'image_pull_progress', ImagePullProgress | ImagePullEnd>
  | EventFrame<'deployment_started', Deployment>
  | EventFrame<'deployment_stage', Deployment & { stage: DeploymentStage }>
  | EventFrame<'deployment_succeeded', Deployment>
  | EventFrame<'deployment_failed', Deployment & { stage: DeploymentStage; error: ErrorBody }>
  | EventFrame<'deployment_rolled_back', Deployment & { healthy: boolean; error: ErrorBody }>;

export type EventType = RegistryEvent['event'];
/** The event(s) of type T among E. */
export type EventOfType<T extends string, E extends RegistryEvent = RegistryEvent> = Extract<E, { event: T }>;
/** The events of subscribe()'s subscriptions: container_log and image_pull_progress come only in their own streams. */
export type SubscriptionEvent = Exclude<RegistryEvent, { event: 'container_log' | 'image_pull_progress' }>;
/** What a listener or iterator without `types` gets: every event but bookmarks. */
export type DeliveredEvent<E extends RegistryEvent = RegistryEvent> = Exclude<E, { event: 'bookmark' }>;

/** A service's lease ran out; its `service_deregistered` follows with the same revision. */
export interface ServiceLeaseExpired {
  /** Only for the lease's holder and admins. */
  lease_id?: number;
  instance_id: string;
  name: string;
  reason: 'ttl' | 'session_closed';
}
/** A container's lease ran out; the reaper's `removed` follows. */
export interface ContainerLeaseExpired {
  lease_id: number;
  container: Container;
  reason: 'ttl';
}
export interface ContainerStateChanged {
  container: Container;
  /** Absent for `created`. */
  previous_state?: ContainerState;
  state: ContainerState;
  /** removed, lease_expired, stopped, start failed, gone, engine offline: ..., engine left: ...; "" otherwise. */
  reason: string;
}
/** A write of a followed container (container_logs with follow). */
export interface ContainerLogOutput {
  container_id: string;
  lease_id: number;
  stream: 'stdout' | 'stderr';
  data: string;
  end?: undefined;
}
/** The last container_log of a follow: the container stopped (`error` if the engine failed meanwhile). */
export interface ContainerLogEnd {
  container_id: string;
  lease_id: number;
  end: true;
  error?: ErrorBody;
}
/** A progress line of an engine's pull; `id`, `progress`, `current` and `total` are the engine's. */
export interface ImagePullProgress {
  engine: string;
  reference: string;
  id: string;
  status: string;
  progress: string;
  current?: number;
  total?: number;
  end?: undefined;
}
/** Per node, the last image_pull_progress (`error` if that node's pull failed). */
export interface ImagePullEnd {
  engine: string;
  reference: string;
  end: true;
  error?: ErrorBody;
}

/** The stage a deployment_stage event enters, or a deployment_failed one failed in. */
export type DeploymentStage = 'checking_requirements' | 'installing' | 'starting' | 'health_gating';

/** What every deployment_* event says: one deploy_package's course, for every subscriber. */
export interface Deployment {
  instance_id: string;
  package: string;
  target: string;
  /** The version running before, or null. */
  from_version: string | null;
  /** The version being deployed. */
  to_version: string;
  message: string;
  /** The connection and request that asked for it. */
  requested_by?: { connection?: number; request_id?: string };
}

/** The stages of deployment_progress (the requester's events). */
export type ProgressStage =
  | 'uploading'
  | 'validating'
  | 'checking_requirements'
  | 'installing'
  | 'starting'
  | 'health_gating'
  | 'done'
  | 'rolled_back'
  | 'failed';

/** deployment_progress's data: a stage or a script run of deploy_package, package_upload_chunk, service_action or undeploy. */
export interface DeploymentProgress {
  stage: ProgressStage;
  /** "" until the manifest has been read. */
  package: string;
  version: string;
  target: string;
  message: string;
  /** uploading: the bytes received so far; installing: the unpacked size. */
  bytes?: number;
  /** uploading: the upload's declared size. */
  bytes_total?: number;
  /** When a script ran: its exit status and its stdout + stderr (the last 4 KiB). */
  exit_code?: number;
  output?: string;
}

/** The events registryd marks with a request's id (`request_id`) instead of a subscription. */
export interface DeploymentProgressEvent {
  event: 'deployment_progress';
  data: DeploymentProgress;
}
export type ReplEvent =
  | { event: 'repl_queued'; data: { execution_id: string; position: number } }
  | { event: 'repl_output'; data: ReplOutput & { execution_id: string } }
  | { event: 'repl_finished'; data: ReplFinished };
/** A container_create with `queue: true` waits at `position` (1: next) for a free slot. */
export interface ContainerQueuedEvent {
  event: 'container_queued';
  data: ContainerQueued;
}
export interface ContainerQueued {
  /** What containerCancelQueued() names. */
  queue_id: string;
  position: number;
}
export type RequestEvent = DeploymentProgressEvent | ReplEvent | ContainerQueuedEvent;

// -------------------------------------------------------------- containers

export type ContainerState = 'created' | 'running' | 'exited' | 'removed' | 'lost';

/** The container object (container_list, container events); the times, exit code and error only once known. */
export interface Container {
  lease_id: number;
  container_id: string;
  name: string;
  image: string;
  engine: string;
  state: ContainerState;
  /** Once it has exited. */
  exit_code?: number;
  ttl_seconds: number;
  created_at_ms: number;
  expires_at_ms: number;
  started_at_ms?: number;
  finished_at_ms?: number;
  /** The engine's error, when it reports one. */
  error?: string;
  /** The identity that created it; absent for anonymous. */
  owner?: string;
}

export interface ContainerLimits {
  memory_bytes?: number;
  /** The only non-integer number of the protocol. */
  cpus?: number;
  pids?: number;
}

/** A container in full (container_get). */
export interface ContainerDetail extends Container {
  /** As requested; [] for the image's default. */
  command: string[];
  limits: ContainerLimits;
  /** The user's, without the registry's io.registry.* ones. */
  labels: Record<string, string>;
}

export interface ContainerCreateParams {
  /** Required unless `preset` gives it. */
  image?: string;
  preset?: string;
  name?: string;
  command?: string[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
  limits?: ContainerLimits;
  network?: 'none' | 'default';
  read_only_rootfs?: boolean;
  ttl_seconds?: number;
  engine?: string;
  /** Every engine it may use at capacity: wait for a free slot (container_queued events) instead of limit_exceeded. */
  queue?: boolean;
}
/** containerCreate()'s options: with `queue: true`, no timeout unless timeoutMs gives one (a timed-out queued create is cancelled). */
export interface ContainerCreateOptions extends RequestOptions<ContainerQueuedEvent> {
  /** Each container_queued: the create waits at this position (1: next). */
  onQueued?: (queued: ContainerQueued) => void;
}
export interface ContainerListParams {
  engine?: string;
  state?: ContainerState;
}
export interface ContainerListData {
  revision: number;
  containers: Container[];
}
export interface ContainerLogsParams {
  container_id: string;
  /** Only the last N lines (0-100000). */
  tail?: number;
  follow?: boolean;
}
export interface ContainerLogsData {
  container_id: string;
  output: { stream: 'stdout' | 'stderr'; data: string }[];
}
export interface ContainerStopParams {
  container_id: string;
  /** 0-300, default 10: SIGKILL after it. */
  grace_seconds?: number;
}
export interface ContainerRemoveParams {
  container_id: string;
  /** Kill a running container first (else `conflict`). */
  force?: boolean;
}
export interface ContainerExtendParams {
  container_id: string;
  /** Default: the lease's current TTL. */
  ttl_seconds?: number;
}
export interface ContainerExtendData {
  lease_id: number;
  container_id: string;
  ttl_seconds: number;
  expires_at_ms: number;
}
export interface ImagePullParams {
  reference: string;
  /** Default: every online node, one after the other. */
  engine?: string;
}
/** A container engine (list_nodes): configured ones first, then registered ones. */
export interface EngineNode {
  name: string;
  endpoint: string;
  status: 'online' | 'offline';
  capacity: number;
  /** Managed containers created or running there. */
  running: number;
  /** The last successful ping; null before any. */
  last_heartbeat_ms: number | null;
}
export type ContainerLogEvent = EventOfType<'container_log'>;
export type ImagePullEvent = EventOfType<'image_pull_progress'>;

/** An action whose response opens a subscription of the server's making (requestStream). */
export interface Stream<D, E extends RegistryEvent = RegistryEvent> {
  data: D;
  subscription: Subscription<E>;
}

// -------------------------------------------------------------- deployment

interface DeployCommon {
  /** `local` (default) or a configured remote host. */
  target?: string;
  /** When given, the manifest's name must be this. */
  name?: string;
  /** When given, the manifest's version must be this. */
  version?: string;
}
/**
 * deployPackage's params: exactly one of `file` (a path in Node; a Blob or
 * File anywhere: uploaded first, with its sha256), `path` (an archive on
 * registryd's host) and `upload_id` (a complete upload).
 */
export type DeployPackageParams = DeployCommon &
  (
    | { file: string | Blob; path?: never; upload_id?: never }
    | { path: string; file?: never; upload_id?: never }
    | { upload_id: string; file?: never; path?: never }
  );
export interface DeployData {
  instance_id: string;
  name: string;
  version: string;
  /** "" for a container package (target "containers"). */
  install_dir: string;
  /** null on a first deploy. */
  previous_version: string | null;
  revision: number;
  /** A container package: its container and the container node it runs on. */
  container_id?: string;
  node?: string;
}
/** package_upload_begin, package_upload_chunk, package_upload_status. */
export interface UploadStatus {
  upload_id: string;
  size: number;
  /** Where the next chunk goes. */
  received: number;
  complete: boolean;
  expires_at_ms: number;
  /** The identity that began it; absent for anonymous. */
  owner?: string;
}
export interface UndeployParams {
  instance_id: string;
  /** Kill the service's processes if stop.sh fails, and undeploy anyway. */
  force?: boolean;
}
export interface ServiceActionParams {
  instance_id: string;
  action: 'start' | 'stop' | 'restart';
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
/** A configured language version (repl_languages has one per version). */
export interface ReplLanguage {
  name: string;
  version: string;
  /** The version a repl_execute without `version` gets (the first of its name). */
  default: boolean;
  image: string;
  source_file: string;
  compiled: boolean;
  warm_pool: number;
  /** What an execution gets when it asks for nothing. */
  defaults: Required<ReplLimits>;
  /** What it may ask for. */
  maximum: Required<ReplLimits>;
}
/** repl_execute's params: exactly one of `code` and `files`. */
export type ReplExecuteParams = {
  language: string;
  /** One of the language's versions (repl_languages); default: its default version. */
  version?: string;
  stdin?: string;
  args?: string[];
  limits?: ReplLimits;
  idempotency_key?: string;
} & ({ code: string; files?: never } | { files: { name: string; content: string }[]; code?: never });
export interface ReplExecuteData {
  execution_id: string;
  /** false when its idempotency_key found an earlier execution. */
  created: boolean;
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
  /** The version that ran. */
  version: string;
  /** "" if it never got one (cancelled while queued). */
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
  error?: ErrorBody;
  /** The container's CPU time and peak memory; a figure the engine did not report is absent. */
  usage?: { cpu_ms?: number; memory_peak_bytes?: number };
}
/** repl_result of a finished execution: repl_finished's data, who and when. */
export interface ReplFinishedResult extends ReplFinished {
  state: 'finished';
  owner: string;
  submitted_at_ms: number;
  /** Absent if its program was never handed to a container. */
  started_at_ms?: number;
  finished_at_ms: number;
}
export type ReplResult = ReplFinishedResult | { execution_id: string; state: 'queued' | 'running' };
/** A repl_history entry: a result without stdout, stderr and the compile step's output. */
export type ReplSummary = Omit<ReplFinishedResult, 'stdout' | 'stderr' | 'compile'> & { compile?: { exit_code: number } };
export interface ExecuteOptions extends RequestOptions<ReplEvent> {
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

// ----------------------------------------------------------------- actions

/** Every action's params and response data, for client.request(). */
export interface Actions {
  register: { params: RegisterParams; data: RegisterData };
  keepalive: { params: { lease_id: number }; data: KeepaliveData };
  deregister: { params: { instance_id: string }; data: DeregisterData };
  get_service: {
    params: { instance_id: string } | ({ name: string; health?: HealthFilter } & PageParams);
    data: { service: Service } | (Page & { services: Service[] });
  };
  list_services: { params: ServiceFilter; data: Page & { services: Service[] } };
  list_endpoints: { params: EndpointFilter; data: Page & { endpoints: ListedEndpoint[] } };
  set_state: { params: SetStateParams; data: SetStateData };
  report_health: { params: ReportHealthParams; data: ReportHealthData };
  subscribe: { params: SubscribeParams; data: { subscription: string; revision: number } };
  unsubscribe: { params: { subscription: string }; data: { subscription: string } };
  list_nodes: { params: Record<string, never>; data: { nodes: EngineNode[] } };
  container_create: { params: ContainerCreateParams; data: { container: Container } };
  container_list: { params: ContainerListParams; data: ContainerListData };
  container_get: { params: { container_id: string }; data: { container: ContainerDetail } };
  container_logs: { params: ContainerLogsParams; data: ContainerLogsData | { subscription: string; container_id: string } };
  container_stop: { params: ContainerStopParams; data: { container: Container } };
  container_remove: { params: ContainerRemoveParams; data: { container: Container } };
  container_extend: { params: ContainerExtendParams; data: ContainerExtendData };
  container_cancel_queued: { params: { queue_id: string }; data: { queue_id: string } };
  image_pull: { params: ImagePullParams; data: { subscription: string; reference: string } };
  repl_languages: { params: Record<string, never>; data: { languages: ReplLanguage[] } };
  repl_execute: { params: ReplExecuteParams; data: ReplExecuteData };
  repl_cancel: { params: { execution_id: string }; data: { execution_id: string } };
  deploy_package: { params: Exclude<DeployPackageParams, { file: string | Blob }>; data: DeployData };
  package_upload_begin: { params: { size: number; sha256: string }; data: UploadStatus & { max_chunk_bytes: number } };
  package_upload_chunk: { params: { upload_id: string; offset: number; data: string }; data: UploadStatus };
  package_upload_status: { params: { upload_id: string }; data: UploadStatus };
  service_action: { params: ServiceActionParams; data: { service: Service } };
  undeploy: { params: UndeployParams; data: { instance_id: string } };
}
export type Action = keyof Actions;
/** request()'s params and options for action A: the params may be left out only when none is required. */
export type RequestArgs<A extends Action> = {} extends Actions[A]['params']
  ? [params?: Actions[A]['params'], options?: RequestOptions]
  : [params: Actions[A]['params'], options?: RequestOptions];

// ------------------------------------------------------------------ client

/** Protocol error codes, and the client's own (timeout, not_connected, connection_lost, closed, file_unreadable). */
export type ErrorCode =
  | 'invalid_request'
  | 'unknown_action'
  | 'not_found'
  | 'conflict'
  | 'lease_not_found'
  | 'invalid_transition'
  | 'payload_too_large'
  | 'limit_exceeded'
  | 'continue_expired'
  | 'rate_limited'
  | 'not_writer'
  | 'unavailable'
  | 'internal'
  | 'invalid_package'
  | 'requirement_not_met'
  | 'deployment_failed'
  | 'host_key_rejected'
  | 'offset_mismatch'
  | 'checksum_mismatch'
  | 'upload_incomplete'
  | 'forbidden'
  | 'busy'
  | 'timeout'
  | 'not_connected'
  | 'connection_lost'
  | 'closed'
  | 'file_unreadable'
  | 'unauthorized'
  | (string & {});

export class RegistryError extends Error {
  constructor(code: ErrorCode, message: string, details?: { action?: string; cause?: unknown });
  readonly name: 'RegistryError';
  readonly code: ErrorCode;
  /** The action of the request that failed. */
  readonly action?: string;
  static fromResponse(error: { code: string; message: string }, action?: string): RegistryError;
}
export const clientErrorCodes: readonly [
  'timeout',
  'not_connected',
  'connection_lost',
  'closed',
  'file_unreadable',
  'unauthorized',
];

export interface BackoffOptions {
  initialDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
}
export const defaultBackoff: Readonly<Required<BackoffOptions>>;
/** The delay before reconnect attempt `attempt` (0-based): exponential, capped, drawn from its upper half. */
export function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;

export interface ClientOptions {
  /**
   * Sent as `Authorization: Bearer` (Node 20, the `ws` package) or as the `access_token` query parameter
   * (browsers, a global WebSocket). A 401 at the upgrade rejects waiting requests with `unauthorized`.
   */
  token?: string;
  /** PEM of the CA that signed a wss:// server's certificate, when the platform does not trust it (Node: uses `ws`). */
  ca?: string | Uint8Array | Array<string | Uint8Array>;
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

/** E: the events the server marks with this request's id (deployment_progress, repl_*, container_queued). */
export interface RequestOptions<E extends RequestEvent = RequestEvent> {
  timeoutMs?: number;
  /** 0: fail at once with `not_connected` when disconnected (and a `not_writer` answer is not moved to the next URL). */
  connectWaitMs?: number;
  /** Events the server sends about this request (marked with its id as `request_id`), e.g. deployment_progress. */
  onEvent?: (event: E) => void;
}
/** The options of an action whose requester gets deployment_progress events. */
export type DeployOptions = RequestOptions<DeploymentProgressEvent>;

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closed';

export interface ClientEvents {
  open: { url: string };
  close: { code?: number; reason?: string };
  /** `attempt`: rounds of URLs since the last connection that lasted; `url`: the one tried next. */
  reconnecting: { attempt: number; delayMs: number; error: Error | null; url: string };
  /** A connection opened on another URL than the previous one's: left for a write answered not_writer, or lost. */
  moved: { from: string; to: string; reason: 'not_writer' | 'connection_lost' };
  reregistered: RegisterData;
  error: Error;
  /** An event frame marked with a request's id that no request or execution of this client takes. */
  event: RequestEvent & { request_id?: string };
}

export interface SubscribeParams {
  events?: EventType[];
  services?: string[];
  from_revision?: number;
  snapshot?: boolean;
}

export class RegistryClient {
  /** One registryd's URL, or those of several sharing one registry (tried round robin; writes go to the writer). */
  constructor(urls: string | URL | ReadonlyArray<string | URL>, options?: ClientOptions);
  /** The URL of the current connection (or of the next attempt). */
  readonly url: string;
  readonly urls: readonly string[];
  readonly state: ConnectionState;

  register(params: RegisterParams, options?: RequestOptions): Promise<RegisterData>;
  keepalive(leaseId: number | { lease_id: number }, options?: RequestOptions): Promise<KeepaliveData>;
  deregister(instanceId: string | { instance_id: string }, options?: RequestOptions): Promise<DeregisterData>;
  getService(instanceId: string | { instance_id: string }, options?: RequestOptions): Promise<{ service: Service }>;
  /** Every instance of the name, all pages gathered; with `limit` or `continue`, that one page. */
  getService(query: { name: string; health?: HealthFilter } & PageParams, options?: RequestOptions): Promise<Page & { services: Service[] }>;
  /** Every match, from all the pages of one listing; with `limit` or `continue`, that one page. */
  listServices(filter?: ServiceFilter, options?: RequestOptions): Promise<Page & { services: Service[] }>;
  listEndpoints(filter?: EndpointFilter, options?: RequestOptions): Promise<Page & { endpoints: ListedEndpoint[] }>;
  /** The pages of one listing, all of one revision; rejects with code 'continue_expired' when the server dropped it. */
  listServicesPages(filter?: ServiceFilter, options?: RequestOptions): AsyncGenerator<Page & { services: Service[] }, void, undefined>;
  listEndpointsPages(filter?: EndpointFilter, options?: RequestOptions): AsyncGenerator<Page & { endpoints: ListedEndpoint[] }, void, undefined>;
  setState(instanceId: string, state: ServiceState, reason?: string, options?: RequestOptions): Promise<SetStateData>;
  setState(params: SetStateParams): Promise<SetStateData>;
  reportHealth(params: ReportHealthParams, options?: RequestOptions): Promise<ReportHealthData>;
  subscribe(params?: SubscribeParams, options?: RequestOptions): Promise<Subscription<SubscriptionEvent>>;
  unsubscribe(subscription: Subscription<RegistryEvent>, options?: RequestOptions): Promise<{ subscription: string | null }>;

  // Actions of capabilities a registryd may lack (containers, REPL,
  // deployment); without them they reject with code 'unknown_action' (or
  // 'unavailable'). Params and data as in docs/protocol.md.
  listNodes(params?: Record<string, never>, options?: RequestOptions): Promise<{ nodes: EngineNode[] }>;
  containerCreate(params: ContainerCreateParams, options?: ContainerCreateOptions): Promise<{ container: Container }>;
  containerCancelQueued(queueId: string | { queue_id: string }, options?: RequestOptions): Promise<{ queue_id: string }>;
  containerList(params?: ContainerListParams, options?: RequestOptions): Promise<ContainerListData>;
  containerGet(containerId: string | { container_id: string }, options?: RequestOptions): Promise<{ container: ContainerDetail }>;
  /** With `follow: true`, a stream of container_log events (as requestStream), the last one with `end: true`. */
  containerLogs(
    params: ContainerLogsParams & { follow: true },
    options?: RequestOptions,
  ): Promise<Stream<{ subscription: string; container_id: string }, ContainerLogEvent>>;
  containerLogs(params: ContainerLogsParams & { follow?: false }, options?: RequestOptions): Promise<ContainerLogsData>;
  containerStop(params: ContainerStopParams, options?: RequestOptions): Promise<{ container: Container }>;
  containerRemove(params: ContainerRemoveParams, options?: RequestOptions): Promise<{ container: Container }>;
  containerExtend(params: ContainerExtendParams, options?: RequestOptions): Promise<ContainerExtendData>;
  /** A stream of image_pull_progress events (as requestStream), per node a last one with `end: true`. */
  imagePull(params: ImagePullParams, options?: RequestOptions): Promise<Stream<{ subscription: string; reference: string }, ImagePullEvent>>;
  replLanguages(params?: Record<string, never>, options?: RequestOptions): Promise<{ languages: ReplLanguage[] }>;
  /** Only the response; the execution's events go to `onEvent`, else to client.on('event'). See execute(). */
  replExecute(params: ReplExecuteParams, options?: RequestOptions<ReplEvent>): Promise<ReplExecuteData>;
  replCancel(params: { execution_id: string }, options?: RequestOptions): Promise<{ execution_id: string }>;
  /** A finished execution's kept result, or its state while it has not finished; `not_found` otherwise. */
  replResult(executionId: string | { execution_id: string }, options?: RequestOptions): Promise<ReplResult>;
  /** The caller's kept results (an admin's: everyone's, or `owner`'s), newest first, without output. */
  replHistory(params?: { limit?: number; owner?: string }, options?: RequestOptions): Promise<{ executions: ReplSummary[] }>;
  /** repl_execute, and the execution's events routed to the ReplExecution it resolves to. */
  execute(params: ReplExecuteParams, options?: ExecuteOptions): Promise<ReplExecution>;
  /** With `file` (a path in Node; a Blob or File anywhere) the package is uploaded in chunks with its sha256 first. */
  deployPackage(params: DeployPackageParams, options?: DeployOptions & { chunkBytes?: number }): Promise<DeployData>;
  /** Uploads a package (a path in Node; a Blob or File anywhere); resolves to its upload_id. */
  uploadPackage(
    file: string | Blob,
    options?: { chunkBytes?: number; timeoutMs?: number; onEvent?: DeployOptions['onEvent'] },
  ): Promise<string>;
  undeploy(params: UndeployParams, options?: DeployOptions): Promise<{ instance_id: string }>;
  serviceAction(params: ServiceActionParams, options?: DeployOptions): Promise<{ service: Service }>;

  /** Any action: resolves to the response's `data`. */
  request<A extends Action>(action: A, ...args: RequestArgs<A>): Promise<Actions[A]['data']>;
  /** An action this declaration does not know (with T, any action: T opts out of the checks). */
  request<T = unknown, A extends string = string>(
    action: A & (A extends Action ? never : unknown),
    params?: object,
    options?: RequestOptions,
  ): Promise<T>;
  /**
   * An action whose response opens a subscription of the server's making
   * (`data.subscription`). The stream is not resumable: it ends with a
   * `connection_lost` error when the connection drops.
   */
  requestStream(
    action: 'container_logs',
    params: ContainerLogsParams & { follow: true },
    options?: RequestOptions,
  ): Promise<Stream<{ subscription: string; container_id: string }, ContainerLogEvent>>;
  requestStream(
    action: 'image_pull',
    params: ImagePullParams,
    options?: RequestOptions,
  ): Promise<Stream<{ subscription: string; reference: string }, ImagePullEvent>>;
  requestStream<T = unknown, E extends RegistryEvent = RegistryEvent>(
    action: string,
    params?: object,
    options?: RequestOptions,
  ): Promise<Stream<T, E>>;

  /** Registers and keeps the lease alive until handle.close(). */
  registerService(service: ServiceDescription, options?: ServiceHandleOptions): Promise<ServiceHandle>;

  /** Resolves once connected (rejects with `not_connected` after connectWaitMs). */
  connect(options?: { connectWaitMs?: number }): Promise<void>;
  close(): Promise<void>;
  on<K extends keyof ClientEvents>(name: K, fn: (value: ClientEvents[K]) => void): () => void;
}

/** Which events a listener or iterator gets: `types` (an event type or a list of them), then `filter`. */
export interface EventSelection<T extends string = EventType, E extends RegistryEvent = RegistryEvent> {
  types: T | readonly T[];
  filter?: (event: EventOfType<T, E>) => boolean;
}
/** Without `types` (or '*'): every event but bookmarks. */
export interface AnyEventSelection<E extends RegistryEvent = RegistryEvent> {
  types?: '*';
  filter?: (event: DeliveredEvent<E>) => boolean;
}

/** E: the events it carries (every RegistryEvent; a stream's only its own). */
export class Subscription<E extends RegistryEvent = RegistryEvent> implements AsyncIterable<DeliveredEvent<E>> {
  private constructor();
  /** The server's id on the current connection; null while disconnected. */
  readonly id: string | null;
  readonly closed: boolean;
  /** The revision of the last event (or snapshot) delivered. */
  readonly revision: number;
  /** The instances this subscription's events describe (reloaded by every snapshot). */
  services: Map<string, Service>;

  /** `fn` for each event of `types` that passes `filter`; returns the remover. */
  on<T extends E['event']>(
    types: T | readonly T[],
    fn: (event: EventOfType<T, E>) => void,
    options?: { filter?: (event: EventOfType<T, E>) => boolean },
  ): () => void;
  on(types: '*', fn: (event: DeliveredEvent<E>) => void, options?: { filter?: (event: DeliveredEvent<E>) => boolean }): () => void;
  /** Every event but bookmarks. */
  on(fn: (event: DeliveredEvent<E>) => void): () => void;
  off(fn: (event: never) => void): void;
  /** `fn(null)` after close(); `fn(error)` when the subscription could not go on. Returns the remover. */
  onEnd(fn: (error: RegistryError | null) => void): () => void;
  events<T extends E['event']>(selection: EventSelection<T, E>): AsyncIterableIterator<EventOfType<T, E>>;
  events(selection?: AnyEventSelection<E>): AsyncIterableIterator<DeliveredEvent<E>>;
  [Symbol.asyncIterator](): AsyncIterableIterator<DeliveredEvent<E>>;
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
  private constructor();
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
