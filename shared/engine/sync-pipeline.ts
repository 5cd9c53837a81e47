/**
 * The one sync pipeline: read → plan → apply (copy, repair, remove) → confirm → report. A reader
 * says what is read (every tag of a repository, or a few named tags) and how the primary is asked
 * again; every step after the read is the same for both. `syncRepository` (repository.ts) and
 * `syncTags` (targeted-sync.ts) are the two readers in front of it.
 */
import { allInOrder, mapLimit } from './concurrency.js';
import { Deadline } from './deadline.js';
import { GeoSyncError, errorMessage } from './errors.js';
import type { EngineLogger } from './log.js';
import type { Repository } from './oci.js';
import { planRepository, pruneGuard, pruneGuardOver, type Plan, type PrimaryTagMap } from './planner.js';
import {
  applyReferrerPlan,
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
} from './referrers.js';
import type { DeleteSupport, ManifestHead, Registry } from './registry/registry.js';
import { Replicator, UploadPaused, cancelUploads, type ReplicationStats } from './replicate.js';
import type { TagFailure, TagSkip, WriteOutcome } from './sync-report.js';
import { TagRemover, probeDeletes, type RemovalOutcome, type RemovalRefused } from './tag-removal.js';
import type { TagScope } from './scope.js';
import { UploadBook, type UploadSession } from './upload-session.js';

/** Both sides as a reader found them, and the tags the read itself settled. */
export interface SidesRead {
  /** The primary's tags; a digest may be left unread (undefined) for a tag the secondary lacks: its copy fetches it. */
  primaryTags: Map<string, string | undefined>;
  secondaryTags: Map<string, string>;
  /** What the secondary's HEADs told of each manifest (type, size): tag removal uses it. */
  secondaryHeads: ManifestHead[];
  /** The secondary did not have the repository at all. */
  secondaryIsNew: boolean;
  /** Tags the read could not settle (no proof of absence, say): neither planned nor touched. */
  failed: TagFailure[];
  /** Tags the primary changed while they were read. */
  skipped: TagSkip[];
  /** Tags the deadline came before. */
  notStarted: string[];
  /** Manifests named by digest (referrers an event pushed or deleted): their subjects' referrers are made exact too. */
  subjects?: string[];
  /** Every tag the secondary listed (a full read only), the tag-schema index tags among them. */
  listedTags?: ReadonlySet<string>;
  /** The secondary's tags outside the scope, with their digests: never planned, and what they point at is never removed. */
  outOfScope?: ReadonlyMap<string, string>;
}

/** What a reader brings to the pipeline. */
export interface SyncReader {
  /**
   * 'repository': every tag was read, so the prune guard applies, a read-only secondary is found
   * out before any write, and upload sessions this run did not reach are its own. 'tags': a few
   * named tags; sessions it did not reach belong to other tags and are kept.
   */
  readonly reads: 'repository' | 'tags';
  read(deadline: Deadline): Promise<SidesRead>;
  /** Just before an extra tag is removed: whether the primary has it now after all. */
  appearedOnPrimary(tag: string): Promise<boolean>;
  /**
   * After the writes, the primary asked again: each tag no longer as the run left it. `planned` is
   * the primary as read with each written tag at its written digest; `written` the tags written
   * (null: removed).
   */
  changesOnPrimary(planned: PrimaryTagMap, written: ReadonlyMap<string, string | null>): Promise<TagSkip[]>;
}

export interface PipelineOptions {
  dryRun: boolean;
  deep: boolean;
  maxPrune: number;
  deadline: number | undefined;
  concurrency: number;
  logger: EngineLogger;
  uploads: readonly UploadSession[];
  onUploadProgress: ((sessions: UploadSession[]) => Promise<void>) | undefined;
  onProgress: ((progress: { done: number; total: number; bytes: number }) => void) | undefined;
  /** Sync the referrers (OCI 1.1) of what the tags reach, where the primary serves the API. */
  referrers: boolean;
  /** The tags the secondary keeps; the others are never copied, repaired or removed. */
  tags: TagScope;
}

/** What the pipeline did, step by step; each reader shapes its report from it. */
export interface PipelineOutcome {
  read: SidesRead;
  plan: Plan;
  guard: string | undefined;
  writes: WriteOutcome;
  removals: RemovalOutcome;
  /** The extra tags left because the secondary refuses deletes (found up front or mid-run). */
  removalRefused: RemovalRefused | undefined;
  /** Tags the primary changed during the run (from the confirmation), not named elsewhere already. */
  changed: TagSkip[];
  /** Tags neither done nor failed: the deadline came first, or their big blob is still being copied. */
  notStarted: string[];
  deep: { failed: TagFailure[]; missing: Replicator['missing'] } | undefined;
  outOfTime: boolean;
  uploads: UploadSession[];
  stats: ReplicationStats;
  /** Absent where referrers are off or the primary does not serve the API. */
  referrers: ReferrersDone | undefined;
}

// eslint-disable-next-line max-lines-per-function -- split in the sync job change
export async function runSyncPipeline(
  primary: Registry,
  secondary: Registry,
  repository: Repository,
  reader: SyncReader,
  options: PipelineOptions,
): Promise<PipelineOutcome> {
  const { dryRun, concurrency, logger } = options;
  const deadline = new Deadline(options.deadline);
  const whole = reader.reads === 'repository';

  // Read, then plan. Removal below is only reached when the read proved each extra tag absent.
  // The referrers probe and the read go out together: at a far registry each round trip in turn is felt.
  const [mode, sides] = await allInOrder<[ReferrerMode, SidesRead]>([referrerMode(primary, secondary, repository, options.referrers), reader.read(deadline)]);
  const read = inScope(withoutDerivedTags(sides, mode), options.tags);
  const plan = planRepository(read.primaryTags, read.secondaryTags);
  let guard = whole ? pruneGuard(plan, read.secondaryTags.size, options.maxPrune) : undefined;
  // A full sync logs its plan; an event job's one line is its outcome (`replicated`), so its plan is for debugging.
  logger[whole ? 'info' : 'debug']('plan', {
    repository,
    copy: plan.copy.length,
    repair: plan.repair.length,
    remove: plan.remove.length,
    guard: guard !== undefined,
  });

  const removing = !guard && plan.remove.length > 0;
  const writing = !dryRun && whole && (plan.copy.length > 0 || plan.repair.length > 0);
  const deletes = await probeDeletes(secondary, repository, { removing, writing, dryRun });
  const remover = new TagRemover(
    secondary,
    repository,
    deletes,
    { tags: new Map([...read.secondaryTags, ...(read.outOfScope ?? [])]), heads: read.secondaryHeads },
    logger,
  );
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

  if (dryRun) {
    if (options.deep) outcome.deep = await checkTrees(replicator, tagsOnBothSides(read));
    if (mode.on) {
      const referrerPlan = await planPairReferrers(primary, secondary, repository, mode, read, new Map(read.primaryTags), replicator, concurrency);
      outcome.guard ??= whole ? referrerGuard(plan, referrerPlan, read, options.maxPrune) : undefined;
      outcome.referrers = referrersDone(mode, referrerPlan, emptyReferrerOutcome());
    }
    return outcome;
  }

  // Apply: copies and repairs, then removals (guarded, last).
  await cancelUploads(secondary, repository, book.stale, 'older than the session age bound', logger);
  const removals = removing && !refusedUpFront ? plan.remove : [];
  const onDone = progressCounter(options.onProgress, plan.copy.length + plan.repair.length + removals.length, replicator.stats);
  const run = { repository, concurrency, pastDeadline: deadline.passed, onDone, logger };
  outcome.writes = await writeTags(plan, replicator, remover, run);
  // What was written is the primary's digest now (it may have moved since the read).
  const planned = new Map([...read.primaryTags, ...outcome.writes.written]);

  // Referrers are planned once the tags' subjects are on the secondary; the guard counts their removals with the tags'.
  const referrerPlan =
    mode.on && !deadline.passed() ? await planPairReferrers(primary, secondary, repository, mode, read, planned, replicator, concurrency) : undefined;
  if (referrerPlan && whole && !guard) outcome.guard = guard = referrerGuard(plan, referrerPlan, read, options.maxPrune);
  if (removals.length > 0 && !guard) {
    outcome.removals = await remover.removeExtraTags(removals, (tag) => reader.appearedOnPrimary(tag), run);
    outcome.removalRefused ??= outcome.removals.refused;
  }
  outcome.notStarted.push(...outcome.writes.notStarted, ...outcome.removals.notStarted);
  if (referrerPlan && mode.on) {
    const removalsHeld = guard
      ? 'the prune guard held'
      : referrerPlan.remove.length > 0 && !(await removalsAllowed(secondary, repository, deletes))
        ? 'the secondary refuses deletes'
        : undefined;
    const done = await applyReferrerPlan(referrerPlan, { primary, secondary, repository, replicator, removalsHeld, concurrency, logger });
    outcome.referrers = referrersDone(mode, referrerPlan, done);
  }
  if (options.deep && !deadline.passed()) outcome.deep = await checkTrees(replicator, planned);

  // Confirm: an empty plan wrote nothing that could mix with changes on the primary.
  const written = new Map<string, string | null>([...outcome.writes.written, ...outcome.removals.removed.map((tag) => [tag, null] as const)]);
  if (written.size > 0 && !deadline.wasPassed) outcome.changed = notNamedYet(outcome, await confirm(reader, repository, planned, written));

  outcome.outOfTime = deadline.wasPassed;
  // A run over a few tags keeps the sessions it did not reach (they belong to other tags' blobs), as when out of time.
  const keepOthers = deadline.wasPassed || !whole;
  await cancelUploads(secondary, repository, book.released(keepOthers), 'no longer needed', logger);
  outcome.uploads = book.unfinished(keepOthers);
  return outcome;
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
async function planPairReferrers(
  primary: Registry,
  secondary: Registry,
  repository: Repository,
  mode: Extract<ReferrerMode, { on: true }>,
  read: SidesRead,
  planned: PrimaryTagMap,
  replicator: Replicator,
  concurrency: number,
): Promise<ReferrerPlan> {
  const digests = [...planned.values(), ...(read.subjects ?? [])].filter((digest): digest is string => digest !== undefined);
  const types = new Map([...mediaTypesOf(read.secondaryHeads), ...replicator.copiedTypes]);
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
function referrerGuard(plan: Plan, referrerPlan: ReferrerPlan, read: SidesRead, maxPrune: number): string | undefined {
  const copies = plan.copy.length + referrerPlan.copy.reduce((n, level) => n + level.length, 0);
  const removals = plan.remove.length + referrerPlan.remove.length;
  return pruneGuardOver({ removals, onSecondary: read.secondaryTags.size + referrerPlan.onSecondary, copies, what: 'tags and referrers' }, maxPrune);
}

/** Whether the secondary takes deletes, probed once when the tags did not ask already. */
async function removalsAllowed(secondary: Registry, repository: Repository, deletes: DeleteSupport): Promise<boolean> {
  const support = deletes === 'unknown' ? await secondary.probeDeletes(repository) : deletes;
  return support !== 'refused' && support !== 'read-only';
}

function referrersDone(mode: Extract<ReferrerMode, { on: true }>, plan: ReferrerPlan, done: ReferrerOutcome): ReferrersDone {
  return {
    secondary: mode.secondary,
    plan: { copy: plan.copy.flat().map(edgeOnly), remove: plan.remove.map(edgeOnly), mismatched: plan.mismatched, indexes: plan.indexes.map((i) => i.subject) },
    done,
  };
}

/** Counts tags done (written, removed, or failed) for `onProgress`. */
function progressCounter(onProgress: PipelineOptions['onProgress'], total: number, stats: ReplicationStats): () => void {
  let done = 0;
  return () => onProgress?.({ done: ++done, total, bytes: stats.bytesCopied });
}

/** Copies the tags the secondary lacks and re-points those at another digest; each tag fails alone. */
async function writeTags(
  plan: Plan,
  replicator: Replicator,
  remover: TagRemover,
  run: { repository: Repository; concurrency: number; pastDeadline: () => boolean; onDone: () => void; logger: EngineLogger },
): Promise<WriteOutcome> {
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
      outcome.failed.push({ tag: change.tag, error: errorMessage(error) });
      run.logger.error('tag copy failed', { repository: run.repository, tag: change.tag, error: errorMessage(error) });
    }
    run.onDone();
  });
  return outcome;
}

/** The tags both sides already hold at the same digest: what a dry run's deep check walks. */
function tagsOnBothSides(read: SidesRead): Map<string, string | undefined> {
  return new Map([...read.primaryTags].filter(([tag, digest]) => read.secondaryTags.get(tag) === digest));
}

/** Walks every tagged manifest's tree on the secondary, repairing (or, dry, listing) what is missing. */
async function checkTrees(replicator: Replicator, tags: PrimaryTagMap): Promise<NonNullable<PipelineOutcome['deep']>> {
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

/**
 * The primary may gain, lose or move tags while we write: it is asked again, so the run says
 * 'differences', never 'synced' over a mix of the old and the new state. A primary that cannot be
 * asked fails the run: what was written stands, but nobody may call it synced.
 */
async function confirm(reader: SyncReader, repository: Repository, planned: PrimaryTagMap, written: ReadonlyMap<string, string | null>): Promise<TagSkip[]> {
  try {
    return await reader.changesOnPrimary(planned, written);
  } catch (error) {
    throw new GeoSyncError(
      'CONFIRMATION_FAILED',
      `${repository}: ${written.size} tag(s) written, but the primary could not be read again to confirm nothing changed meanwhile (${errorMessage(error)}); run again`,
      { retryable: error instanceof GeoSyncError && error.retryable, cause: error },
    );
  }
}

/** The confirmation's changes, but for tags already named as failed or skipped. */
function notNamedYet(outcome: PipelineOutcome, changes: TagSkip[]): TagSkip[] {
  const { read, writes, removals } = outcome;
  const named = new Set(
    [...read.failed, ...read.skipped, ...writes.failed, ...writes.skipped, ...removals.failed, ...removals.skipped].map((entry) => entry.tag),
  );
  return changes.filter((change) => !named.has(change.tag));
}

/**
 * Why a confirmation names a tag the run left at `expected` (null: absent; undefined: present,
 * digest unread) and the primary now holds at `now` (null: absent).
 */
export function changeOnPrimary(expected: string | null | undefined, now: string | null): string {
  const reason =
    now === null
      ? 'deleted on the primary during the sync'
      : expected === null
        ? 'added on the primary during the sync'
        : `moved on the primary during the sync (now ${now})`;
  return `${reason}; run again`;
}
