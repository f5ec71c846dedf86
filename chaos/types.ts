// The recorded history of a chaos run: what every process did, when (wall clock, ms since the epoch, as
// `performance.timeOrigin + performance.now()` in the process that did it), and what came back. The
// checker (check.ts) is a pure function of it.

/** A session error's `code`, 'TIMEOUT' for an operation the driver gave up waiting for, absent when untyped. */
export type OpStatus = 'ok' | 'error' | 'timeout';

export interface OpBase {
  /** App process index (0..). */
  proc: number;
  /** Per-process sequence number. */
  seq: number;
  start: number;
  end: number;
  status: OpStatus;
  /** SessionError code when status is 'error' and the error was typed; undefined for an untyped error. */
  code?: string;
  /** Error message (errors and timeouts). */
  error?: string;
  /** 'load' during the run, 'final' for the verification reads after it. */
  phase: 'load' | 'final';
}

export interface CreateOp extends OpBase {
  kind: 'create';
  user: string;
  /** Initial attribute values (each one unique in the run). */
  attrs: Record<string, string>;
  /** Requested absolute expiry (ms); every create passes one. */
  expiresAt: number;
  result?: {
    id: string;
    token: string;
    version: number;
    /** The manager's clock when it created the row: the row's created_at and first last_accessed. */
    at: number;
    /** Sessions of the user the same statement evicted (maxSessions). */
    evicted: string[];
  };
}

export interface ReadOp extends OpBase {
  kind: 'read';
  token: string;
  /** The session this process believed the token belongs to (probes of dead tokens included). */
  sid?: string;
  force: boolean;
  touch: boolean;
  /** Why the read was made: a plain read, the load step of an update, or the final verification. */
  origin: 'read' | 'update' | 'final';
  result?: {
    found: boolean;
    id?: string;
    version?: number;
    /** key → [value, attribute version] */
    attrs?: Record<string, [string, number]>;
    /** The manager's clock when the read began: what it checked expiry against. */
    clockAt?: number;
    /** The manager's clock value recorded as this read's touch (only when found and touch). */
    touchAt?: number;
  };
}

export interface UpdateOp extends OpBase {
  kind: 'update';
  sid: string;
  token: string;
  mode: 'plain' | 'version' | 'attrVersion';
  /** key → new value (each value unique in the run). */
  values: Record<string, string>;
  /** What the session carried when the update was sent: its version and the versions of the keys written. */
  base: { version: number; vers: Record<string, number> };
  result?: { version: number; vers: Record<string, number> };
}

export interface RotateOp extends OpBase {
  kind: 'rotate';
  sid: string;
  token: string;
  result?: { rotated: boolean; newToken?: string; version?: number };
}

export interface DeleteOp extends OpBase {
  kind: 'delete';
  sid?: string;
  token: string;
  /** Ids the statement deleted. */
  result?: { ids: string[] };
}

export interface DeleteAllOp extends OpBase {
  kind: 'deleteAll';
  user: string;
  result?: { ids: string[] };
}

export type Op = CreateOp | ReadOp | UpdateOp | RotateOp | DeleteOp | DeleteAllOp;
export type OpKind = Op['kind'];

export type FaultKind =
  | 'terminate-listener'
  | 'terminate-backends'
  | 'worker-sigkill'
  | 'worker-sigterm'
  | 'proxy-pause'
  | 'proxy-cut'
  | 'pg-restart'
  /**
   * The proxy holds the answers to one app process: its statements run and commit, the results arrive late,
   * while the other processes (and the feed) go on.
   */
  | 'delay-app-responses'
  /** The proxy holds one worker's connections: its feed stalls while the apps still reach the database. */
  | 'partition-worker';

export const FAULT_KINDS: readonly FaultKind[] = [
  'terminate-listener',
  'terminate-backends',
  'worker-sigkill',
  'worker-sigterm',
  'proxy-pause',
  'proxy-cut',
  'pg-restart',
  'delay-app-responses',
  'partition-worker',
];

export interface Fault {
  kind: FaultKind;
  /** When the fault was injected (for a worker kill: the moment the signal was sent). */
  start: number;
  /** When its direct effect was over (worker restarted and listening, pause over, PostgreSQL accepting). */
  end: number;
  /** Worker index for worker faults, app index for delay-app-responses. */
  target?: number;
  detail?: string;
  /** False when injecting or recovering failed (reported, and the run goes on). */
  ok: boolean;
}

/** One answer of GET /v1/changes to the observer. */
export interface Delivery {
  worker: number;
  requestStart: number;
  receivedAt: number;
  after: string | null;
  cursor: string;
  ids: string[];
  reset: boolean;
  freshAsOf: number;
}

/** last_accessed of one session, read from the database by the sampler (samples in read order). */
export interface LastAccessSample {
  at: number;
  id: string;
  lastAccessed: number;
}

export interface CountSample {
  at: number;
  user: string;
  count: number;
}

/** A process that exited when nobody asked it to, or a worker that did not stop cleanly when asked. */
export interface ProcessEvent {
  at: number;
  process: string;
  kind: 'unexpected-exit' | 'unclean-stop' | 'unwritten-touches';
  detail: string;
  /** Worker index for worker events. */
  worker?: number;
}

export interface HistoryConfig {
  maxStalenessMs: number;
  /** Tolerance for comparing times taken by different processes' clocks. */
  clockSlackMs: number;
  /** maxSessions of capped users; users not listed are uncapped. */
  cap: number;
  cappedUsers: string[];
  /**
   * How long a touch may sit between the manager and the database (touch push interval + worker flush
   * interval + the longest outage + margin): a worker SIGKILL loses only touches recorded within this
   * long before the kill.
   */
  touchLossWindowMs: number;
  /** App process index → index of the worker its SyncClients talk to. */
  procWorker: number[];
}

export interface FinalState {
  /** When the final database snapshot was read (after every flush). */
  at: number;
  sessions: { id: string; userId: string; lastAccessed: number; expiresAt: number }[];
}

export interface History {
  config: HistoryConfig;
  /** Load window: [loadStart, loadEnd]. */
  loadStart: number;
  loadEnd: number;
  ops: Op[];
  faults: Fault[];
  deliveries: Delivery[];
  samples: LastAccessSample[];
  counts: CountSample[];
  processEvents: ProcessEvent[];
  final: FinalState;
}

export type ViolationKind =
  | 'revoked-served'
  | 'expired-served'
  | 'wrong-session'
  | 'lost-update'
  | 'stale-version'
  | 'unknown-value'
  | 'cas-violated'
  | 'duplicate-version'
  | 'lost-session'
  | 'max-sessions'
  | 'last-access-backwards'
  | 'lost-touch'
  | 'bogus-last-access'
  | 'feed-gap'
  | 'feed-not-covered'
  | 'untyped-error'
  | 'crash';

export interface Violation {
  kind: ViolationKind;
  message: string;
  /** The operation(s) or records involved. */
  evidence?: unknown;
}

/** Wall clock in ms with sub-ms precision, comparable across processes of this machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
