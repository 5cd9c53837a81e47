/**
 * The Runtime of local mode, built here for `geo-sync run` and `geo-sync listen` alike: in-process
 * queues, the file store, one budget per message and the same retry policy as on AWS.
 */
import { DEFAULT_CONCURRENCY, type EngineLogger } from '../engine/index.js';
import { noMetrics, type FanOutRequest, type Metrics, type Runtime, type SyncMessage, type VerifyMessage } from '../jobs/index.js';
import { FileStateStore } from './file-store.js';
import { MemoryQueue } from './memory-queue.js';

/** Locally nothing kills us at a deadline; one hour per message keeps leases meaningful if the process dies. */
export const LOCAL_BUDGET = { remainingMs: 60 * 60_000 };

/** A Runtime whose queues are in this process, so the caller can take from them. */
export interface LocalRuntime extends Runtime {
  store: FileStateStore;
  syncQueue: MemoryQueue<SyncMessage>;
  verifyQueue: MemoryQueue<VerifyMessage>;
  fanOutQueue: MemoryQueue<FanOutRequest>;
}

export interface LocalRuntimeOptions {
  stateDir: string;
  logger: EngineLogger;
  /** Parallel registry requests per repository. */
  concurrency?: number;
  retry?: Runtime['retry'];
  metrics?: Metrics;
  /** Sync and verify referrers (default true; `--no-referrers` turns it off). */
  referrers?: boolean;
}

export function localRuntime(options: LocalRuntimeOptions): LocalRuntime {
  return {
    store: new FileStateStore(options.stateDir),
    syncQueue: new MemoryQueue<SyncMessage>(),
    verifyQueue: new MemoryQueue<VerifyMessage>(),
    fanOutQueue: new MemoryQueue<FanOutRequest>(),
    logger: options.logger,
    metrics: options.metrics ?? noMetrics,
    clock: Date.now,
    random: Math.random,
    retry: options.retry ?? { baseMs: 60_000, capMs: 6 * 3600_000 },
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    referrers: options.referrers ?? true,
  };
}
