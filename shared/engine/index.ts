/**
 * The engine's one entry: one repository's sync and verify, and what they stand on. The doors
 * (CLI, Lambda handlers), the jobs and the adapters import the engine from here only.
 */
export { backoffDelay } from './backoff.js';
export { CHECKSUM_KINDS, tagChecksum, type ChecksumKind } from './checksum.js';
export { DEFAULT_CONCURRENCY, workerPool } from './concurrency.js';
export { MissingRegistryError, SECONDARY_NAME, endpointsFromEnv, parseSecondaries, secondariesFromEnv, type Endpoints, type SecondarySite } from './config.js';
export { EVERYTHING, EVERY_TAG, compileScope, type Scope, type ScopeConfig, type TagScope } from './scope.js';
export {
  ERROR_CODES,
  GeoSyncError,
  OCI_ERROR_CODES,
  RegistryError,
  errorMessage,
  invalidInput,
  type ErrorCode,
  type GeoSyncErrorCode,
  type OciErrorCode,
  type RegistryDiagnostic,
} from './errors.js';
export { LOG_FORMATS, isLogFormat, isLogLevel, jsonLogger, silentLogger, textLogger, type EngineLogger, type LogFormat, type LogLevel } from './log.js';
export { isValidDigest, validateDigest, validateRepositoryName, validateTag, type Repository } from './oci.js';
export { DEFAULT_MAX_PRUNE, planRepository, type Plan, type TagChange, type TagMap } from './planner.js';
export { RegistryClient } from './registry/client.js';
export type { Registry, TrafficStats } from './registry/registry.js';
export { parseRegistryUrl, type ObservedResponse, type RegistryEndpoint, type TransportOptions } from './registry/transport.js';
export { readTagMap } from './read-tags.js';
export type { MissingObject } from './replicate.js';
export { syncRepository, type SyncOptions } from './whole-repository.js';
export { verifyRepository, type VerifyOptions, type VerifyReport } from './verify.js';
export { STATUSES, type OverallStatus, type Status, type SyncState, type SyncStatus, type VerifyStatus } from './status.js';
export { statusFacts, syncStatus, type StatusFacts, type SyncReport, type TagSyncReport } from './sync-report.js';
export { syncTags, type TagSyncOptions } from './targeted-sync.js';
export { SESSION_MAX_AGE_MS, shownUploads, uploadsAdvanced, type UploadSession } from './upload-session.js';
export { describeZodIssues, zodIssuePaths } from './zod-issues.js';
