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
  /**
   * 'http': the operation was an HTTP request to the chaos app's Hono middleware (real cookies); start/end are
   * the request's, and the library's clock values inside it are only known to lie in [start, end] + the
   * process's clock skew. Absent: a direct library call.
   */
  via?: 'http';
}

/** The session pools: capped users (maxSessions), free users, and short-idle users (own schema, own worker). */
export type Pool = 'capped' | 'free' | 'idle';

export interface CreateOp extends OpBase {
  kind: 'create';
  user: string;
  /** Initial attribute values (each one unique in the run). */
  attrs: Record<string, string>;
  /** Requested absolute expiry (ms, on the creating process's clock); every create passes one. */
  expiresAt: number;
  pool?: Pool;
  /** inactivityDuration (ms) of the managers of this session's pool; absent or 0: no idle expiry in the run. */
  idleMs?: number;
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
  /**
   * Why the read was made: a plain read, the load step of an update, a probe after an injected touch, or
   * the final verification.
   */
  origin: 'read' | 'update' | 'probe' | 'final';
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
  /** The token the write is bound to: the one the Session was loaded (or last rotated) through, or the cookie. */
  token: string;
  /** The writer's clock when it sent the statement (what the statement checks expiry against). */
  clockAt?: number;
  /** Written through a Session held since an earlier request (possibly rotated away or revoked since). */
  held?: boolean;
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
  /** Rotated through a Session object (bound to its token) rather than a token string. */
  bySession?: boolean;
  held?: boolean;
  clockAt?: number;
  result?: { rotated: boolean; newToken?: string; version?: number };
}

export interface DeleteOp extends OpBase {
  kind: 'delete';
  sid?: string;
  token: string;
  /** Deleted through a Session object (bound to its token) rather than a token string. */
  bySession?: boolean;
  held?: boolean;
  /** Ids the statement deleted. */
  result?: { ids: string[] };
}

export interface DeleteAllOp extends OpBase {
  kind: 'deleteAll';
  user: string;
  result?: { ids: string[] };
}

/**
 * A touch nobody's read produced, injected by the runner for a session it believes idle-expired: POSTed to
 * the idle pool's worker (`via: 'worker'`, as a peer holding the worker's secret could) or restored into a
 * manager of its own and flushed (`via: 'manager'`). The receiver clamps it to its clock (between recvLo and
 * recvHi while it handled it) and must drop it when the session was idle-expired or expired by then.
 */
export interface TouchOp extends OpBase {
  kind: 'touch';
  sid: string;
  token: string;
  target: 'worker' | 'manager';
  /** The access time claimed (ms). */
  value: number;
  /**
   * The first access of the run claimed (worker: back-dated to the session's newest recorded access, as a
   * hostile peer would to pass the idle test); absent: `value`.
   */
  first?: number;
  recvLo: number;
  recvHi: number;
  /** Worker: entries accepted into its buffer; manager: rows the flush moved. */
  result?: { accepted: number };
}

export type Op = CreateOp | ReadOp | UpdateOp | RotateOp | DeleteOp | DeleteAllOp | TouchOp;
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
  /** When the query was sent. */
  at: number;
  /** When its answer came (absent in older histories: `at`); the rows are as of a moment in between. */
  end?: number;
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
  /** The idle pool worker's touchMaxHold: it takes a touch's first access as no earlier than its arrival minus this. */
  touchMaxHoldMs?: number;
  /** App process index → index of the worker its SyncClients talk to (-1: none, a standalone manager). */
  procWorker: number[];
  /**
   * Process index → how far its library clock (the managers' `clock` option) runs ahead of the shared
   * reference clock the history is recorded on (ms; negative: behind). Absent: 0. The runner's own operations
   * (injected touches) have the index after the last app process.
   */
  clockSkewMs?: number[];
  /** Process index → 'stream' | 'poll' | 'standalone' | 'http' (for the summary). */
  procMode?: string[];
  /** Idle pool's worker index: the worker its stream and poll clients use, and the one injected touches go to. */
  idleWorker?: number;
}

export interface FinalState {
  /** When the final database snapshot was read (after every flush). */
  at: number;
  /** Rows of every pool (the idle pool's schema included). */
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
  | 'crash'
  | 'dead-token-write'
  | 'idle-revived';

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
