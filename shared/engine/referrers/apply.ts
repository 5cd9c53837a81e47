/** Referrers, applied: copies after their subjects, removals the primary proves, tag-schema indexes written. */
import { mapLimit } from '../base/concurrency.js';
import { errorMessage } from '../base/errors.js';
import type { EngineLogger } from '../base/log.js';
import type { Repository } from '../base/oci.js';
import { byteOrder } from '../sync/planner.js';
import type { Referrer, Registry } from '../registry/registry.js';
import { referrersTag, referrersTagIndex } from '../registry/referrers.js';
import type { Replicator } from '../sync/replicate.js';
import type { ReferrerEdge } from './graph.js';
import { emptyReferrerOutcome, type PlannedEdge, type ReferrerOutcome, type ReferrerPlan } from './plan.js';

/**
 * Applies a plan: copies level by level (a subject is on the secondary before what refers to it),
 * then removals, then the tag-schema indexes. An extra referrer is removed (DELETE by digest)
 * only when the primary's own registry error proves it absent there; each edge fails alone.
 */
export async function applyReferrerPlan(
  plan: ReferrerPlan,
  run: {
    primary: Registry;
    secondary: Registry;
    repository: Repository;
    replicator: Replicator;
    /** Why extra referrers are left this run (the prune guard, refused deletes); undefined: they are removed. */
    removalsHeld: string | undefined;
    concurrency: number;
    logger: EngineLogger;
  },
): Promise<ReferrerOutcome> {
  const { primary, secondary, repository, replicator, concurrency, logger } = run;
  const outcome = emptyReferrerOutcome();
  const kept: PlannedEdge[] = [...plan.tagged];
  outcome.kept.push(...plan.tagged.map((edge) => ({ ...edgeOnly(edge), reason: 'a tag on the secondary points at it' })));
  const failedDigests = new Set<string>();
  for (const level of plan.copy) {
    await mapLimit(level, concurrency, async (edge) => {
      if (failedDigests.has(edge.subject)) return void outcome.failed.push({ ...edgeOnly(edge), error: `its subject ${edge.subject} was not copied` });
      try {
        await replicator.copyManifest(edge.digest, edge.subject);
        outcome.copied.push(edgeOnly(edge));
      } catch (error) {
        failedDigests.add(edge.digest);
        outcome.failed.push({ ...edgeOnly(edge), error: errorMessage(error) });
        logger.error('referrer copy failed', { repository, subject: edge.subject, digest: edge.digest, error: errorMessage(error) });
      }
    });
  }
  const held = run.removalsHeld;
  if (held !== undefined) {
    kept.push(...plan.remove);
    outcome.kept.push(...plan.remove.map((edge) => ({ ...edgeOnly(edge), reason: held })));
  } else {
    await mapLimit(plan.remove, concurrency, async (edge) => {
      try {
        if (!(await primary.provesAbsent(repository, edge.digest))) {
          kept.push(edge);
          return void outcome.kept.push({ ...edgeOnly(edge), reason: 'the primary still holds it' });
        }
        await secondary.deleteManifest(repository, edge.digest);
        outcome.removed.push(edgeOnly(edge));
      } catch (error) {
        kept.push(edge);
        outcome.failed.push({ ...edgeOnly(edge), error: errorMessage(error) });
        logger.error('referrer removal failed', { repository, subject: edge.subject, digest: edge.digest, error: errorMessage(error) });
      }
    });
  }
  await mapLimit(plan.indexes, concurrency, async ({ subject, referrers }) => {
    // An index lists what the secondary holds: a referrer that failed to copy is not listed yet; one kept is still listed.
    const listed = referrers.filter((r) => !failedDigests.has(r.digest));
    const keptThere = kept.filter((edge) => edge.subject === subject).map((edge) => edge.referrer);
    const index = referrersTagIndex([...listed, ...keptThere].filter(unique));
    try {
      await secondary.putManifest(repository, referrersTag(subject), index);
      outcome.indexes.push(subject);
    } catch (error) {
      outcome.failed.push({ subject, digest: index.digest, artifactType: 'referrers tag index', error: errorMessage(error) });
    }
  });
  for (const list of [outcome.copied, outcome.removed, outcome.kept, outcome.failed])
    list.sort((a, b) => byteOrder(a.subject, b.subject) || byteOrder(a.digest, b.digest));
  outcome.indexes.sort(byteOrder);
  return outcome;
}

/** The edge alone, for reports (the descriptor stays in the plan). */
export function edgeOnly(edge: ReferrerEdge): ReferrerEdge {
  return { subject: edge.subject, digest: edge.digest, artifactType: edge.artifactType };
}

function unique(referrer: Referrer, index: number, all: Referrer[]): boolean {
  return all.findIndex((r) => r.digest === referrer.digest) === index;
}
