/**
 * The notify function's `take` behind the webhook door: the hints of one request become one event
 * job per (repository, secondary) on the sync queue, sent before the door answers 200. The local
 * listener takes hints into its pair scheduler instead (`local/pair-scheduler.ts`).
 */
import type { EngineLogger } from '../../engine/index.js';
import type { SyncMessage } from '../messages.js';
import type { Metrics, Queue, ScopedSecondary } from '../ports.js';
import { jobsForHints } from './coalesce.js';
import type { WebhookDoor } from './webhook.js';

export interface EnqueuePorts {
  syncQueue: Queue<SyncMessage>;
  secondaries: readonly ScopedSecondary[];
  logger: EngineLogger;
  metrics: Metrics;
}

export function enqueueEventJobs({ syncQueue, secondaries, logger, metrics }: EnqueuePorts): WebhookDoor['take'] {
  return async (read, receivedAt) => {
    const { jobs, outOfScope } = jobsForHints(read, secondaries, receivedAt);
    if (outOfScope > 0) logger.info("hints outside every secondary's scope: no work", { outOfScope, hints: read.hints.length + read.digests.length });
    if (jobs.length > 0) await syncQueue.send(jobs);
    metrics.add('EventJobsEnqueued', jobs.length);
    if (jobs.length > 0)
      logger.info('event jobs enqueued', { jobs: jobs.length, hints: read.hints.length, digests: read.digests.length, ignored: read.ignored });
  };
}
