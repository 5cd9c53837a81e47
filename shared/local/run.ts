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
  noMetrics,
  type Registries,
  type RepositoryRecord,
  type RepositorySource,
  type Runtime,
  type SyncMessage,
} from '../jobs/index.js';
import { underRepositoryLock } from './lock.js';
import { LOCAL_BUDGET, localRuntime, type LocalRuntime } from './runtime.js';

export interface LocalRunOptions {
  endpoints: Endpoints;
  stateDir: string;
  repositories?: string[];
  prefix?: string;
  /** Where the primary's repositories are listed from (default: as configured in the environment). */
  source?: RepositorySource;
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
  const runtime = localRuntime({
    stateDir: options.stateDir,
    logger: options.logger,
    concurrency: options.concurrency,
    retry: options.retry,
    metrics: noMetrics,
    referrers: options.referrers,
  });
  const { store, syncQueue, verifyQueue } = runtime;
  const registries = openRegistries(options.endpoints, { concurrency: runtime.concurrency, logger: options.logger });
  const tally: RunTally = { pairs: new Set<string>(), rejected: 0, busy: new Set<string>(), synced: 0, verified: 0 };
  let unmatched: LocalRunSummary['unmatched'];
  try {
    unmatched = await fanOutAll(options, registries, runtime);
    const progress = () => options.onProgress?.({ synced: tally.synced, verified: tally.verified, total: syncQueue.sent });
    await workThroughQueues(options, registries, runtime, tally, progress);
  } finally {
    await registries.close();
  }

  const records = (await store.list()).filter((r) => tally.pairs.has(`${r.secondary}\0${r.repository}`));
  return {
    repositories: new Set(records.map((r) => r.repository)).size,
    messages: { sync: syncQueue.sent, verify: verifyQueue.sent },
    seconds: (Date.now() - started) / 1000,
    records,
    retriesPending: syncQueue.delayedCount,
    rejected: tally.rejected,
    busy: [...tally.busy].sort(),
    ...(unmatched ? { unmatched } : {}),
  };
}

/** What a run counts as its messages are worked through. */
interface RunTally {
  /** `secondary\0repository` of every pair a sync message was taken for. */
  pairs: Set<string>;
  rejected: number;
  busy: Set<string>;
  /** Messages worked through, for the progress line. */
  synced: number;
  verified: number;
}

/** Sends a sync message for every chosen (repository, secondary) pair, continuations included; returns the secondaries whose scope kept nothing. */
async function fanOutAll(options: LocalRunOptions, registries: Registries, runtime: LocalRuntime): Promise<LocalRunSummary['unmatched']> {
  let unmatched: LocalRunSummary['unmatched'];
  // Someone asked for this run now: ignore retry backoff and any unfinished earlier run.
  let request: FanOutRequest | undefined = {
    target: 'sync',
    force: true,
    ...(options.maxPrune !== undefined ? { maxPrune: options.maxPrune } : {}),
    ...(options.repositories?.length ? { repositories: options.repositories } : {}),
    ...(options.prefix ? { prefix: options.prefix } : {}),
  };
  const catalog = registryCatalog(registries, options.source);
  while (request) {
    const outcome = await fanOut(request, catalog, registries.secondaries, runtime, LOCAL_BUDGET);
    if (outcome.kind === 'finished' && outcome.unmatched) unmatched = outcome.unmatched;
    request = runtime.fanOutQueue.take();
  }
  return unmatched;
}

/** Works the sync and verify queues empty with `options.workers` messages at once. */
async function workThroughQueues(
  options: LocalRunOptions,
  registries: Registries,
  runtime: LocalRuntime,
  tally: RunTally,
  progress: () => void,
): Promise<void> {
  const { syncQueue, verifyQueue } = runtime;
  // Each message fails alone: a rejected one is counted and logged, and the pool goes on.
  const alone = (work: () => Promise<void>) => async () => {
    try {
      await work();
    } catch (error) {
      tally.rejected++;
      options.logger.error('message rejected', { error: errorMessage(error) });
    } finally {
      progress();
    }
  };
  const next = (): (() => Promise<void>) | undefined => {
    // Verification first: it finishes repositories already synced, so progress is steady.
    const verify = verifyQueue.take();
    if (verify) return alone(async () => void (await processVerifyMessage(verify, registries, runtime, LOCAL_BUDGET), tally.verified++));
    const sync = syncQueue.take();
    if (sync) {
      tally.pairs.add(`${sync.secondary}\0${sync.repository}`);
      return alone(async () => void (await syncUnderLock(sync, registries, runtime, tally.busy), tally.synced++));
    }
    return undefined;
  };
  await workerPool(options.workers, next);
}

/** The same per-repository lock as `geo-sync sync`: a run and a hand-started sync never overlap. */
function syncUnderLock(message: SyncMessage, registries: Registries, runtime: LocalRuntime, busy: Set<string>): Promise<void> {
  return underRepositoryLock(
    registries.secondary(message.secondary).host,
    registries.secondary(message.secondary).at(message.repository),
    async () => void (await processSyncMessage(message, registries, runtime, LOCAL_BUDGET)),
    (refusal) => {
      busy.add(`${message.secondary}/${message.repository}`);
      runtime.logger.warn('repository skipped: another geo-sync is syncing it', {
        repository: message.repository,
        secondary: message.secondary,
        reason: refusal.message,
      });
    },
  );
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
