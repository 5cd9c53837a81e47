/**
 * Requests in flight per registry unless told otherwise. On two cores, 16 kept both registries
 * busy where 8 left them idle between answers (bench, no-op sync); 429s lower it at run time.
 */
export const DEFAULT_CONCURRENCY = 16;

/** Runs `task` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
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
