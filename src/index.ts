export type { AttributeRecord } from './core/attributes.ts';
export { MAX_DEPTH, MAX_KEY_LENGTH } from './core/attributes.ts';
export type { SessionRecord } from './core/cache.ts';
export { SessionCache } from './core/cache.ts';
export type { SessionConfig } from './core/config.ts';
export { DEFAULTS } from './core/config.ts';
export {
  type DeviceInfo,
  type DeviceLocation,
  describeUserAgent,
  MAX_DEVICE_LABEL_LENGTH,
  MAX_LOCATION_FIELD_LENGTH,
  MAX_USER_AGENT_LENGTH,
} from './core/device.ts';
export * from './core/errors.ts';
export type {
  BulkDeleteOptions,
  CleanupResult,
  CreatedSession,
  CreateSessionOptions,
  DeleteSessionByIdOptions,
  DeleteSessionOptions,
  DeleteUserSessionsOptions,
  FlushResult,
  GetSessionOptions,
  ListUserSessionsOptions,
  SessionEndActorInput,
  SessionEndInfo,
  SessionInfo,
  UpdateSessionOptions,
} from './core/manager.ts';
export { SessionManager } from './core/manager.ts';
export type { Attributes, SetAttributeOptions } from './core/session.ts';
export { Session } from './core/session.ts';
export { isWellFormedToken } from './core/token.ts';
export type { SqlExecutor, TransactionalDatabase } from './db/executor.ts';
export { type ChangePage, readChanges } from './db/feed.ts';
export type { SessionEndActor, SessionEndReason, TouchEntry } from './db/store.ts';
export { type MigrateResult, type MigrationSqlOptions, migrate, migrationSql, migrationTags } from './migrate.ts';
export type { FeedEvent, FeedResponse, TouchBatch } from './protocol.ts';
export { BINDING_BASE_URL, type DurableObjectNamespaceLike, type FetcherLike, SyncClient, type SyncClientOptions } from './sync/client.ts';
