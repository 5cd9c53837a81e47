/**
 * The listener's pair scheduler: work gathers per (repository, secondary) and one job per pair
 * runs at a time, up to `workers` pairs at once. A pair's event work goes first (the fast path), then
 * its full syncs, then its verifications. What a job does is the caller's `run`.
 */
import { errorMessage, type EngineLogger } from '../engine/index.js';
import { PendingTags, isEventJob, pairKey, type EventHints, type ScopedSecondary, type SyncMessage, type VerifyMessage } from '../jobs/index.js';
import type { MemoryQueue } from './memory-queue.js';

/** One job for a pair: a sync (an event job or a full sync) or a verification. */
export type PairJob = { kind: 'sync'; message: SyncMessage } | { kind: 'verify'; message: VerifyMessage };

export interface PairSchedulerOptions {
  workers: number;
  /** Where jobs send their continuations, retries and deferrals; looked at on every pump. */
  syncQueue: MemoryQueue<SyncMessage>;
  verifyQueue: MemoryQueue<VerifyMessage>;
  run: (job: PairJob) => Promise<void>;
  logger: EngineLogger;
}

export class PairScheduler {
  private readonly pending = new PendingTags();
  /** Full syncs and verifications waiting, per pair, in order. */
  private readonly waiting = new Map<string, PairJob[]>();
  /** Pairs with a job in flight, and its event job message if it is one (to hand back at shutdown). */
  private readonly running = new Map<string, SyncMessage | undefined>();
  private readonly inFlight = new Set<Promise<void>>();
  private stopping = false;

  constructor(private readonly options: PairSchedulerOptions) {}

  get stopped(): boolean {
    return this.stopping;
  }

  /** For /healthz. */
  get counts(): { pendingTags: number; pendingDigests: number; running: number } {
    return { pendingTags: this.pending.tagCount, pendingDigests: this.pending.digestCount, running: this.running.size };
  }

  /** The tags and digests a webhook request names, for every secondary; jobs start at once where a pair is idle. */
  addHints(hints: EventHints, secondaries: readonly ScopedSecondary[], receivedAt: number): void {
    if (hints.hints.length + hints.digests.length === 0) return;
    const { outOfScope } = this.pending.addHints(hints, secondaries, receivedAt);
    if (outOfScope > 0)
      this.options.logger.info("hints outside every secondary's scope: no work", { outOfScope, hints: hints.hints.length + hints.digests.length });
    this.pump();
  }

  /** A sync message: an event job joins its pair's pending work, a full sync waits its turn. */
  add(message: SyncMessage): void {
    if (isEventJob(message)) this.pending.addMessage(message, Date.now());
    else this.enqueue({ kind: 'sync', message });
  }

  enqueue(job: PairJob): void {
    const key = pairKey(job.message);
    const queue = this.waiting.get(key);
    if (queue) queue.push(job);
    else this.waiting.set(key, [job]);
  }

  /** Takes what came due off the embedded queues, then starts a job for each idle pair with work, up to `workers`. */
  pump(): void {
    if (this.stopping) return;
    const { syncQueue, verifyQueue, workers } = this.options;
    for (let message = syncQueue.take(); message; message = syncQueue.take()) this.add(message);
    for (let message = verifyQueue.take(); message; message = verifyQueue.take()) this.enqueue({ kind: 'verify', message });
    for (const key of [...this.pending.keys(), ...this.waiting.keys()]) {
      if (this.running.size >= workers) return;
      if (this.running.has(key)) continue;
      const job = this.next(key);
      if (job) this.start(key, job);
    }
  }

  /** Starts nothing more; resolves true once the jobs in flight are done, false if `graceMs` passes first. */
  async stop(graceMs: number): Promise<boolean> {
    this.stopping = true;
    return Promise.race([
      Promise.all([...this.inFlight]).then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), graceMs).unref()),
    ]);
  }

  /** The event jobs not done: pending, queued, and (when the jobs in flight did not finish) those still running. */
  unfinished(settled: boolean): SyncMessage[] {
    const running = settled ? [] : [...this.running.values()].filter((message): message is SyncMessage => message !== undefined);
    return [...this.pending.drain(), ...this.options.syncQueue.drain().filter(isEventJob), ...running];
  }

  /** The next job for a pair: its event work first (the fast path), then a full sync, then a verification. */
  private next(key: string): PairJob | undefined {
    const events = this.pending.take(key);
    if (events) return { kind: 'sync', message: events };
    const queue = this.waiting.get(key);
    const job = queue?.shift();
    if (queue && queue.length === 0) this.waiting.delete(key);
    return job;
  }

  private start(key: string, job: PairJob): void {
    this.running.set(key, job.kind === 'sync' && isEventJob(job.message) ? job.message : undefined);
    const run = this.options
      .run(job)
      .catch((error: unknown) => this.options.logger.error('job rejected', { pair: key.replace('\0', '/'), error: errorMessage(error) }))
      .finally(() => {
        this.running.delete(key);
        this.inFlight.delete(run);
        this.pump();
      });
    this.inFlight.add(run);
  }
}
