/** One repository's sync and verify: the sync a reader of every tag in front of the one pipeline, verify a comparison of both sides. */
import { tagChecksum, type ChecksumKind } from './checksum.js';
import { DEFAULT_CONCURRENCY, mapLimit } from './concurrency.js';
import { errorMessage } from './errors.js';
import { silentLogger, type EngineLogger } from './log.js';
import type { Repository } from './oci.js';
import { DEFAULT_MAX_PRUNE, planRepository } from './planner.js';
import { readForSync, readPrimary, readTagMap, type ReadOptions } from './read-tags.js';
import type { RegistryClient } from './registry/client.js';
import { Replicator, type MissingObject } from './replicate.js';
import type { VerifyStatus } from './status.js';
import { SyncReportBuilder, type SyncReport, type TagSkip } from './sync-report.js';
import { changeOnPrimary, runSyncPipeline, type SyncReader } from './sync-pipeline.js';
import type { UploadSession } from './upload-session.js';

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
 * Makes the secondary hold exactly the primary's (tag, digest) pairs: the whole repository read
 * on both sides, then the one pipeline (plan, write, remove guarded and last, confirm with the
 * primary read again whole). A dry run plans and reports; with `deep` it also lists what the trees lack.
 */
export async function syncRepository(
  primary: RegistryClient,
  secondary: RegistryClient,
  repository: Repository,
  options: SyncOptions = {},
): Promise<SyncReport> {
  const startedAt = Date.now();
  const logger = options.logger ?? silentLogger;
  const dryRun = options.dryRun ?? false;
  const read: ReadOptions = { concurrency: options.concurrency ?? DEFAULT_CONCURRENCY, logger, gitlabApi: options.gitlabApi };
  const outcome = await runSyncPipeline(primary, secondary, repository, wholeRepository(primary, secondary, repository, { ...read, dryRun }), {
    dryRun,
    deep: options.deep ?? false,
    maxPrune: options.maxPrune ?? DEFAULT_MAX_PRUNE,
    deadline: options.deadline,
    concurrency: read.concurrency!,
    logger,
    uploads: options.uploads ?? [],
    onUploadProgress: options.onUploadProgress,
    onProgress: options.onProgress,
  });

  const report = new SyncReportBuilder({
    repository,
    dryRun,
    plan: outcome.plan,
    guard: outcome.guard,
    primaryTags: outcome.read.primaryTags.size,
    secondaryTags: outcome.read.secondaryTags.size,
    startedAt,
  });
  report.wrote(outcome.writes);
  report.removed(outcome.removals);
  if (outcome.removalRefused) report.refusedUpFront(outcome.removalRefused);
  if (outcome.deep) report.treesChecked(outcome.deep);
  report.primaryChanged(outcome.changed);
  if (outcome.outOfTime) report.outOfTime();
  report.uploadsLeft(outcome.uploads);
  const done = report.finish(outcome.stats);
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

/**
 * The reader of a full sync: every tag of the repository on both sides. An extra tag is proved
 * absent by the primary's complete listing (any failure there throws) and asked once more just
 * before it is removed; the confirmation lists the primary again whole.
 */
function wholeRepository(primary: RegistryClient, secondary: RegistryClient, repository: Repository, read: ReadOptions & { dryRun: boolean }): SyncReader {
  return {
    reads: 'repository',
    read: async () => ({ ...(await readForSync(primary, secondary, repository, read)), failed: [], skipped: [], notStarted: [] }),
    appearedOnPrimary: async (tag) => (await primary.headManifest(repository, tag)) !== null,
    changesOnPrimary: async (planned) => {
      const now = (await readTagMap(primary, repository, read)) ?? new Map<string, string>();
      const changes: TagSkip[] = [];
      for (const [tag, digest] of now) {
        const expected = planned.get(tag);
        if (!planned.has(tag)) changes.push({ tag, reason: changeOnPrimary(null, digest) });
        else if (expected !== undefined && expected !== digest) changes.push({ tag, reason: changeOnPrimary(expected, digest) });
      }
      for (const tag of planned.keys()) if (!now.has(tag)) changes.push({ tag, reason: changeOnPrimary(planned.get(tag), null) });
      return changes;
    },
  };
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
