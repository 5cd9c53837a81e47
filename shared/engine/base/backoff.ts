/**
 * Capped exponential backoff with equal jitter, for every retry that waits: registry requests
 * (the transport) and failed syncs (the jobs' record). Attempt 0 waits about `baseMs`, each next
 * attempt twice as long, up to `capMs`; half of the step is fixed, so delays grow, and half is
 * random, so retries spread.
 */
export function backoffDelay(attempt: number, policy: { baseMs: number; capMs: number }, random: () => number = Math.random): number {
  const step = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt));
  return Math.round(step / 2 + random() * (step / 2));
}
