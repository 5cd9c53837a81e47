/** Job: sync one (repository, secondary) pair under a lease, record the outcome, schedule what follows. */
import { errorMessage, syncRepository, validateRepositoryName, type Scope, type SyncReport, type SyncState } from '../engine/index.js';
import { underLease } from './job-frame.js';
import type { LeaseHeld } from './lease-held-message.js';
import type { SyncMessage } from './messages.js';
import type { Budget, Registries, Runtime } from './ports.js';
import { admitSync, afterSync, afterSyncError, withUploads, type RepositoryRecord } from './record.js';
import { WORK_FRACTION, delaySeconds } from './timing.js';

export type SyncOutcome =
  | { kind: 'synced' | 'failed' | 'continued' | 'guard-held' | 'deletes-refused'; record: RepositoryRecord; report?: SyncReport }
  | LeaseHeld
  | { kind: 'skipped'; reason: 'backing-off' | 'stale-retry' | 'deferred' | 'lease-lost' | 'out-of-scope' };

export async function processSyncMessage(message: SyncMessage, registries: Registries, runtime: Runtime, budget: Budget): Promise<SyncOutcome> {
  const { store, logger } = runtime;
  const key = { repository: message.repository, secondary: message.secondary };
  const secondary = registries.secondary(message.secondary);
  const scope = registries.scopeOf(message.secondary);
  if (!scope.hasRepository(message.repository)) return outOfScope(key, scope, runtime);
  const now = runtime.clock();

  const admission = admitSync(await store.get(key), message, now);
  if (admission.kind === 'skip') {
    logger.info('sync skipped', { ...key, reason: admission.reason });
    return { kind: 'skipped', reason: admission.reason };
  }
  if (admission.kind === 'defer') {
    await runtime.syncQueue.send([message], { delaySeconds: delaySeconds(admission.delayMs) });
    return { kind: 'skipped', reason: 'deferred' };
  }

  const frame = {
    kind: 'sync' as const,
    name: 'sync',
    message,
    queue: runtime.syncQueue,
    leaseMs: budget.remainingMs,
    holder: {
      syncState: 'started' as const,
      syncStartedAt: new Date(now).toISOString(),
      leaseHolder: {
        kind: 'sync' as const,
        deep: message.deep ?? false,
        startedAt: now,
        ...(message.maxPrune !== undefined ? { maxPrune: message.maxPrune } : {}),
      },
    },
  };
  const ran = await underLease<SyncMessage, SyncReport | undefined>(frame, runtime, now, async (leased) => {
    try {
      const report = await syncRepository(registries.primary(), secondary, validateRepositoryName(message.repository), {
        deep: message.deep,
        ...(message.maxPrune !== undefined ? { maxPrune: message.maxPrune } : {}),
        deadline: now + budget.remainingMs * WORK_FRACTION,
        concurrency: runtime.concurrency,
        referrers: runtime.referrers !== false,
        tags: scope.tags,
        logger,
        ...(leased.record.uploads ? { uploads: leased.record.uploads } : {}),
        onUploadProgress: (sessions) => leased.saveProgress(sessions),
      });
      return { next: afterSync(leased.record, report, runtime.clock(), runtime.retry, runtime.random), result: report };
    } catch (error) {
      logger.error('sync failed', { ...key, error: errorMessage(error) });
      return {
        next: afterSyncError(withUploads(leased.record, leased.savedUploads), error, runtime.clock(), runtime.retry, runtime.random),
        result: undefined,
      };
    }
  });
  if (ran.kind !== 'ran') return ran;
  if (!ran.released) return { kind: 'skipped', reason: 'lease-lost' };
  const { next, result: report } = ran;
  await scheduleFollowUps(message, next, runtime);
  recordMetrics(next, report, runtime);

  if (next.syncState === 'pending') return { kind: 'continued', record: next, report };
  const kind = next.syncState === 'synced' || next.syncState === 'guard-held' || next.syncState === 'deletes-refused' ? next.syncState : 'failed';
  return { kind, record: next, report };
}

/**
 * A message for a repository the secondary's scope does not keep (sent before the scope changed,
 * or by hand): no work, and nothing recorded; what lies outside a scope is never touched.
 */
export function outOfScope(key: { repository: string; secondary: string }, scope: Scope, runtime: Runtime): { kind: 'skipped'; reason: 'out-of-scope' } {
  runtime.logger.info("not in the secondary's scope: nothing done", { ...key, scope: scope.text });
  return { kind: 'skipped', reason: 'out-of-scope' };
}

async function scheduleFollowUps(message: SyncMessage, next: RepositoryRecord, runtime: Runtime): Promise<void> {
  const key = { repository: next.repository, secondary: next.secondary };
  if (next.syncState === 'pending') {
    // Out of time: the next invocation re-plans from what the secondary holds now, under the same prune limit.
    const maxPrune = message.maxPrune !== undefined ? { maxPrune: message.maxPrune } : {};
    await runtime.syncQueue.send([{ ...key, ...(message.deep ? { deep: true } : {}), ...maxPrune, continuation: Math.max(1, next.continuations ?? 1) }]);
  } else if (next.syncState === 'failed') {
    // A retry runs under the default prune limit: a human's higher limit was for that moment.
    const delayMs = Date.parse(next.nextRetryAt!) - runtime.clock();
    await runtime.syncQueue.send([{ ...key, retry: next.retryCount }], { delaySeconds: delaySeconds(delayMs) });
  } else if (next.syncState !== 'synced' || next.verifyState !== 'succeeded') {
    // Verify after every sync that wrote, until a pair has been verified once, and after a held
    // guard or refused deletes (no retry follows those): the verification names the tags left.
    await runtime.verifyQueue.send([key]);
  }
}

/** One counter per recorded outcome; serverless.yml alarms on SyncFailed, SyncGuardHeld and SyncDeletesRefused. */
const SYNC_STATE_METRICS: Partial<Record<SyncState, string>> = {
  synced: 'SyncSucceeded',
  failed: 'SyncFailed',
  'guard-held': 'SyncGuardHeld',
  'deletes-refused': 'SyncDeletesRefused',
};

function recordMetrics(next: RepositoryRecord, report: SyncReport | undefined, runtime: Runtime): void {
  const { metrics } = runtime;
  metrics.add(SYNC_STATE_METRICS[next.syncState] ?? 'SyncContinued', 1);
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
