/**
 * The pipeline's apply stage: the plan carried out. Copies and repairs first, then the referrers
 * (planned once the tags' subjects are on the secondary), then removals, guarded and last.
 */
import { mapLimit } from '../base/concurrency.js';
import { GeoSyncError, NEEDS_A_PERSON, errorMessage } from '../base/errors.js';
import type { EngineLogger } from '../base/log.js';
import type { Repository } from '../base/oci.js';
import type { Plan, PrimaryTagMap } from './planner.js';
import { applyReferrerPlan } from '../referrers/index.js';
import type { DeleteSupport, Registry } from '../registry/registry.js';
import { UploadPaused, cancelUploads, type ReplicationStats, type Replicator } from './replicate.js';
import type { WriteOutcome } from './stages.js';
import type { PipelineOptions, SyncReader } from './stages.js';
import { checkTrees, planPairReferrers, referrerGuard, referrersDone, type Pair, type PlannedSync } from './plan.js';
import type { TagRemover } from './tag-removal.js';

/** One tag-writing step's context: where, how wide, until when, and whom to tell. */
interface StepRun {
  repository: Repository;
  concurrency: number;
  pastDeadline: () => boolean;
  onDone: () => void;
  logger: EngineLogger;
}

/**
 * Carries out the plan stage's plan; fills its outcome. Returns the primary as planned: the read
 * with each written tag at the digest it was written at (it may have moved since the read).
 */
export async function applyStage(pair: Pair, planned: PlannedSync, reader: SyncReader, options: PipelineOptions): Promise<PrimaryTagMap> {
  const { secondary, repository } = pair;
  const { concurrency, logger } = options;
  const { outcome, deadline, replicator, remover, mode } = planned;
  const { plan, read } = outcome;
  await cancelUploads(secondary, repository, planned.book.stale, 'older than the session age bound', logger);
  const removals = planned.removing && !planned.refusedUpFront ? plan.remove : [];
  const onDone = progressCounter(options.onProgress, plan.copy.length + plan.repair.length + removals.length, replicator.stats);
  const run: StepRun = { repository, concurrency, pastDeadline: deadline.passed, onDone, logger };
  outcome.writes = await writeTags(plan, replicator, remover, run);
  const primaryNow = new Map([...read.primaryTags, ...outcome.writes.written]);

  // Referrers are planned once the tags' subjects are on the secondary; the guard counts their removals with the tags'.
  const referrerPlan = mode.on && !deadline.passed() ? await planPairReferrers(pair, mode, read, primaryNow, replicator, concurrency) : undefined;
  if (referrerPlan && reader.policy.pruneGuard && !outcome.guard) outcome.guard = referrerGuard(plan, referrerPlan, read, options.maxPrune);
  if (removals.length > 0 && !outcome.guard) {
    outcome.removals = await remover.removeExtraTags(removals, (tag) => reader.appearedOnPrimary(tag), run);
    outcome.removalRefused ??= outcome.removals.refused;
  }
  outcome.notStarted.push(...outcome.writes.notStarted, ...outcome.removals.notStarted);
  if (referrerPlan && mode.on) {
    const removalsHeld = outcome.guard
      ? 'the prune guard held'
      : referrerPlan.remove.length > 0 && !(await removalsAllowed(secondary, repository, planned.deletes))
        ? 'the secondary refuses deletes'
        : undefined;
    const done = await applyReferrerPlan(referrerPlan, { ...pair, replicator, removalsHeld, concurrency, logger });
    outcome.referrers = referrersDone(mode, referrerPlan, done);
  }
  if (options.deep && !deadline.passed()) outcome.deep = await checkTrees(replicator, primaryNow);
  return primaryNow;
}

/** Whether the secondary takes deletes, probed once when the tags did not ask already. */
async function removalsAllowed(secondary: Registry, repository: Repository, deletes: DeleteSupport): Promise<boolean> {
  const support = deletes === 'unknown' ? await secondary.probeDeletes(repository) : deletes;
  return support !== 'refused' && support !== 'read-only';
}

/** Counts tags done (written, removed, or failed) for `onProgress`. */
function progressCounter(onProgress: PipelineOptions['onProgress'], total: number, stats: ReplicationStats): () => void {
  let done = 0;
  return () => onProgress?.({ done: ++done, total, bytes: stats.bytesCopied });
}

/** Copies the tags the secondary lacks and re-points those at another digest; each tag fails alone. */
async function writeTags(plan: Plan, replicator: Replicator, remover: TagRemover, run: StepRun): Promise<WriteOutcome> {
  const outcome: WriteOutcome = { copied: [], repaired: [], written: new Map(), skipped: [], failed: [], notStarted: [] };
  const writes = [...plan.copy.map((change) => ({ change, kind: 'copy' as const })), ...plan.repair.map((change) => ({ change, kind: 'repair' as const }))];
  await mapLimit(writes, run.concurrency, async ({ change, kind }) => {
    if (run.pastDeadline()) return void outcome.notStarted.push(change.tag);
    try {
      const written = await replicator.copyTag(change.tag);
      if (written === undefined) outcome.skipped.push({ tag: change.tag, reason: 'deleted on the primary during the sync' });
      else {
        (kind === 'copy' ? outcome.copied : outcome.repaired).push(change.tag);
        // The tag just left its previous digest: a throwaway a killed removal left there is deleted.
        if (kind === 'repair') await remover.cleanUpAfterRepair(change.secondary);
        outcome.written.set(change.tag, written);
      }
    } catch (error) {
      // Out of time mid-blob: neither done nor failed; the next run resumes the upload and writes the tag.
      if (error instanceof UploadPaused) return void outcome.notStarted.push(change.tag);
      const needsPerson = error instanceof GeoSyncError && NEEDS_A_PERSON.has(error.code);
      outcome.failed.push({ tag: change.tag, error: errorMessage(error), ...(needsPerson ? { code: error.code } : {}) });
      run.logger.error('tag copy failed', { repository: run.repository, tag: change.tag, error: errorMessage(error) });
    }
    run.onDone();
  });
  return outcome;
}
