/**
 * The one sync job: whatever comes off the sync queue for one (repository, secondary) pair, run
 * under the pair's lease. A full sync reads every tag; an event job (the tags and digests events
 * named) reads only those. Both then go the same way: one report, one record transition
 * (`afterSyncJob`), one metric emitter, one follow-up policy (`followUps`). Nothing is dropped: a
 * held lease defers the job, and what a job leaves goes back to the queue.
 */
import {
  errorMessage,
  syncRepository,
  syncTags,
  validateRepositoryName,
  type Registry,
  type Scope,
  type SyncReport,
  type SyncState,
  type SyncStatus,
  type TagSyncReport,
} from '../engine/index.js';
import { isEventJob } from './events/coalesce.js';
import { eventJobInScope } from './events/in-scope.js';
import { followUps, sendFollowUps } from './follow-up.js';
import { underLease, type Leased } from './job-frame.js';
import type { LeaseHeld } from './lease-held-message.js';
import type { EventJob, SyncMessage } from './messages.js';
import type { Budget, MetricName, Metrics, Registries, Runtime } from './ports.js';
import { FIRST_TAGS, admitSync, afterSyncJob, type RepositoryRecord } from './record.js';
import { WORK_FRACTION, delaySeconds } from './timing.js';

export type { EventJob };
export { MAX_ATTEMPTS } from './follow-up.js';

/** A job that did no work: why (its record is untouched). Never a report's `skipped`, which names tags changed on the primary. */
export type NotRun<R extends string> = { kind: 'not-run'; reason: R };

export type SyncOutcome =
  | { kind: 'synced' | 'failed' | 'continued' | 'guard-held' | 'deletes-refused' | 'tags-refused'; record: RepositoryRecord; report?: SyncReport }
  | LeaseHeld
  | NotRun<'backing-off' | 'stale-retry' | 'deferred' | 'lease-lost' | 'out-of-scope'>;

/** An event job's outcome is its report's status ('failed' when it threw). */
export type EventJobOutcome = { kind: SyncStatus; record: RepositoryRecord; report?: TagSyncReport } | LeaseHeld | NotRun<'lease-lost'>;

/**
 * An event job's lease lasts at most this long (plus the grace), whatever the invocation's budget:
 * a crashed job holds its pair up for minutes, not for the rest of a 15-minute invocation. Tags
 * not started by WORK_FRACTION of it go back to the queue.
 */
export const EVENT_JOB_MAX_MS = 5 * 60_000;

/** Whatever comes off the sync queue: an event job, or a full sync. */
export async function runSyncJob(message: SyncMessage, registries: Registries, runtime: Runtime, budget: Budget): Promise<EventJobOutcome | SyncOutcome> {
  const scoped = isEventJob(message) ? eventJobInScope(message, registries.scopeOf(message.secondary)) : message;
  if (!scoped) return outOfScope(message, registries.scopeOf(message.secondary), runtime);
  return isEventJob(scoped) ? processEventJob(scoped, registries, runtime, budget) : processSyncMessage(scoped, registries, runtime, budget);
}

/** A full sync: admitted by the record's retry schedule, then every tag under the lease. */
export async function processSyncMessage(message: SyncMessage, registries: Registries, runtime: Runtime, budget: Budget): Promise<SyncOutcome> {
  const { store, logger } = runtime;
  const key = { repository: message.repository, secondary: message.secondary };
  // An unknown secondary throws here, before the lease: the message is poison, not a failed sync.
  const secondary = registries.secondary(message.secondary);
  const scope = registries.scopeOf(message.secondary);
  if (!scope.hasRepository(message.repository)) return outOfScope(key, scope, runtime);
  const now = runtime.clock();
  const admission = admitSync(await store.get(key), message, now);
  if (admission.kind === 'skip') {
    logger.info('sync skipped', { ...key, reason: admission.reason });
    return { kind: 'not-run', reason: admission.reason };
  }
  if (admission.kind === 'defer') {
    await runtime.syncQueue.send([message], { delaySeconds: delaySeconds(admission.delayMs) });
    return { kind: 'not-run', reason: 'deferred' };
  }
  const leaseHolder = {
    kind: 'sync' as const,
    deep: message.deep ?? false,
    startedAt: now,
    ...(message.maxPrune !== undefined ? { maxPrune: message.maxPrune } : {}),
  };
  const holder = { syncState: 'started' as const, syncStartedAt: new Date(now).toISOString(), leaseHolder };
  const frame = { kind: 'sync' as const, name: 'sync', message, queue: runtime.syncQueue, leaseMs: budget.remainingMs, holder };
  const ran = await underLease<SyncMessage, SyncReport | undefined>(frame, runtime, now, async (leased) => {
    const report = await fullSync(
      message,
      { primary: registries.primary(), secondary, scope },
      runtime,
      leased,
      now + budget.remainingMs * WORK_FRACTION,
    ).catch((error: unknown) => {
      logger.error('sync failed', { ...key, error: errorMessage(error) });
      return { error };
    });
    const ended = 'error' in report ? { job: 'sync' as const, error: report.error, uploads: leased.savedUploads } : { job: 'sync' as const, report };
    return { next: afterSyncJob(leased.record, ended, runtime.clock(), runtime.retry, runtime.random), result: 'error' in report ? undefined : report };
  });
  if (ran.kind !== 'ran') return ran;
  if (!ran.released) return { kind: 'not-run', reason: 'lease-lost' };
  const { next, result: report } = ran;
  await sendFollowUps(followUps({ kind: 'full', message, next }, { now: runtime.clock(), retry: runtime.retry, random: runtime.random }), runtime);
  emitSyncMetrics(runtime.metrics, { outcomes: [SYNC_STATE_METRICS[next.syncState] ?? 'SyncContinued'], report });
  if (next.syncState === 'pending') return { kind: 'continued', record: next, report };
  const state = next.syncState;
  const kind = state === 'synced' || state === 'guard-held' || state === 'deletes-refused' || state === 'tags-refused' ? state : 'failed';
  return { kind, record: next, report };
}

/** The primary, and the secondary with its scope, that a job syncs between. */
type JobPair = { primary: Registry; secondary: Registry; scope: Scope };

function fullSync(message: SyncMessage, pair: JobPair, runtime: Runtime, leased: Leased, deadline: number): Promise<SyncReport> {
  return syncRepository(pair.primary, pair.secondary, validateRepositoryName(message.repository), {
    deep: message.deep,
    ...(message.maxPrune !== undefined ? { maxPrune: message.maxPrune } : {}),
    deadline,
    concurrency: runtime.concurrency,
    referrers: runtime.referrers !== false,
    tags: pair.scope.tags,
    logger: runtime.logger,
    ...(leased.record.uploads ? { uploads: leased.record.uploads } : {}),
    onUploadProgress: (sessions) => leased.saveProgress(sessions),
  });
}

/** An event job: the named tags and digests under the lease, for a few minutes at most. */
export async function processEventJob(message: EventJob, registries: Registries, runtime: Runtime, budget: Budget): Promise<EventJobOutcome> {
  const secondary = registries.secondary(message.secondary);
  const now = runtime.clock();
  const remainingMs = Math.min(budget.remainingMs, EVENT_JOB_MAX_MS);
  const holder = { leaseHolder: { kind: 'sync' as const, deep: false, startedAt: now, targeted: true } };
  const frame = { kind: 'sync' as const, name: 'event job', message, queue: runtime.syncQueue, leaseMs: remainingMs, holder };
  let report: TagSyncReport | undefined;
  let failure: unknown;
  let lagSeconds: number | undefined;
  const ran = await underLease<EventJob, TagSyncReport | undefined>(frame, runtime, now, async (leased) => {
    report = await eventSync(
      message,
      { primary: registries.primary(), secondary, scope: registries.scopeOf(message.secondary) },
      runtime,
      leased,
      now + remainingMs * WORK_FRACTION,
    ).catch((error: unknown) => void (failure = error));
    const finished = runtime.clock();
    // Measured once the secondary holds what the events announced; an unsettled tag's (or a digest's) next run measures it.
    const settled = report?.status === 'synced' && report.unsettled.length === 0 && report.digestsLeft.length === 0;
    lagSeconds = settled && message.eventAt !== undefined ? Math.max(0, finished - message.eventAt) / 1000 : undefined;
    const outcome = report ?? { error: failure, uploads: leased.savedUploads };
    return { next: afterSyncJob(leased.record, { job: 'event', message, outcome, lagSeconds }, finished, runtime.retry, runtime.random), result: report };
  });
  if (ran.kind !== 'ran') return ran;
  // Whatever became of the record, the tags and digests left to do go back to the queue: the work is never lost.
  await sendFollowUps(followUps({ kind: 'event', message, report }, { now: runtime.clock(), retry: runtime.retry, random: runtime.random }), runtime);
  logEventJob(message, report, failure, lagSeconds, runtime);
  const outcomes: MetricName[] = [
    !report || report.status === 'failed' ? 'EventJobFailed' : 'EventJobSucceeded',
    ...(report?.removalRefused ? ['SyncDeletesRefused' as const] : []),
  ];
  emitSyncMetrics(runtime.metrics, { outcomes, report, tagsFailed: report ? report.failed.length : (message.tags ?? []).length, lagSeconds });
  if (!ran.released) return { kind: 'not-run', reason: 'lease-lost' };
  return { kind: report?.status ?? 'failed', record: ran.next, ...(report ? { report } : {}) };
}

function eventSync(message: EventJob, pair: JobPair, runtime: Runtime, leased: Leased, deadline: number): Promise<TagSyncReport> {
  return syncTags(pair.primary, pair.secondary, message.repository, message.tags ?? [], {
    tags: pair.scope.tags,
    deadline,
    concurrency: runtime.concurrency,
    referrers: runtime.referrers !== false,
    logger: runtime.logger,
    ...(message.pushed ? { announced: message.pushed } : {}),
    ...(message.digests ? { digests: message.digests } : {}),
    ...(leased.record.uploads ? { uploads: leased.record.uploads } : {}),
    onUploadProgress: (sessions) => leased.saveProgress(sessions),
  });
}

/**
 * A message for a repository the secondary's scope does not keep (sent before the scope changed,
 * or by hand): no work, and nothing recorded; what lies outside a scope is never touched.
 */
export function outOfScope(key: { repository: string; secondary: string }, scope: Scope, runtime: Runtime): NotRun<'out-of-scope'> {
  runtime.logger.info("not in the secondary's scope: nothing done", { ...key, scope: scope.text });
  return { kind: 'not-run', reason: 'out-of-scope' };
}

/** One counter per recorded outcome of a full sync; serverless.yml alarms on SyncFailed, SyncGuardHeld, SyncDeletesRefused and SyncTagsRefused. */
const SYNC_STATE_METRICS: Partial<Record<SyncState, MetricName>> = {
  synced: 'SyncSucceeded',
  failed: 'SyncFailed',
  'guard-held': 'SyncGuardHeld',
  'deletes-refused': 'SyncDeletesRefused',
  'tags-refused': 'SyncTagsRefused',
};

/**
 * The one metric emitter of a sync job, full or targeted: its outcome counters, then what its
 * report says it wrote. `tagsFailed` is counted for event jobs (their failed tags are sent again),
 * `lagSeconds` once an event job's tags are as announced.
 */
export function emitSyncMetrics(
  metrics: Metrics,
  emitted: { outcomes: MetricName[]; report: SyncReport | undefined; tagsFailed?: number; lagSeconds?: number },
): void {
  const { report } = emitted;
  for (const outcome of emitted.outcomes) metrics.add(outcome, 1);
  if (emitted.lagSeconds !== undefined) metrics.add('ReplicationLagSeconds', emitted.lagSeconds, 'Seconds');
  if (emitted.tagsFailed !== undefined) metrics.add('TagsFailed', emitted.tagsFailed);
  if (!report) return;
  metrics.add('TagsCopied', report.done.copied.length);
  metrics.add('TagsRepaired', report.done.repaired.length);
  metrics.add('TagsRemoved', report.done.removed.length);
  metrics.add('BytesCopied', report.bytesCopied, 'Bytes');
  metrics.add('SyncDuration', report.durationMs, 'Milliseconds');
  if (report.referrers) {
    metrics.add('ReferrersCopied', report.referrers.done.copied.length);
    metrics.add('ReferrersRemoved', report.referrers.done.removed.length);
    metrics.add('ReferrersFailed', report.referrers.done.failed.length);
  }
}

/** An event job's one log line, with its lag: 'replicated' (or 'replication failed'; 'event job failed' when it threw). */
function logEventJob(message: EventJob, report: TagSyncReport | undefined, failure: unknown, lagSeconds: number | undefined, runtime: Runtime): void {
  const pair = { repository: message.repository, secondary: message.secondary };
  const digests = message.digests ? { digests: message.digests.length } : {};
  if (!report) return void runtime.logger.error('event job failed', { ...pair, tags: (message.tags ?? []).length, ...digests, error: errorMessage(failure) });
  const line = {
    ...pair,
    ...(report.secondaryRepository ? { secondaryRepository: report.secondaryRepository } : {}),
    status: report.status,
    copied: report.done.copied.slice(0, FIRST_TAGS),
    repaired: report.done.repaired.slice(0, FIRST_TAGS),
    removed: report.done.removed.slice(0, FIRST_TAGS),
    unchanged: report.unchanged.length,
    tags: report.tags.length,
    ...digests,
    ...(report.digestsLeft.length > 0 ? { digestsLeft: report.digestsLeft.slice(0, FIRST_TAGS) } : {}),
    ...(report.unsettled.length > 0 ? { unsettled: report.unsettled.slice(0, FIRST_TAGS) } : {}),
    ...(lagSeconds !== undefined ? { lagSeconds: Math.round(lagSeconds * 1000) / 1000 } : {}),
    durationMs: report.durationMs,
    ...(report.failed.length > 0 ? { failed: report.failed.slice(0, FIRST_TAGS) } : {}),
    ...(report.skipped.length > 0 ? { skipped: report.skipped.slice(0, FIRST_TAGS) } : {}),
    ...(report.removalRefused ? { removalRefused: report.removalRefused } : {}),
  };
  if (report.status === 'failed') runtime.logger.error('replication failed', line);
  else runtime.logger.info('replicated', line);
}

/** A dry run for direct invocation: the plan, nothing written, no state touched. */
export async function planSync(
  repository: string,
  secondaryName: string,
  registries: Registries,
  runtime: Runtime,
  deep = false,
  maxPrune?: number,
): Promise<SyncReport> {
  return syncRepository(registries.primary(), registries.secondary(secondaryName), validateRepositoryName(repository), {
    dryRun: true,
    tags: registries.scopeOf(secondaryName).tags,
    deep,
    ...(maxPrune !== undefined ? { maxPrune } : {}),
    concurrency: runtime.concurrency,
    referrers: runtime.referrers !== false,
    logger: runtime.logger,
  });
}
