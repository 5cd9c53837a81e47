/**
 * Use-case: an event job, the tags and digests events named for one (repository, secondary) pair,
 * made exact under the pair's lease. A sibling of processSyncMessage: the same lease and record, a
 * targeted sync instead of a full one. Nothing is dropped: a held lease defers the job, tags the
 * primary changed meanwhile or that failed and digests not done go back to the queue, and a job
 * that keeps failing becomes a full sync of the repository.
 */
import { errorMessage, syncTags, type TagSyncReport } from '../../engine/index.js';
import type { EventJob, SyncMessage } from '../messages.js';
import type { Budget, Registries, Runtime } from '../ports.js';
import { FIRST_TAGS, retryDelayMs, withUploads, withoutLease, type LastEvent, type RepositoryRecord } from '../record.js';
import { underLease } from '../job-frame.js';
import type { LeaseHeld } from '../lease-held-message.js';
import { outOfScope, processSyncMessage, type SyncOutcome } from '../sync.js';
import { WORK_FRACTION, delaySeconds } from '../timing.js';
import { isEventJob } from './coalesce.js';
import { eventJobInScope } from './in-scope.js';

export type { EventJob };

/** What an event job names, each list possibly empty (the message leaves an empty one out). */
const workOf = (message: EventJob) => ({ tags: message.tags ?? [], digests: message.digests ?? [] });
/** The digests a job was asked for, counted for its record and log line; nothing for a job of tags only. */
const digestCount = (message: EventJob) => (message.digests ? { digests: message.digests.length } : {});

/** Runs of one job's tags before what is left becomes a full sync of the repository. */
export const MAX_ATTEMPTS = 5;
/**
 * An event job's lease lasts at most this long (plus the grace), whatever the invocation's budget:
 * a crashed job holds its pair up for minutes, not for the rest of a 15-minute invocation. Tags
 * not started by WORK_FRACTION of it go back to the queue.
 */
export const EVENT_JOB_MAX_MS = 5 * 60_000;

export type EventJobOutcome =
  { kind: 'replicated' | 'differences' | 'failed'; record: RepositoryRecord; report?: TagSyncReport } | LeaseHeld | { kind: 'skipped'; reason: 'lease-lost' };

/** Whatever comes off the sync queue: an event job, or a full sync. */
export async function runSyncJob(message: SyncMessage, registries: Registries, runtime: Runtime, budget: Budget): Promise<EventJobOutcome | SyncOutcome> {
  const scoped = isEventJob(message) ? eventJobInScope(message, registries.scopeOf(message.secondary)) : message;
  if (!scoped) return outOfScope(message, registries.scopeOf(message.secondary), runtime);
  return isEventJob(scoped) ? processEventJob(scoped, registries, runtime, budget) : processSyncMessage(scoped, registries, runtime, budget);
}

export async function processEventJob(message: EventJob, registries: Registries, runtime: Runtime, budget: Budget): Promise<EventJobOutcome> {
  const { logger } = runtime;
  const secondary = registries.secondary(message.secondary);
  const now = runtime.clock();
  const remainingMs = Math.min(budget.remainingMs, EVENT_JOB_MAX_MS);
  const frame = {
    kind: 'sync' as const,
    name: 'event job',
    message,
    queue: runtime.syncQueue,
    leaseMs: remainingMs,
    holder: { leaseHolder: { kind: 'sync' as const, deep: false, startedAt: now, targeted: true } },
  };
  let report: TagSyncReport | undefined;
  let failure: unknown;
  let lagSeconds: number | undefined;
  const ran = await underLease(frame, runtime, now, async (leased) => {
    try {
      report = await syncTags(registries.primary(), secondary, message.repository, workOf(message).tags, {
        tags: registries.scopeOf(message.secondary).tags,
        deadline: now + remainingMs * WORK_FRACTION,
        concurrency: runtime.concurrency,
        referrers: runtime.referrers !== false,
        logger,
        ...(message.pushed ? { announced: message.pushed } : {}),
        ...(message.digests ? { digests: message.digests } : {}),
        ...(leased.record.uploads ? { uploads: leased.record.uploads } : {}),
        onUploadProgress: (sessions) => leased.saveProgress(sessions),
      });
    } catch (error) {
      failure = error;
    }
    const finished = runtime.clock();
    // Measured once the secondary holds what the events announced; an unsettled tag's (or a digest's) next run measures it.
    lagSeconds =
      report?.status === 'synced' && report.unsettled.length === 0 && report.digestsLeft.length === 0 && message.eventAt !== undefined
        ? Math.max(0, finished - message.eventAt) / 1000
        : undefined;
    const uploads = report ? report.uploads : leased.savedUploads;
    return {
      next: afterEventJob(withUploads(leased.record, uploads), message, report ?? { error: errorMessage(failure) }, finished, lagSeconds),
      result: report,
    };
  });
  if (ran.kind !== 'ran') return ran;
  // Whatever became of the record, the tags and digests left to do go back to the queue: the work is never lost.
  await requeue(message, report, runtime);
  observe(message, report, failure, lagSeconds, runtime);
  if (!ran.released) return { kind: 'skipped', reason: 'lease-lost' };
  const next = ran.next;
  const kind = !report || report.status === 'failed' ? 'failed' : report.status === 'synced' ? 'replicated' : 'differences';
  return { kind, record: next, ...(report ? { report } : {}) };
}

/** The record after an event job: its outcome and lag. The full sync's state is left as it was. */
export function afterEventJob(
  record: RepositoryRecord,
  message: EventJob,
  outcome: TagSyncReport | { error: string },
  now: number,
  lagSeconds: number | undefined,
): RepositoryRecord {
  const at = new Date(message.eventAt ?? message.requestedAt ?? now).toISOString();
  const { tags } = workOf(message);
  const lastEvent: LastEvent =
    'error' in outcome
      ? {
          at,
          finishedAt: new Date(now).toISOString(),
          status: 'failed',
          tags: tags.length,
          firstTags: tags.slice(0, FIRST_TAGS),
          ...digestCount(message),
          copied: 0,
          repaired: 0,
          removed: 0,
          error: outcome.error,
        }
      : {
          at,
          finishedAt: new Date(now).toISOString(),
          status: outcome.status,
          tags: outcome.tags.length,
          firstTags: outcome.tags.slice(0, FIRST_TAGS),
          ...digestCount(message),
          copied: outcome.done.copied.length,
          repaired: outcome.done.repaired.length,
          removed: outcome.done.removed.length,
          ...(eventJobError(outcome) ? { error: eventJobError(outcome) } : {}),
        };
  return { ...withoutLease(record), updatedAt: new Date(now).toISOString(), lastEvent, ...(lagSeconds !== undefined ? { lagSeconds } : {}) };
}

function eventJobError(report: TagSyncReport): string | undefined {
  if (report.failed.length > 0) return `${report.failed.length} tag(s) failed, first ${report.failed[0]!.tag}: ${report.failed[0]!.error}`;
  if (report.removalRefused) return `${report.removalRefused.reason}: ${report.removalRefused.tags.slice(0, FIRST_TAGS).join(', ')}`;
  if (report.skipped.length > 0) return `${report.skipped.length} tag(s) changed on the primary during the job; sent again`;
  if (report.digestsLeft.length > 0) return `${report.digestsLeft.length} digest(s) not done; sent again`;
  return undefined;
}

/**
 * The tags and digests a job leaves: tags the deadline did not reach go again at once; those the
 * primary changed meanwhile go again at once, and failed ones after a backoff, both counting an
 * attempt; digests not done (the engine does not tell failed from not reached) go as failed tags
 * do; past MAX_ATTEMPTS the repository gets a full sync instead. Unsettled tags (the primary did
 * not show a pushed digest yet) are looked at again after a second, MAX_ATTEMPTS times at most:
 * each run already made them what the primary holds, so an event that never comes true (stale,
 * or forged) ends there. Refused deletes wait for a human. A job that threw leaves everything.
 */
async function requeue(message: EventJob, report: TagSyncReport | undefined, runtime: Runtime): Promise<void> {
  const pair = { repository: message.repository, secondary: message.secondary };
  const carry = { ...(message.eventAt !== undefined ? { eventAt: message.eventAt } : {}), requestedAt: runtime.clock() };
  const attempt = (message.attempt ?? 1) + 1;
  const pushedFor = (tags: string[]) => {
    const pushed = Object.entries(message.pushed ?? {}).filter(([tag]) => tags.includes(tag));
    return pushed.length > 0 ? { pushed: Object.fromEntries(pushed) } : {};
  };
  const again = ({ tags = [], digests = [] }: { tags?: string[]; digests?: string[] }, next: number | undefined): SyncMessage => ({
    ...pair,
    ...carry,
    ...(tags.length > 0 ? { tags, ...pushedFor(tags) } : {}),
    ...(digests.length > 0 ? { digests } : {}),
    ...(next ? { attempt: next } : {}),
  });
  const failed = report ? report.failed.map((f) => f.tag) : workOf(message).tags;
  const digestsLeft = report ? report.digestsLeft : workOf(message).digests;
  const changed = report?.skipped.map((s) => s.tag) ?? [];
  const unsettled = report?.unsettled ?? [];
  if (report && report.notStarted.length > 0) await runtime.syncQueue.send([again({ tags: report.notStarted }, message.attempt)]);
  if (unsettled.length > 0) {
    if (attempt > MAX_ATTEMPTS)
      runtime.logger.warn('the primary never showed the digest a push announced; left as the primary holds it', {
        ...pair,
        tags: unsettled.slice(0, FIRST_TAGS),
      });
    else await runtime.syncQueue.send([again({ tags: unsettled }, attempt)], { delaySeconds: 1 });
  }
  if (failed.length + changed.length + digestsLeft.length === 0) return;
  if (attempt > MAX_ATTEMPTS) {
    runtime.logger.warn('event job gave up on its tags; a full sync of the repository follows', {
      ...pair,
      attempts: message.attempt,
      tags: failed.length + changed.length,
      ...(digestsLeft.length > 0 ? { digests: digestsLeft.length } : {}),
    });
    await runtime.syncQueue.send([{ ...pair, force: true }]);
    return;
  }
  if (changed.length > 0) await runtime.syncQueue.send([again({ tags: changed }, attempt)]);
  if (failed.length + digestsLeft.length > 0) {
    const delay = delaySeconds(retryDelayMs(attempt - 1, runtime.retry, runtime.random));
    await runtime.syncQueue.send([again({ tags: failed, digests: digestsLeft }, attempt)], { delaySeconds: delay });
  }
}

/** One log line per job with its lag, and the metrics: ReplicationLagSeconds, tags (copied, repaired, removed, failed) and bytes, failures. */
function observe(message: EventJob, report: TagSyncReport | undefined, failure: unknown, lagSeconds: number | undefined, runtime: Runtime): void {
  const { logger, metrics } = runtime;
  const pair = { repository: message.repository, secondary: message.secondary };
  if (!report) {
    logger.error('event job failed', { ...pair, tags: workOf(message).tags.length, ...digestCount(message), error: errorMessage(failure) });
    metrics.add('EventJobFailed', 1);
    metrics.add('TagsFailed', workOf(message).tags.length);
    return;
  }
  const line = {
    ...pair,
    ...(report.secondaryRepository ? { secondaryRepository: report.secondaryRepository } : {}),
    status: report.status,
    copied: report.done.copied.slice(0, FIRST_TAGS),
    repaired: report.done.repaired.slice(0, FIRST_TAGS),
    removed: report.done.removed.slice(0, FIRST_TAGS),
    unchanged: report.unchanged.length,
    tags: report.tags.length,
    ...digestCount(message),
    ...(report.digestsLeft.length > 0 ? { digestsLeft: report.digestsLeft.slice(0, FIRST_TAGS) } : {}),
    ...(report.unsettled.length > 0 ? { unsettled: report.unsettled.slice(0, FIRST_TAGS) } : {}),
    ...(lagSeconds !== undefined ? { lagSeconds: Math.round(lagSeconds * 1000) / 1000 } : {}),
    durationMs: report.durationMs,
    ...(report.failed.length > 0 ? { failed: report.failed.slice(0, FIRST_TAGS) } : {}),
    ...(report.skipped.length > 0 ? { skipped: report.skipped.slice(0, FIRST_TAGS) } : {}),
    ...(report.removalRefused ? { removalRefused: report.removalRefused } : {}),
  };
  if (report.status === 'failed') logger.error('replication failed', line);
  else logger.info('replicated', line);
  metrics.add(report.status === 'failed' ? 'EventJobFailed' : 'EventJobSucceeded', 1);
  if (lagSeconds !== undefined) metrics.add('ReplicationLagSeconds', lagSeconds, 'Seconds');
  if (report.removalRefused) metrics.add('SyncDeletesRefused', 1);
  metrics.add('TagsCopied', report.done.copied.length);
  metrics.add('TagsRepaired', report.done.repaired.length);
  metrics.add('TagsRemoved', report.done.removed.length);
  metrics.add('TagsFailed', report.failed.length);
  metrics.add('BytesCopied', report.bytesCopied, 'Bytes');
  if (report.referrers) {
    metrics.add('ReferrersCopied', report.referrers.done.copied.length);
    metrics.add('ReferrersRemoved', report.referrers.done.removed.length);
  }
}
