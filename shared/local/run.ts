/**
 * Local mode: fan-out -> sync -> verify on one machine, with in-process queues and the file
 * store, through the same jobs the Lambda functions run.
 */
import { errorMessage, workerPool, type EngineLogger, type Endpoints } from '../engine/index.js';
import {
  fanOut,
  openRegistries,
  overallStatus,
  processSyncMessage,
  processVerifyMessage,
  registryCatalog,
  type FanOutRequest,
  type Metrics,
  type RepositoryRecord,
  type Runtime,
  type SyncMessage,
} from '../jobs/index.js';
import { underRepositoryLock } from './lock.js';
import { LOCAL_BUDGET, localRuntime } from './runtime.js';

export interface LocalRunOptions {
  endpoints: Endpoints;
  stateDir: string;
  repositories?: string[];
  prefix?: string;
  /** Messages processed at once. */
  workers: number;
  /** Parallel registry requests per repository. */
  concurrency?: number;
  /** Sync and verify OCI 1.1 referrers (default true). */
  referrers?: boolean;
  /** The prune limit of every sync in this run (default 0.5, as `geo-sync sync --max-prune`). */
  maxPrune?: number;
  logger: EngineLogger;
  retry?: Runtime['retry'];
  onProgress?: (progress: LocalProgress) => void;
}

export interface LocalProgress {
  synced: number;
  verified: number;
  /** Sync messages so far (grows with continuations and retries). */
  total: number;
}

export interface LocalRunSummary {
  repositories: number;
  messages: { sync: number; verify: number };
  seconds: number;
  /** The records of this run's (repository, secondary) pairs. */
  records: RepositoryRecord[];
  /** Retries scheduled for later: a following `geo-sync run` (or `status`) shows them. */
  retriesPending: number;
  /** Messages that could not be processed at all (their error is logged). */
  rejected: number;
  /** `secondary/repository` pairs left alone because another geo-sync process was syncing them. */
  busy: string[];
  /** Secondaries whose scope kept none of the primary's repositories (present only when some did). */
  unmatched?: { secondary: string; scope: string }[];
}

export async function runLocal(options: LocalRunOptions): Promise<LocalRunSummary> {
  const started = Date.now();
  const counters = new Map<string, number>();
  const count = (name: string, value: number) => void counters.set(name, (counters.get(name) ?? 0) + value);
  const metrics: Metrics = { add: count };
  const runtime = localRuntime({
    stateDir: options.stateDir,
    logger: options.logger,
    concurrency: options.concurrency,
    retry: options.retry,
    metrics,
    referrers: options.referrers,
  });
  const { store, syncQueue, verifyQueue, fanOutQueue } = runtime;
  const registries = openRegistries(options.endpoints, { concurrency: runtime.concurrency, logger: options.logger });
  const pairs = new Set<string>();
  let rejected = 0;
  const busy = new Set<string>();
  // The same per-repository lock as `geo-sync sync`: a run and a hand-started sync never overlap.
  const syncUnderLock = (message: SyncMessage) =>
    underRepositoryLock(
      registries.secondary(message.secondary).host,
      registries.secondary(message.secondary).at(message.repository),
      async () => void (await processSyncMessage(message, registries, runtime, LOCAL_BUDGET)),
      (refusal) => {
        busy.add(`${message.secondary}/${message.repository}`);
        options.logger.warn('repository skipped: another geo-sync is syncing it', {
          repository: message.repository,
          secondary: message.secondary,
          reason: refusal.message,
        });
      },
    );
  let unmatched: LocalRunSummary['unmatched'];
  try {
    // Someone asked for this run now: ignore retry backoff and any unfinished earlier run.
    let request: FanOutRequest | undefined = {
      target: 'sync',
      force: true,
      ...(options.maxPrune !== undefined ? { maxPrune: options.maxPrune } : {}),
      ...(options.repositories?.length ? { repositories: options.repositories } : {}),
      ...(options.prefix ? { prefix: options.prefix } : {}),
    };
    while (request) {
      const outcome = await fanOut(request, registryCatalog(registries), registries.secondaries, runtime, LOCAL_BUDGET);
      if (outcome.kind === 'finished' && outcome.unmatched) unmatched = outcome.unmatched;
      request = fanOutQueue.take();
    }

    const progress = () => options.onProgress?.({ synced: counters.get('synced') ?? 0, verified: counters.get('verified') ?? 0, total: syncQueue.sent });
    // Each message fails alone: a rejected one is counted and logged, and the pool goes on.
    const alone = (work: () => Promise<void>) => async () => {
      try {
        await work();
      } catch (error) {
        rejected++;
        options.logger.error('message rejected', { error: errorMessage(error) });
      } finally {
        progress();
      }
    };
    const next = (): (() => Promise<void>) | undefined => {
      // Verification first: it finishes repositories already synced, so progress is steady.
      const verify = verifyQueue.take();
      if (verify) return alone(async () => void (await processVerifyMessage(verify, registries, runtime, LOCAL_BUDGET), count('verified', 1)));
      const sync = syncQueue.take();
      if (sync) {
        pairs.add(`${sync.secondary}\0${sync.repository}`);
        return alone(async () => void (await syncUnderLock(sync), count('synced', 1)));
      }
      return undefined;
    };
    await workerPool(options.workers, next);
  } finally {
    await registries.close();
  }

  const records = (await store.list()).filter((r) => pairs.has(`${r.secondary}\0${r.repository}`));
  return {
    repositories: new Set(records.map((r) => r.repository)).size,
    messages: { sync: syncQueue.sent, verify: verifyQueue.sent },
    seconds: (Date.now() - started) / 1000,
    records,
    retriesPending: syncQueue.delayedCount,
    rejected,
    busy: [...busy].sort(),
    ...(unmatched ? { unmatched } : {}),
  };
}

/**
 * 0 all synced and verified; 1 differences remain (a held prune guard, refused deletes, a
 * mismatch, a repository left to another process); 3 a sync failed or a message was rejected.
 */
export function localExitCode(summary: LocalRunSummary): number {
  const statuses = summary.records.map(overallStatus);
  if (summary.rejected > 0 || statuses.includes('failed')) return 3;
  return summary.busy.length === 0 && statuses.every((s) => s === 'synced') ? 0 : 1;
}
