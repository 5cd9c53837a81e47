/**
 * The ports the jobs need. AWS adapters live in shared/aws, embedded ones in shared/local;
 * the jobs in this folder never know which they were given.
 */
import type { EngineLogger, Registry, Scope, UploadSession } from '../engine/index.js';
import type { FanOutRequest, SyncMessage, VerifyMessage } from './messages.js';
import type { FanOutCheckpoint, RecordKey, RepositoryRecord, RetryPolicy } from './record.js';

/** A message queue: SQS on AWS, an in-process queue locally. */
export interface Queue<M> {
  /** Sends every message (batched by the adapter); `delaySeconds` postpones delivery (SQS caps it at 900). */
  send(messages: M[], options?: { delaySeconds?: number }): Promise<void>;
}

/** Where each (repository, secondary) record and the fan-out checkpoints are kept. */
export interface StateStore {
  get(key: RecordKey): Promise<RepositoryRecord | undefined>;
  /**
   * Takes the record's lease when nobody holds a live one (conditional write), creating the
   * record if needed and setting `fields` (with the `leaseHolder`) in the same write. Undefined when
   * another holder's lease is live; the record then says who holds it and for what.
   */
  acquireLease(
    key: RecordKey,
    lease: { owner: string; expiresAt: number },
    now: number,
    fields?: Partial<RepositoryRecord>,
  ): Promise<RepositoryRecord | undefined>;
  /** Replaces the record and drops the lease, only while `owner` still holds it; false when the lease was lost. */
  release(record: RepositoryRecord, owner: string): Promise<boolean>;
  /**
   * Sets the record's upload sessions (none: the field is removed) while `owner` holds the lease,
   * so a chunked copy's progress outlives an invocation killed before `release`; false when the lease was lost.
   */
  saveProgress(key: RecordKey, owner: string, uploads: UploadSession[]): Promise<boolean>;
  /** Every repository record (checkpoints left out): readiness reads them all, once per catalog-wide fan-out or when asked. */
  list(): Promise<RepositoryRecord[]>;
  getCheckpoint(id: string): Promise<FanOutCheckpoint | undefined>;
  putCheckpoint(checkpoint: FanOutCheckpoint): Promise<void>;
}

/**
 * Every metric the jobs and the AWS adapter emit, by name: serverless.yml's alarms and dashboard
 * name only these (test/aws/template.test.ts holds them to it), and the local listener's
 * Prometheus counters are fed from them.
 */
export const METRIC_NAMES = [
  // A full sync's outcome, one counter per recorded state (SyncFailed, SyncGuardHeld and SyncDeletesRefused are alarmed on).
  'SyncSucceeded',
  'SyncFailed',
  'SyncGuardHeld',
  'SyncDeletesRefused',
  'SyncTagsRefused',
  'SyncContinued',
  'SyncDuration',
  // An event job's outcome and its replication lag (alarmed on).
  'EventJobSucceeded',
  'EventJobFailed',
  'ReplicationLagSeconds',
  // What a sync job of either kind wrote.
  'TagsCopied',
  'TagsRepaired',
  'TagsRemoved',
  'TagsFailed',
  'BytesCopied',
  'ReferrersCopied',
  'ReferrersRemoved',
  'ReferrersFailed',
  // Verification (VerifyMismatch is alarmed on).
  'VerifySucceeded',
  'VerifyMismatch',
  'VerifyErrors',
  'VerifyReferrerDifferences',
  // The lease: messages dropped as busy, or sent again.
  'SyncLeaseBusy',
  'SyncDeferred',
  'VerifyLeaseBusy',
  'VerifyDeferred',
  // Fan-out and the doors.
  'MessagesEnqueued',
  'FanOutRunsCompleted',
  'EventJobsEnqueued',
  'WebhookEvents',
  'WebhookRefused',
  'EcrEventsNotRead',
  'PoisonMessages',
  // Readiness after each catalog-wide fan-out: per secondary (a `secondary` dimension), and the
  // secondaries not ready as one figure without it, which the not-ready alarm watches.
  'SecondaryReady',
  'RepositoriesNotReady',
  'OldestVerificationAge',
  'SecondariesNotReady',
  // Answers 429 (too many requests) a batch of work received: the primary's without a dimension,
  // each secondary's with a `secondary` dimension.
  'RegistryThrottled',
] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** Counters and sizes for dashboards and alarms (CloudWatch EMF on AWS). */
export interface Metrics {
  add(name: MetricName, value: number, unit?: MetricUnit): void;
  /** The same with a `secondary` dimension; an adapter without it (the local listener) leaves these out. */
  addForSecondary?(secondary: string, name: MetricName, value: number, unit?: MetricUnit): void;
}
export type MetricUnit = 'Count' | 'Bytes' | 'Milliseconds' | 'Seconds';

/** A secondary by name, with what it keeps of the primary. */
export interface ScopedSecondary {
  readonly name: string;
  readonly scope: Scope;
}

/** Registry clients for one batch of work: the primary and each named secondary. */
export interface Registries {
  readonly secondaryNames: string[];
  readonly secondaries: readonly ScopedSecondary[];
  /** Throws GeoSyncError UNKNOWN_SECONDARY for a name not configured. */
  scopeOf(name: string): Scope;
  primary(): Registry;
  /** Throws GeoSyncError UNKNOWN_SECONDARY for a name not configured. */
  secondary(name: string): Registry;
  close(): Promise<void>;
}

/** What every job is given: time, randomness and observability are ports too, so tests control them. */
export interface Runtime {
  store: StateStore;
  syncQueue: Queue<SyncMessage>;
  verifyQueue: Queue<VerifyMessage>;
  fanOutQueue: Queue<FanOutRequest>;
  logger: EngineLogger;
  metrics: Metrics;
  clock: () => number;
  random: () => number;
  retry: RetryPolicy;
  /** Parallel registry requests per repository. */
  concurrency: number;
  /** Sync and verify OCI 1.1 referrers where the primary serves the API (default true). */
  referrers?: boolean;
}

/** How long this invocation may run: Lambda's remaining time, or a generous budget locally. */
export interface Budget {
  remainingMs: number;
}

export const noMetrics: Metrics = { add: () => undefined };
