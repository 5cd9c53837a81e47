/**
 * The jobs' one entry: what a queue message, a schedule or a command runs (fan-out, sync under a
 * lease, verify, direct invocation), the messages between them, the ports they are given and the
 * record each (repository, secondary) pair keeps. Doors and adapters import jobs from here only.
 */
export { syncDirect, verifyDirect } from './direct.js';
export { RecordingCatalog, fanOut, repositoriesInScope, type Catalog, type FanOutOutcome } from './fan-out.js';
export {
  REPOSITORY_STATES,
  parseDuration,
  percentile,
  readiness,
  replicationLag,
  repositoryReadiness,
  type NotReadyRepository,
  type Readiness,
  type ReadinessInput,
  type ReplicationLag,
  type RepositoryReadiness,
  type ScopeSource,
  type SecondaryReadiness,
} from './readiness.js';
export { emitReadiness } from './readiness-metrics.js';
export type { LeaseHeld } from './lease-held-message.js';
export { DirectRequest, FanOutRequest, ReadyRequest, SyncMessage, VerifyMessage, isActionRequest, parseInput, parseMessage, parseQueued } from './messages.js';
export {
  METRIC_NAMES,
  noMetrics,
  type Budget,
  type MetricName,
  type MetricUnit,
  type Metrics,
  type Queue,
  type Registries,
  type Runtime,
  type ScopedSecondary,
  type StateStore,
} from './ports.js';
export {
  describeUnsynced,
  newRecord,
  normalizedRecord,
  overallStatus,
  withUploads,
  withoutLease,
  type FanOutCheckpoint,
  type RecordKey,
  type RepositoryRecord,
  type RetryPolicy,
} from './record.js';
export { openRegistries, registryCatalog, type RegistriesOptions } from './registries.js';
export { readRepositoriesFile, repositorySourceFrom, sourceCatalog, type RepositorySource } from './repository-source.js';
export {
  EVENT_JOB_MAX_MS,
  MAX_ATTEMPTS,
  planSync,
  processEventJob,
  processSyncMessage,
  runSyncJob,
  type EventJob,
  type EventJobOutcome,
  type NotRun,
  type SyncOutcome,
} from './sync.js';
export { processVerifyMessage, type VerifyOutcome } from './verify.js';
export { coalescedRecords } from './events/batch.js';
export { PendingTags, isEventJob, pairKey } from './events/coalesce.js';
export { enqueueEventJobs } from './events/enqueue.js';
export type { DigestHint, EventHints, ReadNotifications, TagHint } from './events/notification.js';
export { isEcrImageAction, readEcrImageAction, type EcrRegistryId } from './events/vendor-notifications.js';
export {
  MAX_BODY_BYTES,
  REFUSAL_REASONS,
  WEBHOOK_FORMATS,
  answerWebhook,
  bearerMatches,
  fixedToken,
  rereadToken,
  type RefusalReason,
  type WebhookDoor,
  type WebhookFormat,
  type WebhookObserver,
  type WebhookRequest,
  type WebhookResponse,
  type WebhookToken,
} from './events/webhook.js';
export { CATALOG_TIMEOUT_MS, DEFAULT_READY_MAX_AGE, readinessReport, type ReadinessReportOptions } from './readiness-report.js';
