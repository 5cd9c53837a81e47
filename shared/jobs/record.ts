/**
 * The state machine of one (repository, secondary) pair, as pure functions from the current
 * record and an outcome to the next record. No I/O here: the jobs read, decide with
 * these, then write.
 */
import {
  NEEDS_A_PERSON,
  backoffDelay,
  type ChecksumKind,
  errorMessage,
  uploadsAdvanced,
  type OverallStatus,
  type Status,
  type SyncReport,
  type TagSyncReport,
  type SyncState,
  type UploadSession,
  type VerifyReport,
} from '../engine/index.js';
import type { EventJob, SyncMessage } from './messages.js';

/**
 * A record's sync state is a SyncState of the shared vocabulary (engine/base/status.ts).
 * guard-held: the prune guard stopped removals (a human decides: a manual sync with maxPrune, or
 * `geo-sync run --max-prune`); deletes-refused: the secondary refuses deletes, extra tags remain;
 * tags-refused: every tag that failed is one only a person can clear (NEEDS_A_PERSON: an immutable
 * tag, a repository the role may not create), the other tags were copied.
 * Neither is a failure to retry blindly: no retry is scheduled, the retry count is left as it
 * was, `syncError` says why, and the next scheduled run looks again.
 *
 * The verify state speaks the same vocabulary: pending (not verified since the last sync that
 * wrote), synced (both checksums agree), mismatch (they do not), failed (the verify itself
 * errored; `verifyError` says why). Records written before these words said 'succeeded' and, for
 * both a mismatch and an error, 'failed': `normalizedRecord` reads them as the words of today.
 */
export type VerifyState = Extract<Status, 'pending' | 'synced' | 'mismatch' | 'failed'>;

/**
 * A record as a store read it, in today's words. Records stored before the verify state spoke
 * the shared vocabulary said 'succeeded' (now 'synced') and 'failed' for a mismatch as for an
 * error (a mismatch has no `verifyError`): both stores call this on every read, so those records
 * still read; each is written in today's words on its next release. The table's byVerifyState
 * index holds both spellings until then.
 */
export function normalizedRecord(record: RepositoryRecord): RepositoryRecord {
  const stored = record.verifyState as VerifyState | 'succeeded';
  if (stored === 'succeeded') return { ...record, verifyState: 'synced' };
  if (stored === 'failed' && record.verifyError === undefined) return { ...record, verifyState: 'mismatch' };
  return record;
}

export interface RecordKey {
  repository: string;
  secondary: string;
}

/** How many tag names of each kind of difference a record keeps. */
export const FIRST_TAGS = 10;
/**
 * A sync that has continued this often across deadlines is recorded as failed rather than looping.
 * An invocation that moved a chunked upload further than the record held does not count: a big
 * blob over a slow link takes as many invocations as it needs while its bytes advance.
 */
export const MAX_CONTINUATIONS = 20;

export interface RepositoryRecord extends RecordKey {
  syncState: SyncState;
  verifyState: VerifyState;
  createdAt: string;
  updatedAt: string;
  syncStartedAt?: string;
  syncedAt?: string;
  verifiedAt?: string;
  lastSync?: {
    status: SyncReport['status'];
    copied: number;
    repaired: number;
    removed: number;
    failedTags: number;
    bytes: number;
    durationMs: number;
    finishedAt: string;
    /** Referrers (OCI 1.1) copied and removed, where the primary serves the API. */
    referrers?: { copied: number; removed: number; failed: number; kept: number };
  };
  /** Both checksums of the last verify, and the tag scope they are over (absent in records older than scopes: every tag). */
  checksum?: { kind: ChecksumKind; primary: string; secondary: string; scope?: { tags: string; hash: string } };
  /** The repository's name on the secondary, where its prefix places it elsewhere. */
  secondaryRepository?: string;
  differences?: {
    missing: number;
    extra: number;
    mismatched: number;
    firstMissing: string[];
    firstExtra: string[];
    firstMismatched: string[];
    /** Referrers missing, extra or with another artifactType on the secondary; `first` names their digests. */
    referrers?: { missing: number; extra: number; mismatched: number; first: string[] };
  };
  /**
   * Why the last sync did not end synced: the failure, the held guard's reason, or the refused
   * deletes with the tags left in place (engine messages name hosts and tags, never credentials).
   */
  syncError?: string;
  verifyError?: string;
  /** Failed syncs in a row; only a successful sync resets it. */
  retryCount: number;
  nextRetryAt?: string;
  continuations?: number;
  /**
   * Chunked blob uploads left unfinished on the secondary, saved after each chunk: the next sync
   * resumes them. Each location carries the registry's signed upload state: never logged.
   */
  uploads?: UploadSession[];
  leaseOwner?: string;
  /** Epoch ms; compared in the lease's conditional write. */
  leaseExpiresAt?: number;
  /** What the lease is held for and since when (epoch ms): a message that finds it held decides by it (lease-decision.ts). */
  leaseHolder?: { kind: 'sync' | 'verify'; deep: boolean; startedAt: number; maxPrune?: number; targeted?: boolean };
  /** The last event job (shared/jobs/sync.ts): when its earliest event was, what it did, how it ended. */
  lastEvent?: LastEvent;
  /** Seconds from the last event job's earliest event to the secondary holding its tags. */
  lagSeconds?: number;
}

export interface LastEvent {
  /** The earliest registry event behind the job (ISO). */
  at: string;
  finishedAt: string;
  status: 'synced' | 'differences' | 'failed' | 'incomplete';
  tags: number;
  firstTags: string[];
  /** Manifests the job was asked for by digest (referrers); absent when none. */
  digests?: number;
  copied: number;
  repaired: number;
  removed: number;
  error?: string;
}

/** Where a fan-out run over the catalog has got to; one per run kind, so overlapping runs are noticed. */
export interface FanOutCheckpoint {
  id: string;
  runId: string;
  cursor?: string;
  enqueued: number;
  startedAt: string;
  updatedAt: string;
  finishedAt?: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function newRecord(key: RecordKey, now: number): RepositoryRecord {
  return { ...key, syncState: 'pending', verifyState: 'pending', createdAt: iso(now), updatedAt: iso(now), retryCount: 0 };
}

/** A failed sync's backoff: the first delay, and the longest. */
export interface RetryPolicy {
  baseMs: number;
  capMs: number;
}

/** The wait before the retry of the `retryCount`-th failed sync in a row: the engine's backoff, the first failure at its base. */
export function retryDelayMs(retryCount: number, policy: RetryPolicy, random: () => number): number {
  return backoffDelay(retryCount - 1, policy, random);
}

export type Admission =
  | { kind: 'run' }
  | { kind: 'skip'; reason: 'backing-off' | 'stale-retry' }
  /** A retry message that arrived early (SQS delays stop at 15 minutes): send it again for the rest. */
  | { kind: 'defer'; delayMs: number };

/** The record with these upload sessions kept in place of its own (none: the field removed). */
export function withUploads(record: RepositoryRecord, uploads: readonly UploadSession[] | undefined): RepositoryRecord {
  const { uploads: _u, ...rest } = record;
  return uploads && uploads.length > 0 ? { ...rest, uploads: [...uploads] } : rest;
}

/** Whether a sync message should run now, given the record's retry schedule. */
export function admitSync(record: RepositoryRecord | undefined, message: SyncMessage, now: number): Admission {
  if (message.force || message.continuation !== undefined || !record) return { kind: 'run' };
  const waitMs = record.nextRetryAt ? Date.parse(record.nextRetryAt) - now : 0;
  if (message.retry !== undefined) {
    // Another failure or a success happened since this retry was scheduled.
    if (record.syncState !== 'failed' || record.retryCount !== message.retry) return { kind: 'skip', reason: 'stale-retry' };
    return waitMs > 0 ? { kind: 'defer', delayMs: waitMs } : { kind: 'run' };
  }
  return record.syncState === 'failed' && waitMs > 0 ? { kind: 'skip', reason: 'backing-off' } : { kind: 'run' };
}

/** What a run wrote, as a record counts it. */
function doneCounts(report: SyncReport): { copied: number; repaired: number; removed: number } {
  return { copied: report.done.copied.length, repaired: report.done.repaired.length, removed: report.done.removed.length };
}

/** The record as a job leaves it, whatever the job: the lease dropped, the time stamped. */
function released(record: RepositoryRecord, now: number): RepositoryRecord {
  return { ...withoutLease(record), updatedAt: iso(now) };
}

/**
 * The one record transition of a sync job. A full sync ('sync') moves the pair's sync state; an
 * event job ('event') records its own outcome and lag and leaves the full sync's state as it was.
 */
export function afterSyncJob(record: RepositoryRecord, ended: SyncJobEnd, now: number, policy: RetryPolicy, random: () => number): RepositoryRecord {
  if (ended.job === 'event') return afterEventJob(record, ended, now);
  if ('error' in ended) return afterSyncError(withUploads(record, ended.uploads), ended.error, now, policy, random);
  return afterSync(record, ended.report, now, policy, random);
}

/** How a sync job ended: its report, or the error it threw (with the upload sessions it saved). */
export type SyncJobEnd =
  | { job: 'sync'; report: SyncReport }
  | { job: 'sync'; error: unknown; uploads: UploadSession[] | undefined }
  | {
      job: 'event';
      message: EventJob;
      /** The job's report, or the error it threw with the upload sessions it saved. */
      outcome: TagSyncReport | { error: unknown; uploads: UploadSession[] | undefined };
      lagSeconds: number | undefined;
    };

export function afterSync(record: RepositoryRecord, report: SyncReport, now: number, policy: RetryPolicy, random: () => number): RepositoryRecord {
  const lastSync: RepositoryRecord['lastSync'] = {
    status: report.status,
    ...doneCounts(report),
    failedTags: report.failed.length,
    bytes: report.bytesCopied,
    durationMs: report.durationMs,
    finishedAt: iso(now),
    ...(report.referrers ? { referrers: referrerCounts(report.referrers.done) } : {}),
  };
  const referrersWritten = (lastSync.referrers?.copied ?? 0) + (lastSync.referrers?.removed ?? 0);
  const wrote = lastSync.copied + lastSync.repaired + lastSync.removed + referrersWritten > 0;
  const base = {
    ...released(withUploads(record, report.uploads), now),
    ...(report.secondaryRepository ? { secondaryRepository: report.secondaryRepository } : {}),
    lastSync,
    ...(wrote ? { verifyState: 'pending' as const } : {}),
  };
  if (report.status === 'incomplete') {
    const advanced = uploadsAdvanced(record.uploads, report.uploads);
    const continuations = (record.continuations ?? 0) + (advanced ? 0 : 1);
    if (continuations > MAX_CONTINUATIONS) return failed(base, `did not finish within ${MAX_CONTINUATIONS} invocations`, now, policy, random);
    return { ...base, syncState: 'pending', continuations };
  }
  if (report.status === 'synced') {
    const { syncError: _e, nextRetryAt: _n, continuations: _c, ...rest } = base;
    return { ...rest, syncState: 'synced', syncedAt: iso(now), retryCount: 0 };
  }
  // Failed tags are retried first; what a human must decide is recorded once nothing failed.
  if (report.failed.length === 0 && report.guard) return heldForAHuman(base, 'guard-held', guardAdvice(report.guard.reason));
  if (report.failed.length === 0 && report.removalRefused) return heldForAHuman(base, 'deletes-refused', describeRefusal(report.removalRefused));
  if (report.failed.length > 0 && report.failed.every(needsAPerson)) return heldForAHuman(base, 'tags-refused', describeTagsRefused(report.failed));
  return failed(base, describeUnsynced(report) ?? `sync ended with status ${report.status}`, now, policy, random);
}

/** The record after an event job: its outcome and lag. The full sync's state is left as it was. */
function afterEventJob(record: RepositoryRecord, ended: Extract<SyncJobEnd, { job: 'event' }>, now: number): RepositoryRecord {
  const { message, outcome, lagSeconds } = ended;
  const tags = 'error' in outcome ? (message.tags ?? []) : outcome.tags;
  const error = 'error' in outcome ? errorMessage(outcome.error) : describeUnsynced(outcome);
  const lastEvent: LastEvent = {
    at: iso(message.eventAt ?? message.requestedAt ?? now),
    finishedAt: iso(now),
    status: 'error' in outcome ? 'failed' : outcome.status,
    tags: tags.length,
    firstTags: tags.slice(0, FIRST_TAGS),
    ...(message.digests ? { digests: message.digests.length } : {}),
    ...('error' in outcome ? { copied: 0, repaired: 0, removed: 0 } : doneCounts(outcome)),
    ...(error ? { error } : {}),
  };
  return { ...released(withUploads(record, outcome.uploads), now), lastEvent, ...(lagSeconds !== undefined ? { lagSeconds } : {}) };
}

/** A sync that completed but left differences on purpose: not a failure, so no retry and no backoff. */
function heldForAHuman(record: RepositoryRecord, syncState: 'guard-held' | 'deletes-refused' | 'tags-refused', reason: string): RepositoryRecord {
  const { nextRetryAt: _n, continuations: _c, ...rest } = record;
  return { ...rest, syncState, syncError: reason };
}

/** The held guard as a record says it: the engine's reason, and the ways a human raises the limit. */
function guardAdvice(reason: string): string {
  return `${reason}. Check the primary's tag listing, then raise the prune limit (maxPrune in a manual invoke, or geo-sync run --max-prune) if this is intended`;
}

/** A failed tag no retry clears (its code is one of NEEDS_A_PERSON). */
export function needsAPerson(failure: { code?: string }): boolean {
  return failure.code !== undefined && NEEDS_A_PERSON.has(failure.code);
}

function describeTagsRefused(failures: readonly { tag: string; error: string; code?: string }[]): string {
  const more =
    failures.length > 1
      ? ` (and ${failures.length - 1} more tag(s) refused: ${failures
          .slice(1, FIRST_TAGS)
          .map((f) => f.tag)
          .join(', ')})`
      : '';
  return `${failures[0]!.code}: ${failures[0]!.error}${more}; no retry is scheduled: a person must change the secondary or the tag`;
}

function describeRefusal(refused: { reason: string; tags: string[] }): string {
  const first = refused.tags.slice(0, FIRST_TAGS).join(', ');
  const more = refused.tags.length > FIRST_TAGS ? ` and ${refused.tags.length - FIRST_TAGS} more` : '';
  return `${refused.reason}; ${refused.tags.length} extra tag(s) left in place: ${first}${more}`;
}

export function afterSyncError(record: RepositoryRecord, error: unknown, now: number, policy: RetryPolicy, random: () => number): RepositoryRecord {
  return failed({ ...withoutLease(record), updatedAt: iso(now) }, errorMessage(error), now, policy, random);
}

function failed(record: RepositoryRecord, reason: string, now: number, policy: RetryPolicy, random: () => number): RepositoryRecord {
  const retryCount = record.retryCount + 1;
  const { continuations: _c, ...rest } = record;
  return { ...rest, syncState: 'failed', syncError: reason, retryCount, nextRetryAt: iso(now + retryDelayMs(retryCount, policy, random)) };
}

/**
 * The one error describer of a sync job's report: why it did not end synced, in a line, the
 * first cause first (failed tags, refused deletes, tags changed meanwhile, digests left, then
 * referrers). Undefined for a report with nothing to say.
 */
export function describeUnsynced(report: SyncReport): string | undefined {
  if (report.failed.length > 0) {
    const first = report.failed[0]!;
    const also = report.guard
      ? `; the prune guard also held: ${report.guard.reason}`
      : report.removalRefused
        ? `; also ${describeRefusal(report.removalRefused)}`
        : '';
    return `${report.failed.length} tag(s) failed, first ${first.tag}: ${first.error}${also}`;
  }
  if (report.removalRefused) return describeRefusal(report.removalRefused);
  if (report.skipped.length > 0) return `${report.skipped.length} tag(s) changed on the primary during the sync`;
  if (report.digestsLeft && report.digestsLeft.length > 0) return `${report.digestsLeft.length} digest(s) not done; sent again`;
  const referrers = report.referrers?.done;
  if (referrers && referrers.failed.length > 0) {
    const first = referrers.failed[0]!;
    return `${referrers.failed.length} referrer(s) failed, first ${first.digest} (of ${first.subject}): ${first.error}`;
  }
  if (referrers && referrers.kept.length > 0) {
    const first = referrers.kept[0]!;
    return `${referrers.kept.length} extra referrer(s) left on the secondary, first ${first.digest}: ${first.reason}`;
  }
  return undefined;
}

export function afterVerify(record: RepositoryRecord, report: VerifyReport, now: number): RepositoryRecord {
  const { verifyError: _e, ...rest } = withoutLease(record);
  return {
    ...rest,
    verifyState: report.status,
    verifiedAt: iso(now),
    updatedAt: iso(now),
    checksum: { kind: report.checksum, primary: report.primaryChecksum, secondary: report.secondaryChecksum, scope: report.scope },
    ...(report.secondaryRepository ? { secondaryRepository: report.secondaryRepository } : {}),
    differences: {
      missing: report.missing.length,
      extra: report.extra.length,
      mismatched: report.mismatched.length,
      firstMissing: report.missing.slice(0, FIRST_TAGS),
      firstExtra: report.extra.slice(0, FIRST_TAGS),
      firstMismatched: report.mismatched.slice(0, FIRST_TAGS).map((m) => m.tag),
      ...(report.referrers ? { referrers: referrerDifferences(report.referrers) } : {}),
    },
  };
}

function referrerCounts(done: NonNullable<SyncReport['referrers']>['done']) {
  return { copied: done.copied.length, removed: done.removed.length, failed: done.failed.length, kept: done.kept.length };
}

function referrerDifferences(r: NonNullable<VerifyReport['referrers']>) {
  const first = [...r.missing, ...r.extra, ...r.mismatched].slice(0, FIRST_TAGS).map((edge) => edge.digest);
  return { missing: r.missing.length, extra: r.extra.length, mismatched: r.mismatched.length, first };
}

export function afterVerifyError(record: RepositoryRecord, error: unknown, now: number): RepositoryRecord {
  return { ...withoutLease(record), verifyState: 'failed', verifyError: errorMessage(error), verifiedAt: iso(now), updatedAt: iso(now) };
}

/** The record without its lease: what a store writes back on release, and what `status` shows. */
export function withoutLease(record: RepositoryRecord): RepositoryRecord {
  const { leaseOwner: _o, leaseExpiresAt: _e, leaseHolder: _h, ...rest } = record;
  return rest;
}

/**
 * The one-word status `geo-sync status` shows: the worst of sync and verification. A sync that
 * failed, held its guard or met refused deletes shows that, whatever verification found.
 */
export function overallStatus(record: RepositoryRecord): OverallStatus {
  if (record.syncState !== 'synced') return record.syncState;
  // A verify that errored shows as a mismatch, as it always has: nobody may call the pair synced.
  if (record.verifyState === 'mismatch' || record.verifyState === 'failed') return 'mismatch';
  return record.verifyState === 'synced' ? 'synced' : 'unverified';
}
