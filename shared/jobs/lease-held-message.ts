// A sync or verify message that found its pair's lease held, acted on: the record read, the message
// dropped or sent again, logged and counted. Its twin lease-decision.ts is the pure decision it follows.
import { whenLeaseHeld } from './lease-decision.js';
import type { SyncMessage, VerifyMessage } from './messages.js';
import type { Queue, Runtime } from './ports.js';
import { delaySeconds } from './timing.js';

/** A message that found the lease held: dropped as busy, or sent again after `delaySeconds`. */
export type LeaseHeld = { kind: 'busy' } | { kind: 'deferred'; delaySeconds: number };

const LEASE_METRICS = {
  sync: { busy: 'SyncLeaseBusy', deferred: 'SyncDeferred' },
  verify: { busy: 'VerifyLeaseBusy', deferred: 'VerifyDeferred' },
} as const;

/**
 * A sync or verify message that found the lease held. Dropped when the holder already does its
 * work (often a duplicate SQS delivery: its result stands); otherwise sent again to its own queue
 * with a delay, so that no request is lost (see lease-decision.ts).
 */
export async function leaseHeld<M extends SyncMessage | VerifyMessage>(
  kind: 'sync' | 'verify',
  message: M,
  queue: Queue<M>,
  runtime: Runtime,
  now: number,
): Promise<LeaseHeld> {
  const key = { repository: message.repository, secondary: message.secondary };
  const record = await runtime.store.get(key);
  const requestedAt = message.requestedAt ?? now;
  const maxPrune = 'maxPrune' in message ? message.maxPrune : undefined;
  const decision = whenLeaseHeld({ kind, deep: message.deep ?? false, requestedAt, ...(maxPrune !== undefined ? { maxPrune } : {}) }, record, now);
  if (decision.kind === 'drop') {
    runtime.logger.info(`${kind} skipped: lease held by another invocation`, { ...key, holder: record?.leaseHolder });
    runtime.metrics.add(LEASE_METRICS[kind].busy, 1);
    return { kind: 'busy' };
  }
  const seconds = delaySeconds(decision.delayMs);
  // The request time travels with the message, so its next delivery is judged by the same rule.
  await queue.send([{ ...message, requestedAt }], { delaySeconds: seconds });
  runtime.logger.info(`${kind} deferred: lease held`, { ...key, holder: record?.leaseHolder, delaySeconds: seconds });
  runtime.metrics.add(LEASE_METRICS[kind].deferred, 1);
  return { kind: 'deferred', delaySeconds: seconds };
}
