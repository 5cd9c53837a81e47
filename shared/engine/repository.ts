import { tagChecksum, type ChecksumKind } from './checksum.js';
import { DEFAULT_CONCURRENCY, mapLimit } from './concurrency.js';
import { GeoSyncError, errorMessage } from './errors.js';
import { silentLogger, type EngineLogger } from './log.js';
import { validateRepositoryName } from './oci.js';
import { DEFAULT_MAX_PRUNE, isEmptyPlan, planRepository, pruneGuard, type Plan } from './planner.js';
import { RegistryClient, type ManifestHead } from './registry/client.js';
import type { RegistryEndpoint, TransportOptions } from './registry/transport.js';
import { Replicator, type MissingObject } from './replicate.js';
import { TagRemover, probeDeletes, type RemovalRefused } from './tag-removal.js';

export function createRegistryClient(endpoint: RegistryEndpoint, options: TransportOptions = {}): RegistryClient {
  return new RegistryClient(endpoint, options);
}

export interface ReadOptions {
  concurrency?: number;
  logger?: EngineLogger;
  /** Use GitLab's tag list with digests when the registry offers it (default true). */
  gitlabApi?: boolean;
}

/**
 * (tag -> digest) of one repository: from GitLab's tag API where offered, else one listing plus
 * one HEAD per tag. Null when the repository does not exist.
 */
export async function readTagMap(client: RegistryClient, repository: string, options: ReadOptions = {}): Promise<Map<string, string> | null> {
  const tags = await listTagNames(client, repository, options);
  if (tags === null) return null;
  await readDigests(client, repository, tags, () => true, options);
  return tags as Map<string, string>;
}

/** Tag names, with digests already filled in where GitLab's tag API gave them. Null when the repository does not exist. */
async function listTagNames(client: RegistryClient, repository: string, options: ReadOptions): Promise<Map<string, string | undefined> | null> {
  const gitlab = options.gitlabApi !== false && (await client.hasGitlabTagApi());
  const withDigests = gitlab ? await client.listTagDigestsGitlab(repository) : null;
  if (withDigests !== null) return withDigests;
  // GitLab's API answering 404 is no proof of absence (it knows only the repositories in its
  // metadata database): the plain API decides.
  const tags = await client.listTags(repository);
  if (tags === null) return null;
  if (gitlab) {
    (options.logger ?? silentLogger).warn('GitLab tag API does not know a repository the plain API lists; using the plain list', { registry: client.host, repository, tags: tags.length });
  }
  return new Map(tags.map((tag) => [tag, undefined]));
}

/** HEADs the selected tags whose digest is not known yet; a tag deleted since listing is dropped. */
async function readDigests(client: RegistryClient, repository: string, tags: Map<string, string | undefined>, selected: (tag: string) => boolean, options: ReadOptions & { onHead?: (head: ManifestHead) => void }): Promise<void> {
  const unread = [...tags].filter(([tag, digest]) => digest === undefined && selected(tag)).map(([tag]) => tag);
  await mapLimit(unread, options.concurrency ?? DEFAULT_CONCURRENCY, async (tag) => {
    const head = await client.headManifest(repository, tag);
    if (head) {
      tags.set(tag, head.digest);
      options.onHead?.(head);
    } else tags.delete(tag);
  });
}

function primaryNotFound(primary: RegistryClient, repository: string): GeoSyncError {
  return new GeoSyncError('REPOSITORY_NOT_FOUND', `repository ${repository} does not exist on the primary ${primary.host}; nothing was changed`, { exitCode: 3 });
}

async function readPrimary(primary: RegistryClient, repository: string, options: ReadOptions): Promise<Map<string, string>> {
  const tags = await readTagMap(primary, repository, options);
  if (tags === null) throw primaryNotFound(primary, repository);
  return tags;
}

/**
 * Both sides for a sync. The secondary's digests are all read; the primary's only where the
 * secondary has the tag too: a tag to copy is fetched whole, which gives its digest, so a HEAD
 * first would be a request spent for nothing. A dry run reads every digest, to show them.
 */
async function readForSync(primary: RegistryClient, secondary: RegistryClient, repository: string, options: ReadOptions & { dryRun?: boolean }) {
  const [primaryTags, listed] = await Promise.all([listTagNames(primary, repository, options), listTagNames(secondary, repository, options)]);
  if (primaryTags === null) throw primaryNotFound(primary, repository);
  const secondaryTags = listed ?? new Map<string, string | undefined>();
  const secondaryHeads: ManifestHead[] = [];
  const onHead = (head: ManifestHead) => void secondaryHeads.push(head);
  await Promise.all([
    readDigests(primary, repository, primaryTags, (tag) => options.dryRun === true || secondaryTags.has(tag), options),
    readDigests(secondary, repository, secondaryTags, () => true, { ...options, onHead }),
  ]);
  // A tag the secondary lost during its HEADs is planned as a copy; its digest comes with the copy.
  return { primaryTags, secondaryTags: secondaryTags as Map<string, string>, secondaryIsNew: listed === null, secondaryHeads };
}

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
}

export interface SyncReport {
  repository: string;
  /** synced: the secondary now matches; differences: a guard held or work was skipped; failed: some tags failed; incomplete: the deadline came first. */
  status: 'synced' | 'differences' | 'failed' | 'incomplete';
  dryRun: boolean;
  plan: Plan;
  done: { copied: string[]; repaired: string[]; removed: string[] };
  failed: { tag: string; error: string }[];
  /** Tags left alone on purpose (the primary changed under us), with why. */
  skipped: { tag: string; reason: string }[];
  guard?: { reason: string };
  /**
   * The secondary refuses deletes (delete disabled in its storage config, or read-only): these
   * extra tags were left exactly as they were. The run still copied and repaired the rest.
   */
  removalRefused?: RemovalRefused;
  deep?: { missing: MissingObject[] };
  primaryTags: number;
  secondaryTags: number;
  bytesCopied: number;
  blobsCopied: number;
  blobsMounted: number;
  durationMs: number;
}

/** Reads both sides, plans, and (unless dry-run) applies: copies and repairs first, removals last and guarded. */
export async function syncRepository(primary: RegistryClient, secondary: RegistryClient, repository: string, options: SyncOptions = {}): Promise<SyncReport> {
  validateRepositoryName(repository);
  const started = Date.now();
  const logger = options.logger ?? silentLogger;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const maxPrune = options.maxPrune ?? DEFAULT_MAX_PRUNE;
  // Removal below is only reached when the primary's listing completed: any failure here throws.
  const { primaryTags, secondaryTags, secondaryIsNew, secondaryHeads } = await readForSync(primary, secondary, repository, { concurrency, logger, gitlabApi: options.gitlabApi, dryRun: options.dryRun });
  const plan = planRepository(primaryTags, secondaryTags);
  const guardReason = pruneGuard(plan, secondaryTags.size, maxPrune);
  const report: SyncReport = {
    repository,
    status: 'synced',
    dryRun: options.dryRun ?? false,
    plan,
    done: { copied: [], repaired: [], removed: [] },
    failed: [],
    skipped: [],
    ...(guardReason ? { guard: { reason: guardReason } } : {}),
    primaryTags: primaryTags.size,
    secondaryTags: secondaryTags.size,
    bytesCopied: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    durationMs: 0,
  };
  logger.info('plan', { repository, copy: plan.copy.length, repair: plan.repair.length, remove: plan.remove.length, guard: guardReason !== undefined });

  const removing = !guardReason && plan.remove.length > 0;
  const writing = !options.dryRun && (plan.copy.length > 0 || plan.repair.length > 0);
  const deletes = await probeDeletes(secondary, repository, { removing, writing, dryRun: options.dryRun ?? false });
  const remover = new TagRemover(secondary, repository, deletes, { tags: secondaryTags, heads: secondaryHeads }, logger);
  const refusedUpFront = removing ? remover.refusedUpFront(plan.remove) : undefined;
  if (refusedUpFront) report.removalRefused = refusedUpFront;

  const replicator = new Replicator(primary, secondary, repository, { deep: options.deep, write: !options.dryRun, logger, secondaryIsNew });
  if (!options.dryRun) {
    const writes = [...plan.copy.map((change) => ({ change, kind: 'copy' as const })), ...plan.repair.map((change) => ({ change, kind: 'repair' as const }))];
    const total = writes.length + (removing && !report.removalRefused ? plan.remove.length : 0);
    let done = 0;
    const progress = () => options.onProgress?.({ done: ++done, total, bytes: replicator.stats.bytesCopied });
    let outOfTime = false;
    const pastDeadline = () => (outOfTime ||= options.deadline !== undefined && Date.now() >= options.deadline);

    await mapLimit(writes, concurrency, async ({ change, kind }) => {
      if (pastDeadline()) return;
      try {
        const written = await replicator.copyTag(change.tag);
        if (written === undefined) report.skipped.push({ tag: change.tag, reason: 'deleted on the primary during the sync' });
        else {
          (kind === 'copy' ? report.done.copied : report.done.repaired).push(change.tag);
          if (kind === 'repair') await remover.cleanUpAfterRepair(change.secondary);
          // What was written is the primary's digest now (it may have moved since listing).
          change.primary = written;
          primaryTags.set(change.tag, written);
        }
      } catch (error) {
        report.failed.push({ tag: change.tag, error: errorMessage(error) });
        logger.error('tag copy failed', { repository, tag: change.tag, error: errorMessage(error) });
      }
      progress();
    });

    if (removing && !report.removalRefused) {
      const removal = await remover.removeExtraTags(plan.remove, primary, { concurrency, pastDeadline, onDone: progress });
      report.done.removed.push(...removal.removed);
      report.skipped.push(...removal.skipped);
      report.failed.push(...removal.failed);
      if (removal.refused) report.removalRefused = removal.refused;
    }

    if (options.deep && !pastDeadline()) {
      await deepCheck(replicator, primaryTags, report);
    }
    if (!isEmptyPlan(plan) && !outOfTime) {
      await noteConcurrentChanges(primary, repository, primaryTags, report, { concurrency, logger, gitlabApi: options.gitlabApi }).catch((error: unknown) => {
        const wrote = report.done.copied.length + report.done.repaired.length + report.done.removed.length;
        throw new GeoSyncError('CONFIRMATION_FAILED', `${repository}: ${wrote} tag(s) written, but the primary could not be read again to confirm nothing changed meanwhile (${errorMessage(error)}); run again`, {
          exitCode: 3,
          retryable: error instanceof GeoSyncError && error.retryable,
          cause: error,
        });
      });
    }
    if (outOfTime) report.status = 'incomplete';
  } else if (options.deep) {
    await deepCheck(replicator, new Map([...primaryTags].filter(([tag, digest]) => secondaryTags.get(tag) === digest)), report);
  }

  for (const list of [report.done.copied, report.done.repaired, report.done.removed]) list.sort();
  report.failed.sort((a, b) => (a.tag < b.tag ? -1 : 1));
  Object.assign(report, {
    bytesCopied: replicator.stats.bytesCopied,
    blobsCopied: replicator.stats.blobsCopied,
    blobsMounted: replicator.stats.blobsMounted,
    durationMs: Date.now() - started,
  });
  if (report.status !== 'incomplete') report.status = syncStatus(report);
  logger.info('sync finished', { repository, status: report.status, copied: report.done.copied.length, repaired: report.done.repaired.length, removed: report.done.removed.length, failed: report.failed.length });
  return report;
}

/**
 * The primary may gain, lose or move tags while we write. After the writes, the primary is read
 * again whole (names and digests): any tag not as the run left it is reported as skipped, so the
 * run says 'differences', never 'synced' over a mix of the old and the new state. Runs that write
 * nothing skip this: they changed nothing that could mix.
 */
async function noteConcurrentChanges(primary: RegistryClient, repository: string, planned: ReadonlyMap<string, string | undefined>, report: SyncReport, options: ReadOptions): Promise<void> {
  const now = (await readTagMap(primary, repository, options)) ?? new Map<string, string>();
  const named = new Set([...report.skipped, ...report.failed].map((entry) => entry.tag));
  const note = (tag: string, reason: string) => {
    if (!named.has(tag)) report.skipped.push({ tag, reason });
  };
  for (const [tag, digest] of now) {
    const expected = planned.get(tag);
    if (!planned.has(tag)) note(tag, 'added on the primary during the sync; run again');
    else if (expected !== undefined && expected !== digest) note(tag, `moved on the primary during the sync (now ${digest}); run again`);
  }
  for (const tag of planned.keys()) if (!now.has(tag)) note(tag, 'deleted on the primary during the sync; run again');
}

function syncStatus(report: SyncReport): SyncReport['status'] {
  if (report.failed.length > 0) return 'failed';
  if (report.dryRun) return isEmptyPlan(report.plan) && !report.deep?.missing.length ? 'synced' : 'differences';
  if (report.guard || report.removalRefused || report.skipped.length > 0) return 'differences';
  return 'synced';
}

/** Walks every tagged manifest's tree on the secondary, repairing (or, dry, listing) what is missing. */
async function deepCheck(replicator: Replicator, tags: ReadonlyMap<string, string | undefined>, report: SyncReport): Promise<void> {
  const digests = [...new Set([...tags.values()].filter((digest) => digest !== undefined))];
  await mapLimit(digests, 8, async (digest) => {
    try {
      await replicator.checkTree(digest);
    } catch (error) {
      const tag = [...tags].find(([, d]) => d === digest)?.[0] ?? digest;
      report.failed.push({ tag, error: errorMessage(error) });
    }
  });
  report.deep = { missing: replicator.missing };
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
  status: 'synced' | 'mismatch';
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
export async function verifyRepository(primary: RegistryClient, secondary: RegistryClient, repository: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  validateRepositoryName(repository);
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

/** One page of the primary's repositories, for fan-out; `next` is the cursor to checkpoint. */
export async function listRepositoriesPage(client: RegistryClient, options: { last?: string; pageSize?: number } = {}): Promise<{ repositories: string[]; next?: string }> {
  return client.listCatalogPage(options);
}
