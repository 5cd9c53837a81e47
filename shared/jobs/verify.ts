/** Job: verify one (repository, secondary) pair under the lease and record both checksums and the differences. */
import { errorMessage, validateRepositoryName, verifyRepository, type VerifyReport } from '../engine/index.js';
import { underLease } from './job-frame.js';
import type { LeaseHeld } from './lease-held-message.js';
import type { VerifyMessage } from './messages.js';
import type { Budget, MetricName, Registries, Runtime } from './ports.js';
import { afterVerify, afterVerifyError, type RepositoryRecord, type VerifyState } from './record.js';
import { outOfScope, type NotRun } from './sync.js';

/** The record's verify state after the job, in the one vocabulary: synced, mismatch, or failed (the verify itself errored). */
export type VerifyOutcome =
  { kind: Exclude<VerifyState, 'pending'>; record: RepositoryRecord; report?: VerifyReport } | LeaseHeld | NotRun<'lease-lost' | 'out-of-scope'>;

/** One counter per verify outcome; serverless.yml alarms on VerifyMismatch and VerifyErrors. */
const VERIFY_METRICS: Record<Exclude<VerifyState, 'pending'>, MetricName> = { synced: 'VerifySucceeded', mismatch: 'VerifyMismatch', failed: 'VerifyErrors' };

export async function processVerifyMessage(message: VerifyMessage, registries: Registries, runtime: Runtime, budget: Budget): Promise<VerifyOutcome> {
  const { logger, metrics } = runtime;
  const key = { repository: message.repository, secondary: message.secondary };
  const secondary = registries.secondary(message.secondary);
  const scope = registries.scopeOf(message.secondary);
  if (!scope.hasRepository(message.repository)) return outOfScope(key, scope, runtime);
  const now = runtime.clock();
  const frame = {
    kind: 'verify' as const,
    name: 'verify',
    message,
    queue: runtime.verifyQueue,
    leaseMs: budget.remainingMs,
    holder: { leaseHolder: { kind: 'verify' as const, deep: message.deep ?? false, startedAt: now } },
  };
  const ran = await underLease<VerifyMessage, VerifyReport | undefined>(frame, runtime, now, async (leased) => {
    try {
      const report = await verifyRepository(registries.primary(), secondary, validateRepositoryName(message.repository), {
        deep: message.deep,
        concurrency: runtime.concurrency,
        referrers: runtime.referrers !== false,
        tags: scope.tags,
        logger,
      });
      return { next: afterVerify(leased.record, report, runtime.clock()), result: report };
    } catch (error) {
      logger.error('verify failed', { ...key, error: errorMessage(error) });
      return { next: afterVerifyError(leased.record, error, runtime.clock()), result: undefined };
    }
  });
  if (ran.kind !== 'ran') return ran;
  if (!ran.released) return { kind: 'not-run', reason: 'lease-lost' };
  const { next, result: report } = ran;

  const kind = !report ? 'failed' : report.status;
  metrics.add(VERIFY_METRICS[kind], 1);
  // Referrer differences make the report a mismatch (VerifyMismatch, which the alarm watches); this says how many.
  if (report?.referrers)
    metrics.add('VerifyReferrerDifferences', report.referrers.missing.length + report.referrers.extra.length + report.referrers.mismatched.length);
  if (report)
    logger.info('verified', {
      ...key,
      deep: message.deep ?? false,
      status: report.status,
      missing: report.missing.length,
      extra: report.extra.length,
      mismatched: report.mismatched.length,
      ...(report.referrers
        ? {
            referrersMissing: report.referrers.missing.length,
            referrersExtra: report.referrers.extra.length,
            referrersMismatched: report.referrers.mismatched.length,
          }
        : {}),
    });
  return { kind, record: next, report };
}
