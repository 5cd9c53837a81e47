/**
 * The pipeline's plan stage: both sides read, the tags planned, the prune guard weighed, and every
 * helper the apply stage writes with made ready. Nothing is written here, so a dry run is this
 * stage's outcome: with nothing to be written first, it also plans the referrers over the read
 * and, with `deep`, lists what the trees lack.
 */
import { allInOrder, mapLimit } from '../base/concurrency.js';
import { Deadline } from '../base/deadline.js';
import { errorMessage } from '../base/errors.js';
import type { Repository } from '../base/oci.js';
import { planRepository, pruneGuard, pruneGuardOver, type Plan, type PrimaryTagMap } from './planner.js';
import {
  edgeOnly,
  emptyReferrerOutcome,
  isDerivedTag,
  mediaTypesOf,
  planReferrers,
  reachedManifests,
  readReferrerGraph,
  referrerMode,
  type ReferrerMode,
  type ReferrerOutcome,
  type ReferrerPlan,
  type ReferrersDone,
} from '../referrers/index.js';
import type { DeleteSupport, Registry } from '../registry/registry.js';
import { Replicator } from './replicate.js';
import type { TagFailure } from './stages.js';
import type { PipelineOptions, PipelineOutcome, SidesRead, SyncReader } from './stages.js';
import { TagRemover, probeDeletes, type RemovalRefused } from './tag-removal.js';
import type { TagScope } from '../config/scope.js';
import { UploadBook } from './upload-session.js';

/** The two registries and the repository a run is over. */
export interface Pair {
  primary: Registry;
  secondary: Registry;
  repository: Repository;
}

/** What the plan stage hands the apply stage: the plan, and the helpers made ready to carry it out. */
export interface PlannedSync {
  mode: ReferrerMode;
  deadline: Deadline;
  /** Extra tags to remove: planned, and no guard held. */
  removing: boolean;
  deletes: DeleteSupport;
  remover: TagRemover;
  replicator: Replicator;
  book: UploadBook;
  refusedUpFront: RemovalRefused | undefined;
  /** The run's outcome so far: a dry run's whole outcome. */
  outcome: PipelineOutcome;
}

/** Reads both sides, plans, weighs the guard; a dry run also plans the referrers and checks the trees. */
export async function planStage(pair: Pair, reader: SyncReader, options: PipelineOptions): Promise<PlannedSync> {
  const { primary, secondary, repository } = pair;
  const { dryRun, logger } = options;
  const { policy } = reader;
  const deadline = new Deadline(options.deadline);
  // Removal (apply stage) is only reached when the read proved each extra tag absent.
  // The referrers probe and the read go out together: at a far registry each round trip in turn is felt.
  const [mode, sides] = await allInOrder<[ReferrerMode, SidesRead]>([referrerMode(primary, secondary, repository, options.referrers), reader.read(deadline)]);
  const read = inScope(withoutDerivedTags(sides, mode), options.tags);
  const plan = planRepository(read.primaryTags, read.secondaryTags);
  const guard = policy.pruneGuard ? pruneGuard(plan, read.secondaryTags.size, options.maxPrune) : undefined;
  logger[policy.planLog]('plan', { repository, copy: plan.copy.length, repair: plan.repair.length, remove: plan.remove.length, guard: guard !== undefined });

  const removing = !guard && plan.remove.length > 0;
  const writing = !dryRun && policy.probeBeforeWrites && (plan.copy.length > 0 || plan.repair.length > 0);
  const deletes = await probeDeletes(secondary, repository, { removing, writing, dryRun });
  const tagsHeld = new Map([...read.secondaryTags, ...(read.outOfScope ?? [])]);
  const remover = new TagRemover(secondary, repository, deletes, { tags: tagsHeld, heads: read.secondaryHeads }, logger);
  const refusedUpFront = removing ? remover.refusedUpFront(plan.remove) : undefined;
  const book = new UploadBook(dryRun ? [] : options.uploads, Date.now(), options.onUploadProgress);
  const replicator = new Replicator(primary, secondary, repository, {
    deep: options.deep,
    write: !dryRun,
    logger,
    secondaryIsNew: read.secondaryIsNew,
    ...(deadline.set ? { chunked: { book, deadline } } : {}),
  });
  const outcome: PipelineOutcome = {
    read,
    plan,
    guard,
    writes: { copied: [], repaired: [], written: new Map(), skipped: [], failed: [], notStarted: [] },
    removals: { removed: [], skipped: [], failed: [], notStarted: [] },
    removalRefused: refusedUpFront,
    changed: [],
    notStarted: [...read.notStarted],
    deep: undefined,
    outOfTime: false,
    uploads: [],
    stats: replicator.stats,
    referrers: undefined,
  };
  const planned: PlannedSync = { mode, deadline, removing, deletes, remover, replicator, book, refusedUpFront, outcome };
  if (dryRun) await lookAhead(pair, planned, options, policy.pruneGuard);
  return planned;
}

/** A dry run's look past the tags: the trees both sides hold (with `deep`), and the referrers over the read. */
async function lookAhead(pair: Pair, planned: PlannedSync, options: PipelineOptions, pruneGuard: boolean): Promise<void> {
  const { mode, outcome, replicator } = planned;
  if (options.deep) outcome.deep = await checkTrees(replicator, tagsOnBothSides(outcome.read));
  if (!mode.on) return;
  const referrerPlan = await planPairReferrers(pair, mode, outcome.read, new Map(outcome.read.primaryTags), replicator, options.concurrency);
  outcome.guard ??= pruneGuard ? referrerGuard(outcome.plan, referrerPlan, outcome.read, options.maxPrune) : undefined;
  outcome.referrers = referrersDone(mode, referrerPlan, emptyReferrerOutcome());
}

/**
 * Index tags a tag-schema secondary keeps for the API primary's referrers are the run's own, not
 * tags of the primary: out of the tag plan (never extra, never removed), kept by the referrer plan.
 */
function withoutDerivedTags(read: SidesRead, mode: ReferrerMode): SidesRead {
  const derived = [...read.secondaryTags.keys()].filter((tag) => isDerivedTag(mode, tag, (t) => read.primaryTags.has(t)));
  if (derived.length === 0) return read;
  // Left out of the plan, but still listed: the referrer step reads only the index tags the secondary has.
  const secondaryTags = new Map(read.secondaryTags);
  for (const tag of derived) secondaryTags.delete(tag);
  const kept = new Set(secondaryTags.values());
  const derivedDigests = new Set(derived.map((tag) => read.secondaryTags.get(tag)));
  const secondaryHeads = read.secondaryHeads.filter((head) => kept.has(head.digest) || !derivedDigests.has(head.digest));
  return { ...read, secondaryTags, secondaryHeads };
}

/** Only the tags the scope keeps are planned; the secondary's others are set apart, with their digests. */
function inScope(read: SidesRead, tags: TagScope): SidesRead {
  if (tags.all) return read;
  const outOfScope = new Map([...read.secondaryTags].filter(([tag]) => !tags.has(tag)));
  return {
    ...read,
    primaryTags: new Map([...read.primaryTags].filter(([tag]) => tags.has(tag))),
    secondaryTags: new Map([...read.secondaryTags].filter(([tag]) => tags.has(tag))),
    outOfScope,
  };
}

/**
 * Both sides' referrer graphs over the manifests the primary's tags (as planned, and the
 * subjects an event named) reach, and the plan between them.
 */
export async function planPairReferrers(
  pair: Pair,
  mode: Extract<ReferrerMode, { on: true }>,
  read: SidesRead,
  planned: PrimaryTagMap,
  replicator: Replicator,
  concurrency: number,
): Promise<ReferrerPlan> {
  const { primary, secondary, repository } = pair;
  const digests = [...planned.values(), ...(read.subjects ?? [])].filter((digest): digest is string => digest !== undefined);
  // Either side's HEADs tell which manifests are indexes: a side whose listing gives digests (ECR's) was not HEADed.
  const types = new Map([...mediaTypesOf([...(read.primaryHeads ?? []), ...read.secondaryHeads]), ...replicator.copiedTypes]);
  const roots = await reachedManifests(primary, repository, digests, types, concurrency);
  // A secondary that did not have the repository may hold it now: ask once more where it was undecided.
  const store = mode.secondary === 'api' && (await secondary.servesReferrers(repository)) === false ? 'tag-schema' : mode.secondary;
  const [onPrimary, onSecondary] = await Promise.all([
    readReferrerGraph(primary, repository, roots, 'api', concurrency),
    readReferrerGraph(secondary, repository, roots, store, concurrency, read.listedTags),
  ]);
  mode.secondary = store;
  // Never a referrer a tag points at, in the scope or out of it.
  const tagged = [...read.secondaryTags.values(), ...(read.outOfScope?.values() ?? []), ...planned.values()];
  return planReferrers(onPrimary, onSecondary, store, new Set(tagged.filter((d) => d !== undefined)));
}

/** The prune guard over tags and referrers together: a referrer is removed like a tag. */
export function referrerGuard(plan: Plan, referrerPlan: ReferrerPlan, read: SidesRead, maxPrune: number): string | undefined {
  const copies = plan.copy.length + referrerPlan.copy.reduce((n, level) => n + level.length, 0);
  const removals = plan.remove.length + referrerPlan.remove.length;
  return pruneGuardOver({ removals, onSecondary: read.secondaryTags.size + referrerPlan.onSecondary, copies, what: 'tags and referrers' }, maxPrune);
}

export function referrersDone(mode: Extract<ReferrerMode, { on: true }>, plan: ReferrerPlan, done: ReferrerOutcome): ReferrersDone {
  return {
    secondary: mode.secondary,
    plan: { copy: plan.copy.flat().map(edgeOnly), remove: plan.remove.map(edgeOnly), mismatched: plan.mismatched, indexes: plan.indexes.map((i) => i.subject) },
    done,
  };
}

/** The tags both sides already hold at the same digest: what a dry run's deep check walks. */
function tagsOnBothSides(read: SidesRead): Map<string, string | undefined> {
  return new Map([...read.primaryTags].filter(([tag, digest]) => read.secondaryTags.get(tag) === digest));
}

/** Walks every tagged manifest's tree on the secondary, repairing (or, dry, listing) what is missing. */
export async function checkTrees(replicator: Replicator, tags: PrimaryTagMap): Promise<NonNullable<PipelineOutcome['deep']>> {
  const failed: TagFailure[] = [];
  const digests = [...new Set([...tags.values()].filter((digest) => digest !== undefined))];
  await mapLimit(digests, 8, async (digest) => {
    try {
      await replicator.checkTree(digest);
    } catch (error) {
      const tag = [...tags].find(([, d]) => d === digest)?.[0] ?? digest;
      failed.push({ tag, error: errorMessage(error) });
    }
  });
  return { failed, missing: replicator.missing };
}
