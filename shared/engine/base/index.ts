/** What every stage stands on: the OCI spec's types and names, the engine's errors and statuses, logs, the worker pool, backoff and deadlines. */
export { backoffDelay } from './backoff.js';
export { DEFAULT_CONCURRENCY, workerPool } from './concurrency.js';
export {
  ERROR_CODES,
  GeoSyncError,
  NEEDS_A_PERSON,
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
export { STATUSES, type OverallStatus, type Status, type SyncState, type SyncStatus, type VerifyStatus } from './status.js';
export { describeZodIssues, zodIssuePaths } from './zod-issues.js';
