/**
 * Requests in flight per registry unless told otherwise. On two cores, 16 kept both registries
 * busy where 8 left them idle between answers (bench, no-op sync); 429s lower it at run time.
 */
export const DEFAULT_CONCURRENCY = 16;

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
