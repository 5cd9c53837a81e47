/**
 * Targeted sync: a few named tags of one repository made exact on the secondary, at a cost that
 * does not grow with the repository. What an event job runs: an event names a tag, never what
 * the tag holds, so each tag is read from the primary as it is now and only that is written.
 */
import { DEFAULT_CONCURRENCY, mapLimit } from '../base/concurrency.js';
import { errorMessage } from '../base/errors.js';
import { silentLogger, type EngineLogger } from '../base/log.js';
import { subjectOf, validateDigest, validateRepositoryName, validateTag, type Repository } from '../base/oci.js';
import type { Deadline } from '../base/deadline.js';
import { byteOrder, type PrimaryTagMap } from './planner.js';
import type { Registry } from '../registry/registry.js';
import { reportOf, type TagSyncReport } from './report.js';
import type { TagSkip } from './stages.js';
import { changeOnPrimary } from './confirm.js';
import { runSyncPipeline } from './pipeline.js';
import type { ReadPolicy, SidesRead, SyncReader } from './stages.js';
import { EVERY_TAG, type TagScope } from '../config/scope.js';
import type { UploadSession } from './upload-session.js';

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
  /** Manifests pushed or deleted by digest (referrers): made as the primary holds them now. */
  digests?: readonly string[];
  /** Sync the referrers (OCI 1.1) of the named tags' manifests, where the primary serves the API (default true). */
  referrers?: boolean;
  /** The tags the secondary keeps (default every tag): a named tag outside it is left alone on both sides. */
  tags?: TagScope;
}

/**
 * Makes each named tag on the secondary what the primary holds now: a reader of the named tags in
 * front of the one pipeline (pipeline.ts). Per tag one HEAD on each side; a tag the primary
 * does not have is removed from the secondary only when the primary proves its absence: its
 * registry error for that tag, in a repository it does list. The confirmation asks the primary
 * once more for each tag written. Nothing is listed, so the cost is the same in a repository of
 * ten tags as in one of ten thousand.
 */
export async function syncTags(
  primary: Registry,
  secondary: Registry,
  name: string,
  tags: readonly string[],
  options: TagSyncOptions = {},
): Promise<TagSyncReport> {
  const repository = validateRepositoryName(name);
  const started = Date.now();
  const logger = options.logger ?? silentLogger;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const scope = options.tags ?? EVERY_TAG;
  const wanted = [...new Set(tags.map(validateTag))].filter((tag) => scope.has(tag)).sort(byteOrder);
  const digestsNamed = [...new Set((options.digests ?? []).map(validateDigest))].sort(byteOrder);
  // Only a primary that serves the referrers API has referrers apart from tags: elsewhere a digest names nothing to do.
  const referrers = options.referrers ?? true;
  // Under a tag scope a digest's subject may lie outside it, which only a full read tells: the job sends those as a full sync instead.
  const digests = digestsNamed.length > 0 && referrers && scope.all && (await primary.servesReferrers(repository)) === true ? digestsNamed : [];
  const reader = new NamedTagsReader(primary, secondary, repository, wanted, { concurrency, announced: options.announced ?? {}, digests });
  const outcome = await runSyncPipeline(primary, secondary, repository, reader, {
    dryRun: false,
    deep: false,
    maxPrune: 1,
    deadline: options.deadline,
    concurrency,
    logger,
    uploads: options.uploads ?? [],
    onUploadProgress: options.onUploadProgress,
    onProgress: undefined,
    referrers,
    tags: scope,
  });
  // A digest is done once its subject's referrers are: any referrer failure, or a phase the deadline cut, sends them all again.
  const referrersUnfinished = outcome.outOfTime || (outcome.referrers?.done.failed.length ?? 0) > 0;
  const digestsLeft = referrersUnfinished ? digests : digests.filter((digest) => reader.unread(digest));
  const named = { tags: wanted, announced: options.announced ?? {}, wasRead: reader.wasRead, digestsLeft };
  const secondaryRepository = secondary.prefix ? secondary.at(repository) : undefined;
  return reportOf(outcome, { repository, secondaryRepository, dryRun: false, startedAt: started, policy: reader.policy, named }) as TagSyncReport;
}

/** A targeted sync's policy: a few named tags say nothing of the whole, and other tags' upload sessions are kept. */
export const NAMED_TAGS_POLICY: ReadPolicy = {
  pruneGuard: false,
  ownsUnreachedUploads: false,
  planLog: 'debug',
  probeBeforeWrites: false,
  continuesWhole: false,
};

/**
 * The reader of a targeted sync: the named tags only, one HEAD each on both sides. A tag the
 * primary's HEAD does not find is looked at with a GET, whose registry error proves its absence,
 * and only in a repository the primary lists: registry 2.8 answers MANIFEST_UNKNOWN for a tag of a
 * repository it does not have, so the tag's error alone would let a primary that lost a repository
 * (or the wrong registry) empty the secondary's. The confirmation HEADs each tag written.
 */
class NamedTagsReader implements SyncReader {
  readonly policy = NAMED_TAGS_POLICY;
  private readonly tagsRead = new Set<string>();
  private readonly unreadDigests: Set<string>;
  private primaryListsRepository: Promise<boolean> | undefined;

  constructor(
    private readonly primary: Registry,
    private readonly secondary: Registry,
    private readonly repository: Repository,
    private readonly tags: readonly string[],
    private readonly run: { concurrency: number; announced: Readonly<Record<string, string>>; digests: readonly string[] },
  ) {
    this.unreadDigests = new Set(run.digests);
  }

  /** Whether the read reached this tag. */
  readonly wasRead = (tag: string): boolean => this.tagsRead.has(tag);
  /** Whether this digest asked for is not done yet. */
  readonly unread = (digest: string): boolean => this.unreadDigests.has(digest);

  async read(deadline: Deadline): Promise<SidesRead> {
    const sides: SidesRead = {
      primaryTags: new Map(),
      secondaryTags: new Map(),
      secondaryHeads: [],
      primaryHeads: [],
      secondaryIsNew: false,
      failed: [],
      skipped: [],
      notStarted: [],
    };
    await mapLimit(this.tags, this.run.concurrency, async (tag) => {
      if (deadline.passed()) return void sides.notStarted.push(tag);
      await this.readTag(tag, sides).catch((error: unknown) => void sides.failed.push({ tag, error: errorMessage(error) }));
    });
    sides.subjects = await this.subjectsOf(deadline);
    return sides;
  }

  /** The read's GET just proved the tag absent. */
  appearedOnPrimary(): Promise<boolean> {
    return Promise.resolve(false);
  }

  async changesOnPrimary(_planned: PrimaryTagMap, written: ReadonlyMap<string, string | null>): Promise<TagSkip[]> {
    const changes: TagSkip[] = [];
    await mapLimit([...written], this.run.concurrency, async ([tag, expected]) => {
      const now = (await this.primary.headManifest(this.repository, tag))?.digest ?? null;
      if (now !== expected) changes.push({ tag, reason: changeOnPrimary(expected, now) });
    });
    return changes;
  }

  /** One named tag, one HEAD on each side (two on the primary while an announced digest settles). */
  private async readTag(tag: string, sides: SidesRead): Promise<void> {
    const { primary, secondary, repository } = this;
    const announced = this.run.announced[tag];
    const [first, onSecondary] = await Promise.all([primary.headManifest(repository, tag), secondary.headManifest(repository, tag)]);
    let onPrimary = first;
    if (announced !== undefined && onPrimary?.digest !== announced) {
      // Registry 2.8 announces a push a moment before it moves the tag: one more look, shortly.
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      onPrimary = await primary.headManifest(repository, tag);
    }
    this.tagsRead.add(tag);
    if (onPrimary) {
      sides.primaryTags.set(tag, onPrimary.digest);
      sides.primaryHeads?.push(onPrimary);
    }
    if (onSecondary && (onPrimary || (await this.provedAbsent(tag, sides)))) {
      sides.secondaryTags.set(tag, onSecondary.digest);
      sides.secondaryHeads.push(onSecondary);
    } else if (!onPrimary && !onSecondary && !(await primary.provesAbsent(repository, tag))) {
      sides.skipped.push({ tag, reason: 'appeared on the primary during the sync' });
    }
  }

  /**
   * The subjects the named digests refer to: read on the primary, or where it proves the
   * manifest gone, on the secondary (a delete). A manifest without a subject is no referrer: an
   * image pushed by digest goes with the tag or index that names it. One GET each, at most two.
   */
  private async subjectsOf(deadline: Deadline): Promise<string[]> {
    const subjects = new Set<string>();
    await mapLimit(this.run.digests, this.run.concurrency, async (digest) => {
      if (deadline.passed()) return;
      try {
        const manifest = (await this.primary.getManifest(this.repository, digest)) ?? (await this.secondary.getManifest(this.repository, digest));
        const subject = manifest ? subjectOf(manifest) : undefined;
        if (subject) subjects.add(subject);
        this.unreadDigests.delete(digest);
      } catch {
        // Left in unreadDigests: the job sends it again.
      }
    });
    return [...subjects];
  }

  /**
   * For a tag the primary's HEAD did not find but the secondary has: whether the primary proves
   * its absence. A tag it holds after all is skipped; a repository it does not list fails the tag.
   */
  private async provedAbsent(tag: string, sides: SidesRead): Promise<boolean> {
    const { primary, repository } = this;
    // A HEAD's 404 proves nothing (no body): the registry's own error for the tag is the proof.
    if (!(await primary.provesAbsent(repository, tag))) {
      sides.skipped.push({ tag, reason: 'appeared on the primary during the sync' });
      return false;
    }
    if (!(await (this.primaryListsRepository ??= primary.repositoryListed(repository)))) {
      sides.failed.push({ tag, error: `repository ${repository} does not exist on the primary ${primary.host}; ${tag} was not removed` });
      return false;
    }
    return true;
  }
}
