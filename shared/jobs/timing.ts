/** How every job spends an invocation's time and delays a message: one set of numbers for all of them. */

/** Share of the invocation's time spent starting new work; the rest finishes in-flight copies and writes state. */
export const WORK_FRACTION = 0.6;
/** A lease outlives its invocation by this much, so a killed invocation's lease frees up soon after. */
export const LEASE_GRACE_MS = 30_000;
/** SQS's longest message delay. */
export const MAX_DELAY_SECONDS = 900;

/** A message delay in whole seconds, as a queue takes it: rounded up, at most MAX_DELAY_SECONDS. */
export function delaySeconds(ms: number): number {
  return Math.max(0, Math.min(MAX_DELAY_SECONDS, Math.ceil(ms / 1000)));
}
