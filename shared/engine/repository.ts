/** One repository's sync and verify: each a short sequence of named steps over both registries. */
import { tagChecksum, type ChecksumKind } from './checksum.js';
import { DEFAULT_CONCURRENCY, mapLimit } from './concurrency.js';
import { GeoSyncError, errorMessage } from './errors.js';
import { silentLogger, type EngineLogger } from './log.js';
import type { Repository } from './oci.js';
import { DEFAULT_MAX_PRUNE, isEmptyPlan, planRepository, pruneGuard, type Plan, type PrimaryTagMap } from './planner.js';
import { readForSync, readPrimary, readTagMap, type ReadOptions, type SyncSides } from './read-tags.js';
import type { RegistryClient } from './registry/client.js';
import { Deadline } from './deadline.js';
import { Replicator, UploadPaused, cancelUploads, type MissingObject, type ReplicationStats } from './replicate.js';
import type { VerifyStatus } from './status.js';
import { SyncReportBuilder, type SyncReport, type TagFailure, type TagSkip, type TreeCheck, type WriteOutcome } from './sync-report.js';
import { TagRemover, probeDeletes } from './tag-removal.js';
import { UploadBook, type UploadSession } from './upload-session.js';

export interface SyncOptions {
  dryRun?: boolean;
  deep?: boolean;
  /** Largest fraction of the secondary's tags one run may remove (default 0.5). */
  maxPrune?: number;
  /** Epoch ms: no new tag is started after it; the report says 'incomplete'. */
  deadline?: number;
  concurrency?: number;
  logger?: EngineLogger;
  /** Read tags with GitLab's tag API where offered (default true). */
  gitlabApi?: boolean;
  onProgress?: (progress: { done: number; total: number; bytes: number }) => void;
  /**
   * Upload sessions kept from an earlier run (its report's `uploads`), resumed where the registry
   * says they stand. Only a run with a deadline copies big blobs in chunks and so keeps sessions.
   */
  uploads?: readonly UploadSession[];
  /** After each chunk of a chunked upload, with every session to keep as it stands: save them, the run may be killed. */
  onUploadProgress?: (sessions: UploadSession[]) => Promise<void>;
}

/**
 * Makes the secondary hold exactly the primary's (tag, digest) pairs: read both sides, plan,
 * write (copies and repairs), remove (guarded, last), confirm (the primary read again), report.
 * A dry run plans and reports; with `deep` it also lists what the trees lack.
 */
export async function syncRepository(
  primary: RegistryClient,
  secondary: RegistryClient,
  repository: Repository,
  options: SyncOptions = {},
): Promise<SyncReport> {
  const startedAt = Date.now();
  const logger = options.logger ?? silentLogger;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const dryRun = options.dryRun ?? false;
  const read: ReadOptions = { concurrency, logger, gitlabApi: options.gitlabApi };

  // Removal below is only reached when the primary's listing completed: any failure here throws.
  const sides = await readForSync(primary, secondary, repository, { ...read, dryRun });
  const plan = planRepository(sides.primaryTags, sides.secondaryTags);
  const guard = pruneGuard(plan, sides.secondaryTags.size, options.maxPrune ?? DEFAULT_MAX_PRUNE);
  const report = new SyncReportBuilder({
    repository,
    dryRun,
    plan,
    guard,
    primaryTags: sides.primaryTags.size,
    secondaryTags: sides.secondaryTags.size,
    startedAt,
  });
  logger.info('plan', { repository, copy: plan.copy.length, repair: plan.repair.length, remove: plan.remove.length, guard: guard !== undefined });

  const removing = !guard && plan.remove.length > 0;
  const writing = !dryRun && (plan.copy.length > 0 || plan.repair.length > 0);
  const deletes = await probeDeletes(secondary, repository, { removing, writing, dryRun });
  const remover = new TagRemover(secondary, repository, deletes, { tags: sides.secondaryTags, heads: sides.secondaryHeads }, logger);
  const refused = removing ? remover.refusedUpFront(plan.remove) : undefined;
  if (refused) report.refusedUpFront(refused);
  const deadline = new Deadline(options.deadline);
  const book = new UploadBook(dryRun ? [] : (options.uploads ?? []), Date.now(), options.onUploadProgress);
  const replicator = new Replicator(primary, secondary, repository, {
    deep: options.deep,
    write: !dryRun,
    logger,
    secondaryIsNew: sides.secondaryIsNew,
    ...(deadline.set ? { chunked: { book, deadline } } : {}),
  });

  if (dryRun) {
    if (options.deep) report.treesChecked(await checkTrees(replicator, tagsOnBothSides(sides)));
    return finish(report, replicator.stats, logger);
  }

  await cancelUploads(secondary, repository, book.stale, 'older than the session age bound', logger);
  const removals = removing && !refused ? plan.remove : [];
  const onDone = progressCounter(options.onProgress, plan.copy.length + plan.repair.length + removals.length, replicator.stats);
  const writes = await writeTags(plan, replicator, remover, { repository, concurrency, pastDeadline: deadline.passed, onDone, logger });
  report.wrote(writes);
  if (removals.length > 0) report.removed(await remover.removeExtraTags(removals, primary, { concurrency, pastDeadline: deadline.passed, onDone }));
  // What was written is the primary's digest now (it may have moved since listing).
  const primaryTags = new Map([...sides.primaryTags, ...writes.written]);
  if (options.deep && !deadline.passed()) report.treesChecked(await checkTrees(replicator, primaryTags));
  // An empty plan wrote nothing that could mix with changes on the primary: nothing to confirm.
  if (!isEmptyPlan(plan) && !deadline.wasPassed) report.primaryChanged(await changesOnPrimary(primary, repository, primaryTags, read, report.tagsWritten));
  if (deadline.wasPassed) report.outOfTime();
  await cancelUploads(secondary, repository, book.released(deadline.wasPassed), 'no longer needed', logger);
  report.uploadsLeft(book.unfinished(deadline.wasPassed));
  return finish(report, replicator.stats, logger);
}

/** Counts tags done (written, removed, or failed) for `onProgress`. */
function progressCounter(onProgress: SyncOptions['onProgress'], total: number, stats: ReplicationStats): () => void {
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
  const outcome = {
    copied: [] as string[],
    repaired: [] as string[],
    written: new Map<string, string>(),
    skipped: [] as TagSkip[],
    failed: [] as TagFailure[],
  };
  const writes = [...plan.copy.map((change) => ({ change, kind: 'copy' as const })), ...plan.repair.map((change) => ({ change, kind: 'repair' as const }))];
  await mapLimit(writes, run.concurrency, async ({ change, kind }) => {
    if (run.pastDeadline()) return;
    try {
      const written = await replicator.copyTag(change.tag);
      if (written === undefined) outcome.skipped.push({ tag: change.tag, reason: 'deleted on the primary during the sync' });
      else {
        (kind === 'copy' ? outcome.copied : outcome.repaired).push(change.tag);
        if (kind === 'repair') await remover.cleanUpAfterRepair(change.secondary);
        outcome.written.set(change.tag, written);
      }
    } catch (error) {
      // Out of time mid-blob: neither done nor failed; the next run resumes the upload and writes the tag.
      if (error instanceof UploadPaused) return;
      outcome.failed.push({ tag: change.tag, error: errorMessage(error) });
      run.logger.error('tag copy failed', { repository: run.repository, tag: change.tag, error: errorMessage(error) });
    }
    run.onDone();
  });
  return outcome;
}

/** The tags both sides already hold at the same digest: what a dry run's deep check walks. */
function tagsOnBothSides(sides: SyncSides): Map<string, string | undefined> {
  return new Map([...sides.primaryTags].filter(([tag, digest]) => sides.secondaryTags.get(tag) === digest));
}

/** Walks every tagged manifest's tree on the secondary, repairing (or, dry, listing) what is missing. */
async function checkTrees(replicator: Replicator, tags: PrimaryTagMap): Promise<TreeCheck> {
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
 * The primary may gain, lose or move tags while we write. After the writes, the primary is read
 * again whole (names and digests): each tag not as the run left it is returned, to be reported
 * as skipped, so the run says 'differences', never 'synced' over a mix of the old and the new state.
 */
async function changesOnPrimary(
  primary: RegistryClient,
  repository: Repository,
  planned: PrimaryTagMap,
  read: ReadOptions,
  tagsWritten: number,
): Promise<TagSkip[]> {
  let now: Map<string, string>;
  try {
    now = (await readTagMap(primary, repository, read)) ?? new Map<string, string>();
  } catch (error) {
    throw new GeoSyncError(
      'CONFIRMATION_FAILED',
      `${repository}: ${tagsWritten} tag(s) written, but the primary could not be read again to confirm nothing changed meanwhile (${errorMessage(error)}); run again`,
      {
        retryable: error instanceof GeoSyncError && error.retryable,
        cause: error,
      },
    );
  }
  const changes: TagSkip[] = [];
  for (const [tag, digest] of now) {
    const expected = planned.get(tag);
    if (!planned.has(tag)) changes.push({ tag, reason: 'added on the primary during the sync; run again' });
    else if (expected !== undefined && expected !== digest) changes.push({ tag, reason: `moved on the primary during the sync (now ${digest}); run again` });
  }
  for (const tag of planned.keys()) if (!now.has(tag)) changes.push({ tag, reason: 'deleted on the primary during the sync; run again' });
  return changes;
}

function finish(report: SyncReportBuilder, stats: ReplicationStats, logger: EngineLogger): SyncReport {
  const done = report.finish(stats);
  logger.info('sync finished', {
    repository: done.repository,
    status: done.status,
    copied: done.done.copied.length,
    repaired: done.done.repaired.length,
    removed: done.done.removed.length,
    failed: done.failed.length,
  });
  return done;
}

export interface VerifyOptions {
  deep?: boolean;
  checksum?: ChecksumKind;
  concurrency?: number;
  logger?: EngineLogger;
  gitlabApi?: boolean;
}

export interface VerifyReport {
  repository: string;
  status: VerifyStatus;
  checksum: ChecksumKind;
  primaryChecksum: string;
  secondaryChecksum: string;
  primaryTags: number;
  secondaryTags: number;
  missing: string[];
  extra: string[];
  mismatched: { tag: string; primary: string; secondary: string }[];
  deep?: { missing: MissingObject[]; failed: { digest: string; error: string }[] };
}

/** Compares the (tag, digest) checksums of both sides and names every difference; never writes. */
export async function verifyRepository(
  primary: RegistryClient,
  secondary: RegistryClient,
  repository: Repository,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const kind = options.checksum ?? 'canonical';
  const read = { concurrency: options.concurrency ?? DEFAULT_CONCURRENCY, logger: options.logger, gitlabApi: options.gitlabApi };
  const [primaryTags, secondaryTags] = await Promise.all([
    readPrimary(primary, repository, read),
    readTagMap(secondary, repository, read).then((map) => map ?? new Map<string, string>()),
  ]);
  const plan = planRepository(primaryTags, secondaryTags);
  const report: VerifyReport = {
    repository,
    status: 'synced',
    checksum: kind,
    primaryChecksum: tagChecksum(primaryTags, kind),
    secondaryChecksum: tagChecksum(secondaryTags, kind),
    primaryTags: primaryTags.size,
    secondaryTags: secondaryTags.size,
    missing: plan.copy.map((c) => c.tag),
    extra: plan.remove.map((c) => c.tag),
    mismatched: plan.repair.map((c) => ({ tag: c.tag, primary: c.primary!, secondary: c.secondary! })),
  };
  if (options.deep) {
    const replicator = new Replicator(primary, secondary, repository, { deep: true, write: false, logger: options.logger });
    const failed: { digest: string; error: string }[] = [];
    const matching = [...new Set([...secondaryTags].filter(([tag, digest]) => primaryTags.get(tag) === digest).map(([, digest]) => digest))];
    await mapLimit(matching, read.concurrency, async (digest) => {
      await replicator.checkTree(digest).catch((error: unknown) => failed.push({ digest, error: errorMessage(error) }));
    });
    report.deep = { missing: replicator.missing, failed };
  }
  const deepClean = !report.deep || (report.deep.missing.length === 0 && report.deep.failed.length === 0);
  report.status = report.primaryChecksum === report.secondaryChecksum && deepClean ? 'synced' : 'mismatch';
  return report;
}
