/** Job: verify one (repository, secondary) pair under the lease and record both checksums and the differences. */
import { randomUUID } from 'node:crypto';
import { errorMessage, validateRepositoryName, verifyRepository, type VerifyReport } from '../engine/index.js';
import { leaseHeld, type LeaseHeld } from './lease-held-message.js';
import type { VerifyMessage } from './messages.js';
import type { Budget, Registries, Runtime } from './ports.js';
import { afterVerify, afterVerifyError, type RepositoryRecord } from './record.js';
import { LEASE_GRACE_MS } from './timing.js';

export type VerifyOutcome =
  { kind: 'succeeded' | 'mismatch' | 'error'; record: RepositoryRecord; report?: VerifyReport } | LeaseHeld | { kind: 'skipped'; reason: 'lease-lost' };

export async function processVerifyMessage(message: VerifyMessage, registries: Registries, runtime: Runtime, budget: Budget): Promise<VerifyOutcome> {
  const { store, logger, metrics } = runtime;
  const key = { repository: message.repository, secondary: message.secondary };
  const secondary = registries.secondary(message.secondary);
  const now = runtime.clock();
  const owner = randomUUID();
  const leased = await store.acquireLease(key, { owner, expiresAt: now + budget.remainingMs + LEASE_GRACE_MS }, now, {
    leaseHolder: { kind: 'verify', deep: message.deep ?? false, startedAt: now },
  });
  if (!leased) return leaseHeld('verify', message, runtime.verifyQueue, runtime, now);

  let next: RepositoryRecord;
  let report: VerifyReport | undefined;
  try {
    report = await verifyRepository(registries.primary(), secondary, validateRepositoryName(message.repository), {
      deep: message.deep,
      concurrency: runtime.concurrency,
      logger,
    });
    next = afterVerify(leased, report, runtime.clock());
  } catch (error) {
    logger.error('verify failed', { ...key, error: errorMessage(error) });
    next = afterVerifyError(leased, error, runtime.clock());
  }
  if (!(await store.release(next, owner))) {
    logger.warn('verify lease expired before the result was recorded', key);
    return { kind: 'skipped', reason: 'lease-lost' };
  }

  const kind = !report ? 'error' : report.status === 'synced' ? 'succeeded' : 'mismatch';
  metrics.add(kind === 'succeeded' ? 'VerifySucceeded' : kind === 'mismatch' ? 'VerifyMismatch' : 'VerifyErrors', 1);
  if (report)
    logger.info('verified', {
      ...key,
      deep: message.deep ?? false,
      status: report.status,
      missing: report.missing.length,
      extra: report.extra.length,
      mismatched: report.mismatched.length,
    });
  return { kind, record: next, report };
}
