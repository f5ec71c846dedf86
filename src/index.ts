export type { AttributeRecord } from './attributes.ts';
export { MAX_DEPTH, MAX_KEY_LENGTH } from './attributes.ts';
export type { SessionRecord } from './cache.ts';
export { SessionCache } from './cache.ts';
export type { SessionConfig } from './config.ts';
export { DEFAULTS } from './config.ts';
export type { SqlExecutor, TransactionalDatabase } from './db.ts';
export {
  type DeviceInfo,
  type DeviceLocation,
  describeUserAgent,
  MAX_DEVICE_LABEL_LENGTH,
  MAX_LOCATION_FIELD_LENGTH,
  MAX_USER_AGENT_LENGTH,
} from './device.ts';
export * from './errors.ts';
export { type ChangePage, readChanges } from './feed.ts';
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
} from './manager.ts';
export { SessionManager } from './manager.ts';
export { type MigrateResult, type MigrationSqlOptions, migrate, migrationSql, migrationTags } from './migrate.ts';
export type { FeedEvent, FeedResponse, TouchBatch } from './protocol.ts';
export type { Attributes, SetAttributeOptions } from './session.ts';
export { Session } from './session.ts';
export type { SessionEndActor, SessionEndReason, TouchEntry } from './store.ts';
export { BINDING_BASE_URL, type DurableObjectNamespaceLike, type FetcherLike, SyncClient, type SyncClientOptions } from './sync.ts';
export { isWellFormedToken } from './token.ts';
