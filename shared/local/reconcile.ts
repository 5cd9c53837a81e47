/**
 * The listener's exact reconcile, the safety net for events lost on the way: every repository of
 * the primary goes to the pair scheduler as a forced full sync, as `geo-sync run` does. One runs at
 * a time; it is finished once every pair it sent has settled (a deferred sync has not).
 */
import { errorMessage, type EngineLogger } from '../engine/index.js';
import {
  fanOut,
  pairKey,
  registryCatalog,
  type FanOutRequest,
  type Queue,
  type Registries,
  type Runtime,
  type ScopedSecondary,
  type SyncMessage,
} from '../jobs/index.js';
import { MemoryQueue } from './memory-queue.js';
import type { PairScheduler } from './pair-scheduler.js';
import { LOCAL_BUDGET } from './runtime.js';

export interface ReconcileOptions {
  runtime: Runtime;
  scheduler: PairScheduler;
  openRegistries: () => Registries;
  secondaries: readonly ScopedSecondary[];
  logger: EngineLogger;
  /** Told when a reconcile ends: `failed` when the primary's catalog could not be read whole. */
  onFinished?: (outcome: 'finished' | 'failed', seconds: number) => void;
}

export class Reconcile {
  private active = false;
  /** True while the primary's catalog is still being walked: more pairs may come. */
  private walking = false;
  /** Pairs sent and not yet settled. */
  private readonly outstanding = new Set<string>();
  private startedAt = 0;
  private catalogFailed = false;

  constructor(private readonly options: ReconcileOptions) {}

  get running(): boolean {
    return this.active;
  }

  async run(): Promise<void> {
    const { runtime, scheduler, logger } = this.options;
    if (scheduler.stopped) return;
    if (this.active) {
      logger.info('reconcile skipped: the previous one is still running', { pairsLeft: this.outstanding.size });
      return;
    }
    this.active = true;
    this.walking = true;
    this.catalogFailed = false;
    this.startedAt = Date.now();
    logger.info('reconcile started');
    const fanOutQueue = new MemoryQueue<FanOutRequest>();
    const into: Queue<SyncMessage> = {
      send: async (messages) => {
        for (const message of messages) {
          this.outstanding.add(pairKey(message));
          scheduler.enqueue({ kind: 'sync', message });
        }
      },
    };
    const registries = this.options.openRegistries();
    try {
      // Forced: every pair is synced now, whatever its retry backoff, as `geo-sync run` does.
      let request: FanOutRequest | undefined = { target: 'sync', force: true };
      while (request && !scheduler.stopped) {
        // fanOut itself warns of a scope that keeps none of the primary's repositories.
        await fanOut(request, registryCatalog(registries), this.options.secondaries, { ...runtime, syncQueue: into, fanOutQueue }, LOCAL_BUDGET);
        request = fanOutQueue.take();
      }
      logger.info('reconcile: every repository of the primary sent to sync', { pairs: this.outstanding.size });
    } catch (error) {
      this.catalogFailed = true;
      logger.error("reconcile failed: the primary's catalog could not be read", { error: errorMessage(error) });
    } finally {
      this.walking = false;
      await registries.close();
    }
    if (this.outstanding.size === 0) this.finished();
    scheduler.pump();
  }

  /** A full sync of this pair is done (not deferred): the reconcile may be finished. */
  settled(message: SyncMessage): void {
    if (this.outstanding.delete(pairKey(message)) && this.outstanding.size === 0 && !this.walking) this.finished();
  }

  private finished(): void {
    const seconds = (Date.now() - this.startedAt) / 1000;
    this.options.logger.info('reconcile finished', { seconds });
    this.active = false;
    this.options.onFinished?.(this.catalogFailed ? 'failed' : 'finished', seconds);
  }
}
