/**
 * Targeted sync: a few named tags of one repository made exact on the secondary, at a cost that
 * does not grow with the repository. What an event job runs: an event names a tag, never what
 * the tag holds, so each tag is read from the primary as it is now and only that is written.
 */
import { DEFAULT_CONCURRENCY, mapLimit } from './concurrency.js';
import { Deadline } from './deadline.js';
import { GeoSyncError, errorMessage } from './errors.js';
import { silentLogger, type EngineLogger } from './log.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, validateRepositoryName, validateTag, type Repository } from './oci.js';
import { byteOrder } from './planner.js';
import type { DeleteSupport, ManifestHead, RegistryClient } from './registry/client.js';
import { Replicator, UploadPaused, cancelUploads } from './replicate.js';
import { TagRemover, writeRefusal } from './tag-removal.js';
import { UploadBook, type UploadSession } from './upload-session.js';

/** How long a tag that does not show its announced digest yet is given before it is asked once more. */
const SETTLE_MS = 100;

export interface TagSyncOptions {
  /** Tags worked on at once. */
  concurrency?: number;
  logger?: EngineLogger;
  /** Epoch ms: no tag is started after it; the tags left are named in `notStarted`. */
  deadline?: number;
  /**
   * Digests a push announced for some tags. Only compared, never copied: a tag whose primary
   * does not show its digest is named in `unsettled`, for the caller to look at again.
   */
  announced?: Readonly<Record<string, string>>;
  /**
   * Upload sessions the pair's record keeps (from an event job or a full sync). With a deadline,
   * big blobs are copied in chunks as sync copies them: a session is resumed, and one cut short
   * by the deadline is kept; sessions for blobs this job does not touch are kept as they are.
   */
  uploads?: readonly UploadSession[];
  /** After each chunk, with every session to keep: save them, the job may be killed. */
  onUploadProgress?: (sessions: UploadSession[]) => Promise<void>;
}

export interface TagSyncReport {
  repository: string;
  /**
   * synced: every tag asked for is as the primary holds it; differences: some changed on the
   * primary meanwhile (`skipped`) or the secondary refuses deletes; failed: some tags failed;
   * incomplete: the deadline came first (`notStarted`).
   */
  status: 'synced' | 'differences' | 'failed' | 'incomplete';
  /** The tags asked for, each once, in byte order. */
  tags: string[];
  done: { copied: string[]; repaired: string[]; removed: string[] };
  /** Already right on the secondary: nothing written. */
  unchanged: string[];
  failed: { tag: string; error: string }[];
  /** Tags the primary changed during the sync, with why; a caller runs them again. */
  skipped: { tag: string; reason: string }[];
  /** The secondary refuses deletes: these tags, gone from the primary, were left as they were. */
  removalRefused?: { reason: string; tags: string[] };
  /** Not started before the deadline, or whose big blob was still being copied in chunks when it came. */
  notStarted: string[];
  /**
   * Tags whose primary did not show the digest a push announced (registry 2.8 sends the event just
   * before it moves the tag; or the tag moved on since). Each is as the primary holds it now: look again.
   */
  unsettled: string[];
  bytesCopied: number;
  blobsCopied: number;
  blobsMounted: number;
  durationMs: number;
  /** The upload sessions to keep in the record (this job's unfinished ones and those it did not touch). Absent when none. */
  uploads?: UploadSession[];
}

/**
 * Makes each named tag on the secondary what the primary holds now. Per tag: one HEAD on each
 * side; a tag present on the primary and different (or missing) on the secondary is copied, its
 * manifest fetched by tag and its blobs and children copied as needed; a tag the primary does not
 * have is removed from the secondary without collateral (OCI tag delete, else a throwaway
 * manifest), and only when the primary proves its absence: its registry error for that tag, in a
 * repository it does list. Then the primary is asked once more for each tag written: a tag it
 * changed meanwhile is named in `skipped`. Nothing is listed, so the cost is the same in a
 * repository of ten tags as in one of ten thousand.
 */
export async function syncTags(
  primary: RegistryClient,
  secondary: RegistryClient,
  name: string,
  tags: readonly string[],
  options: TagSyncOptions = {},
): Promise<TagSyncReport> {
  const repository = validateRepositoryName(name);
  const started = Date.now();
  const logger = options.logger ?? silentLogger;
  const wanted = [...new Set(tags.map(validateTag))].sort(byteOrder);
  const report: TagSyncReport = {
    repository,
    status: 'synced',
    tags: wanted,
    done: { copied: [], repaired: [], removed: [] },
    unchanged: [],
    failed: [],
    skipped: [],
    notStarted: [],
    unsettled: [],
    bytesCopied: 0,
    blobsCopied: 0,
    blobsMounted: 0,
    durationMs: 0,
  };
  const deadline = new Deadline(options.deadline);
  const book = new UploadBook(options.uploads ?? [], Date.now(), options.onUploadProgress);
  const replicator = new Replicator(primary, secondary, repository, { logger, ...(deadline.set ? { chunked: { book, deadline } } : {}) });
  await cancelUploads(secondary, repository, book.stale, 'older than the session age bound', logger);
  /** Removal for one tag, as read on the secondary: a throwaway is looked for only where its HEAD allows one. */
  const removerFor = (tag: string, head: ManifestHead, deletes: DeleteSupport) =>
    new TagRemover(secondary, repository, deletes, { tags: new Map([[tag, head.digest]]), heads: [head] }, logger);
  /** What each written tag should be on the primary still: its digest, or null for a removed tag. */
  const written = new Map<string, string | null>();
  /** The primary's digest of each tag as last seen (null: absent). */
  const seen = new Map<string, string | null>();
  let deletes: Promise<DeleteSupport> | undefined;
  let primaryListsRepository: Promise<boolean> | undefined;
  let refusal: 'deletes' | 'writes' | undefined;
  const refused: string[] = [];

  await mapLimit(wanted, options.concurrency ?? DEFAULT_CONCURRENCY, async (tag) => {
    if (deadline.passed()) {
      report.notStarted.push(tag);
      return;
    }
    try {
      const announced = options.announced?.[tag];
      const [first, onSecondary] = await Promise.all([primary.headManifest(repository, tag), secondary.headManifest(repository, tag)]);
      let onPrimary = first;
      if (announced !== undefined && onPrimary?.digest !== announced) {
        // Registry 2.8 announces a push a moment before it moves the tag: one more look, shortly.
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
        onPrimary = await primary.headManifest(repository, tag);
      }
      seen.set(tag, onPrimary?.digest ?? null);
      if (onPrimary) {
        if (onSecondary?.digest === onPrimary.digest) return void report.unchanged.push(tag);
        const digest = await replicator.copyTag(tag);
        if (digest === undefined) return void report.skipped.push({ tag, reason: 'deleted on the primary during the sync' });
        (onSecondary ? report.done.repaired : report.done.copied).push(tag);
        written.set(tag, digest);
        seen.set(tag, digest);
        // The tag just left its previous digest: a throwaway a killed removal left there is deleted, as sync does.
        if (onSecondary) await removerFor(tag, onSecondary, 'unknown').cleanUpAfterRepair(onSecondary.digest);
        return;
      }
      // The primary's HEAD said 404, which a HEAD cannot prove (no body): the registry's own error
      // for the tag, in a repository it lists, is the proof before anything is removed.
      const absence = await tagAbsence(primary, repository, tag);
      if (absence === 'present') return void report.skipped.push({ tag, reason: 'appeared on the primary during the sync' });
      if (!onSecondary) return void report.unchanged.push(tag);
      if (!(await (primaryListsRepository ??= repositoryListed(primary, repository)))) {
        return void report.failed.push({ tag, error: `repository ${repository} does not exist on the primary ${primary.host}; ${tag} was not removed` });
      }
      if (refusal) return void refused.push(tag);
      const support = await (deletes ??= secondary.probeDeletes(repository));
      if (support === 'refused' || support === 'read-only') {
        refusal ??= support === 'refused' ? 'deletes' : 'writes';
        return void refused.push(tag);
      }
      try {
        // A tag a killed run left on a throwaway goes with its throwaway; any other, as sync removes it.
        await removerFor(tag, onSecondary, support).removeOne(tag, onSecondary.digest);
      } catch (error) {
        // Refused after the probe passed: the tag was left as it was (or, TAG_LEFT_ON_THROWAWAY,
        // could not be put back: a failure, but a refusal all the same), as in sync.
        const refusedNow = writeRefusal(error);
        refusal ??= refusedNow ?? writeRefusal(error instanceof Error ? error.cause : undefined);
        if (!refusedNow) throw error;
        logger.warn('the secondary refused a removal; tag left as it was', { repository, tag, error: errorMessage(error) });
        return void refused.push(tag);
      }
      report.done.removed.push(tag);
      written.set(tag, null);
    } catch (error) {
      // Out of time mid-blob: the tag goes again at once, and its next job resumes the upload.
      if (error instanceof UploadPaused) return void report.notStarted.push(tag);
      report.failed.push({ tag, error: errorMessage(error) });
      logger.error('tag sync failed', { repository, tag, error: errorMessage(error) });
    }
  });
  // A job names a few tags: sessions it did not reach belong to other tags' blobs and are kept
  // (as when out of time); only those for blobs now on the secondary are cancelled.
  await cancelUploads(secondary, repository, book.released(true), 'no longer needed', logger);
  const uploads = book.unfinished(true);
  if (uploads.length > 0) report.uploads = uploads;

  if (refusal && refused.length > 0) {
    const why =
      refusal === 'deletes'
        ? 'refuses deletes (HTTP 405: delete is disabled in its storage config)'
        : 'is read-only and refuses deletes (HTTP 405 to every write, as in maintenance mode)';
    report.removalRefused = {
      reason: `the secondary ${secondary.host} ${why}; the tags gone from the primary were left as they were`,
      tags: refused.sort(byteOrder),
    };
  }
  if (written.size > 0) await confirmWritten(primary, repository, written, report, options.concurrency ?? DEFAULT_CONCURRENCY);
  const named = new Set([...report.failed, ...report.skipped].map((entry) => entry.tag));
  for (const [tag, digest] of Object.entries(options.announced ?? {})) {
    if (seen.has(tag) && seen.get(tag) !== digest && !named.has(tag)) report.unsettled.push(tag);
  }

  for (const list of [report.done.copied, report.done.repaired, report.done.removed, report.unchanged, report.notStarted, report.unsettled])
    list.sort(byteOrder);
  report.failed.sort((a, b) => byteOrder(a.tag, b.tag));
  report.skipped.sort((a, b) => byteOrder(a.tag, b.tag));
  Object.assign(report, {
    bytesCopied: replicator.stats.bytesCopied,
    blobsCopied: replicator.stats.blobsCopied,
    blobsMounted: replicator.stats.blobsMounted,
    durationMs: Date.now() - started,
  });
  report.status = tagSyncStatus(report);
  return report;
}

function tagSyncStatus(report: TagSyncReport): TagSyncReport['status'] {
  if (report.failed.length > 0) return 'failed';
  if (report.notStarted.length > 0) return 'incomplete';
  if (report.skipped.length > 0 || report.removalRefused) return 'differences';
  return 'synced';
}

/**
 * The closing check over the tags this sync wrote: one HEAD each on the primary. A tag no longer
 * as it was written (moved, deleted, back again) is named in `skipped`, never called synced.
 */
async function confirmWritten(
  primary: RegistryClient,
  repository: Repository,
  written: ReadonlyMap<string, string | null>,
  report: TagSyncReport,
  concurrency: number,
): Promise<void> {
  try {
    await mapLimit([...written], concurrency, async ([tag, expected]) => {
      const now = (await primary.headManifest(repository, tag))?.digest ?? null;
      if (now === expected) return;
      const reason =
        now === null
          ? 'deleted on the primary during the sync'
          : expected === null
            ? 'appeared on the primary during the sync'
            : `moved on the primary during the sync (now ${now})`;
      report.skipped.push({ tag, reason: `${reason}; run again` });
    });
  } catch (error) {
    throw new GeoSyncError(
      'CONFIRMATION_FAILED',
      `${repository}: ${written.size} tag(s) written, but the primary could not be asked again whether they changed meanwhile (${errorMessage(error)}); run again`,
      {
        retryable: error instanceof GeoSyncError && error.retryable,
        cause: error,
      },
    );
  }
}

/**
 * Whether the primary holds `tag`, read with a GET so that a 404 carries the registry's error:
 * 'absent' only on MANIFEST_UNKNOWN (or NAME_UNKNOWN); any other 404 (a proxy's page) is an error.
 */
async function tagAbsence(primary: RegistryClient, repository: Repository, tag: string): Promise<'absent' | 'present'> {
  const response = await primary.transport.send({
    method: 'GET',
    target: `/v2/${repository}/manifests/${tag}`,
    scopes: [`repository:${repository}:pull`],
    headers: { accept: MANIFEST_ACCEPT },
    expect: [200, 404],
    maxBytes: MAX_MANIFEST_BYTES,
  });
  if (response.status === 200) return 'present';
  const code = registryErrorCode(response.body);
  if (code === 'MANIFEST_UNKNOWN' || code === 'NAME_UNKNOWN') return 'absent';
  throw new GeoSyncError(
    'LISTING_FAILED',
    `registry ${primary.host} answered 404 without a registry error for ${repository}:${tag}; not reading that as "no such tag"`,
  );
}

/**
 * Whether the primary lists the repository at all (one tag-list page of one entry). Registry 2.8
 * answers MANIFEST_UNKNOWN for a tag of a repository it does not have, so the tag's error alone
 * would let a primary that lost a repository (or the wrong registry) empty the secondary's.
 */
async function repositoryListed(primary: RegistryClient, repository: Repository): Promise<boolean> {
  const response = await primary.transport.send({
    method: 'GET',
    target: `/v2/${repository}/tags/list?n=1`,
    scopes: [`repository:${repository}:pull`],
    expect: [200, 404],
    maxBytes: 64 * 1024,
  });
  if (response.status === 200) return true;
  if (registryErrorCode(response.body) === 'NAME_UNKNOWN') return false;
  throw new GeoSyncError('LISTING_FAILED', `registry ${primary.host} answered 404 without a registry error to the tag list of ${repository}`);
}

function registryErrorCode(body: Buffer): string | undefined {
  try {
    const code = (JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown }> }).errors?.[0]?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}
