/**
 * The one sync pipeline: plan (read, plan, guard) → apply (copy, repair, referrers, remove) →
 * confirm → the outcome each reader's caller reports. A reader says what is read (every tag of a
 * repository, or a few named tags), how the primary is asked again, and the policy that goes with
 * it; the stages never ask which kind of run they are in. `syncRepository` (whole-repository.ts) and
 * `syncTags` (targeted-sync.ts) are the two readers in front of it.
 */
import type { Repository } from '../base/oci.js';
import type { Registry } from '../registry/registry.js';
import { applyStage } from './apply.js';
import { planStage } from './plan.js';
import { confirmStage } from './confirm.js';
import type { PipelineOptions, PipelineOutcome, SyncReader } from './stages.js';

export async function runSyncPipeline(
  primary: Registry,
  secondary: Registry,
  repository: Repository,
  reader: SyncReader,
  options: PipelineOptions,
): Promise<PipelineOutcome> {
  const pair = { primary, secondary, repository };
  const planned = await planStage(pair, reader, options);
  // A dry run is the plan itself: nothing below runs.
  if (options.dryRun) return planned.outcome;
  const primaryNow = await applyStage(pair, planned, reader, options);
  await confirmStage(pair, planned, reader, primaryNow, options.logger);
  return planned.outcome;
}
