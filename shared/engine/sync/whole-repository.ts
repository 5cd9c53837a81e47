/** The full sync: a reader of every tag of one repository in front of the one pipeline. */
import { DEFAULT_CONCURRENCY } from '../base/concurrency.js';
import { silentLogger, type EngineLogger } from '../base/log.js';
import type { Repository } from '../base/oci.js';
import { DEFAULT_MAX_PRUNE } from './planner.js';
import { readForSync, readTagMap, type ReadOptions } from './read-tags.js';
import type { Registry } from '../registry/registry.js';
import { reportOf, type SyncReport } from './report.js';
import type { TagSkip } from './stages.js';
import { changeOnPrimary } from './confirm.js';
import { runSyncPipeline } from './pipeline.js';
import type { ReadPolicy, SyncReader } from './stages.js';
import { EVERY_TAG, type TagScope } from '../config/scope.js';
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
  /** Sync the referrers (OCI 1.1) of what the tags reach, where the primary serves the API (default true). */
  referrers?: boolean;
  /** The tags the secondary keeps (default every tag); the others are never read on the primary, nor copied, repaired or removed. */
  tags?: TagScope;
}

/**
 * Makes the secondary hold exactly the primary's (tag, digest) pairs: the whole repository read
 * on both sides, then the one pipeline (plan, write, remove guarded and last, confirm with the
 * primary read again whole). A dry run plans and reports; with `deep` it also lists what the trees lack.
 */
export async function syncRepository(primary: Registry, secondary: Registry, repository: Repository, options: SyncOptions = {}): Promise<SyncReport> {
  const startedAt = Date.now();
  const logger = options.logger ?? silentLogger;
  const dryRun = options.dryRun ?? false;
  const tags = options.tags ?? EVERY_TAG;
  const read: ReadOptions = {
    concurrency: options.concurrency ?? DEFAULT_CONCURRENCY,
    logger,
    gitlabApi: options.gitlabApi,
    ...(tags.all ? {} : { keep: tags.has }),
  };
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
    referrers: options.referrers ?? true,
    tags,
  });

  const secondaryRepository = secondary.prefix ? secondary.at(repository) : undefined;
  const done = reportOf(outcome, { repository, secondaryRepository, dryRun, startedAt, policy: WHOLE_REPOSITORY_POLICY });
  logger.info('sync finished', {
    repository: done.repository,
    ...(done.secondaryRepository ? { secondaryRepository: done.secondaryRepository } : {}),
    status: done.status,
    copied: done.done.copied.length,
    repaired: done.done.repaired.length,
    removed: done.done.removed.length,
    failed: done.failed.length,
  });
  return done;
}

/**
 * A full sync's policy: every tag was read, so the prune guard applies, a read-only secondary is
 * found out before any write, the upload sessions are the run's own, and a run the deadline cut
 * is continued whole.
 */
export const WHOLE_REPOSITORY_POLICY: ReadPolicy = {
  pruneGuard: true,
  ownsUnreachedUploads: true,
  planLog: 'info',
  probeBeforeWrites: true,
  continuesWhole: true,
};

/**
 * The reader of a full sync: every tag of the repository on both sides. An extra tag is proved
 * absent by the primary's complete listing (any failure there throws) and asked once more just
 * before it is removed; the confirmation lists the primary again whole.
 */
function wholeRepository(primary: Registry, secondary: Registry, repository: Repository, read: ReadOptions & { dryRun: boolean }): SyncReader {
  return {
    policy: WHOLE_REPOSITORY_POLICY,
    read: async () => {
      const sides = await readForSync(primary, secondary, repository, read);
      return { ...sides, listedTags: new Set(sides.secondaryTags.keys()), failed: [], skipped: [], notStarted: [] };
    },
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
