/**
 * Most requests in flight per registry unless told otherwise (`--concurrency`): the ceiling of the
 * adaptive limit, which starts at 16 (on two cores 16 kept both loopback registries busy where 8
 * left them idle) and grows only while round trips show distance, not queueing (registry/limit.ts).
 * 256 hides 150 ms at about 1,700 requests a second per registry; 64 hid it at about 400, so a far
 * no-op of 300 tags spent 10 round trips on its HEADs. A near registry never gets there: it queues
 * first, and the limit stays near 16. The worker pools take the same number: they offer the work,
 * the transport's limit is the gate.
 */
export const DEFAULT_CONCURRENCY = 256;

/**
 * The one worker pool: runs the work `next` hands out, at most `limit` at once, until `next` has
 * none and none is running. Work that finishes may have made more (asked of `next` again each
 * time one finishes). The first rejection rejects the pool; work already running goes on.
 */
export function workerPool(limit: number, next: () => (() => Promise<void>) | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let active = 0;
    const pump = () => {
      for (let work = active < limit ? next() : undefined; work; work = active < limit ? next() : undefined) {
        active++;
        work()
          .catch(reject)
          .finally(() => {
            active--;
            pump();
          });
      }
      if (active === 0) resolve();
    };
    pump();
  });
}

/** Runs `task` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let taken = 0;
  await workerPool(Math.max(1, limit), () => {
    if (taken >= items.length) return undefined;
    const index = taken++;
    return async () => void (results[index] = await task(items[index] as T, index));
  });
  return results;
}

/** Memoises an async function by key for the life of one run (failures are forgotten, so a retry can succeed). */
export function memoByKey<R>(): (key: string, run: () => Promise<R>) => Promise<R> {
  const cache = new Map<string, Promise<R>>();
  return (key, run) => {
    let pending = cache.get(key);
    if (!pending) {
      pending = run();
      cache.set(key, pending);
      pending.catch(() => cache.delete(key));
    }
    return pending;
  };
}

/**
 * Like Promise.all, but waits for every one and throws the first failure in argument order, not in
 * time: with the primary and the secondary both down, the error named is the same every run.
 */
export async function allInOrder<T extends readonly unknown[]>(work: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const settled = await Promise.allSettled(work);
  const failed = settled.find((result) => result.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return settled.map((result) => (result as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
