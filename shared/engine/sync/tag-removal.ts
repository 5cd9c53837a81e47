/**
 * Taking tags off the secondary, and nothing else with them. A tag goes by OCI tag delete where the
 * registry offers it; otherwise it is pointed at a unique throwaway manifest, which is then deleted
 * by digest, because registry 2.8 deletes by digest and would untag every other tag on the real
 * one. A digest is deleted only when no other tag shares it. A run killed between the two steps
 * leaves a tag on a throwaway; a later run deletes that throwaway. A secondary that refuses deletes
 * is found out once, before any write, and its extra tags are then left as they are.
 */
import { randomUUID } from 'node:crypto';
import { mapLimit } from '../base/concurrency.js';
import { GeoSyncError, RegistryError, errorMessage } from '../base/errors.js';
import type { EngineLogger } from '../base/log.js';
import { MediaType, digestOf, isValidDigest, type RawManifest, type Repository } from '../base/oci.js';
import { byteOrder, type TagChange, type TagMap } from './planner.js';
import type { DeleteSupport, ManifestHead, Registry } from '../registry/registry.js';

export const THROWAWAY_ANNOTATION = 'org.geo-registry-sync.throwaway';
export const THROWAWAY_CONFIG_TYPE = 'application/vnd.geo-registry-sync.throwaway.v1+json';
/** Our throwaway manifests are about 400 bytes; anything larger is not one. */
const THROWAWAY_MAX_BYTES = 1024;

/** Whether a manifest of this type and size could be one of our throwaways (a HEAD tells, without a GET). */
function mayBeThrowaway(manifest: { mediaType: string; size: number }): boolean {
  return manifest.mediaType === MediaType.ociManifest && manifest.size <= THROWAWAY_MAX_BYTES;
}

/** The extra tags a secondary would not let us remove, and why in plain words (the doors name the tags). */
export interface RemovalRefused {
  reason: string;
  tags: string[];
}

/** What removing the extra tags did, tag by tag. */
export interface RemovalOutcome {
  removed: string[];
  /** Tags the primary gained since listing: not extra after all. */
  skipped: { tag: string; reason: string }[];
  failed: { tag: string; error: string }[];
  /** Not reached before the deadline. */
  notStarted: string[];
  refused?: RemovalRefused;
}

/**
 * One harmless probe before any write: on a secondary that refuses deletes no extra tag is
 * touched at all, and a read-only one fails here, before anything is half done. Not asked when
 * the run neither removes nor writes.
 */
export async function probeDeletes(
  secondary: Registry,
  repository: Repository,
  run: { removing: boolean; writing: boolean; dryRun: boolean },
): Promise<DeleteSupport> {
  const deletes: DeleteSupport = run.removing || run.writing ? await secondary.probeDeletes(repository) : 'unknown';
  if (deletes === 'read-only' && !run.dryRun) {
    throw new GeoSyncError(
      'SECONDARY_READ_ONLY',
      `the secondary ${secondary.host} is read-only (it refuses every write with HTTP 405, as in maintenance mode); nothing was written to ${repository}. Run again once it accepts writes`,
      {
        retryable: true,
      },
    );
  }
  return deletes;
}

/** Removes tags from one repository of the secondary, as read at the start of one run. */
export class TagRemover {
  /** How many of the secondary's tags each digest held when read: a digest only one tag held may be deleted. */
  private readonly tagsPerDigest = new Map<string, number>();
  /** Digests whose HEAD already ruled out a throwaway: no GET is spent on them. */
  private readonly notThrowaways = new Set<string>();

  constructor(
    private readonly secondary: Registry,
    private readonly repository: Repository,
    private readonly deletes: DeleteSupport,
    read: { tags: TagMap; heads: readonly ManifestHead[] },
    private readonly logger: EngineLogger,
  ) {
    for (const digest of read.tags.values()) this.tagsPerDigest.set(digest, (this.tagsPerDigest.get(digest) ?? 0) + 1);
    for (const head of read.heads) if (!mayBeThrowaway(head)) this.notThrowaways.add(head.digest);
  }

  /** The extra tags left as they are because the probe found deletes refused (or every write). */
  refusedUpFront(extra: readonly TagChange[]): RemovalRefused | undefined {
    if (this.deletes !== 'refused' && this.deletes !== 'read-only') return undefined;
    const refused = removalRefused(
      this.secondary.host,
      this.deletes === 'refused' ? 'deletes' : 'writes',
      extra.map((change) => change.tag),
    );
    this.logger.info('the secondary refuses deletes; extra tags left as they are', {
      repository: this.repository,
      registry: this.secondary.host,
      tags: refused.tags.length,
    });
    return refused;
  }

  /** After a repair moved a tag off `previous`: a throwaway left there is deleted, else garbage collection takes it. */
  async cleanUpAfterRepair(previous: string | undefined): Promise<void> {
    await this.deleteLeftoverThrowaway(previous).catch((error: unknown) => {
      this.logger.warn('could not delete a leftover throwaway manifest; registry garbage collection will', {
        repository: this.repository,
        digest: previous,
        error: errorMessage(error),
      });
    });
  }

  /**
   * Removes the extra tags, never one the primary has gained since it was read (`appeared` asks).
   * A tag a killed run left on a throwaway goes with its throwaway. The probe passed, yet the
   * secondary may start refusing (deletes disabled, or read-only, mid-run): from the first
   * refusal on, the remaining extra tags are left untouched.
   */
  async removeExtraTags(
    extra: readonly TagChange[],
    appeared: (tag: string) => Promise<boolean>,
    run: { concurrency: number; pastDeadline: () => boolean; onDone: () => void },
  ): Promise<RemovalOutcome> {
    const outcome: RemovalOutcome = { removed: [], skipped: [], failed: [], notStarted: [] };
    let refusal: 'deletes' | 'writes' | undefined;
    const refused: string[] = [];
    await mapLimit(extra, run.concurrency, async (change) => {
      if (run.pastDeadline()) return void outcome.notStarted.push(change.tag);
      try {
        if (refusal) refused.push(change.tag);
        else if (await appeared(change.tag)) {
          outcome.skipped.push({ tag: change.tag, reason: 'appeared on the primary during the sync; not removed' });
        } else {
          if (!(await this.deleteLeftoverThrowaway(change.secondary))) await this.removeTag(change.tag, change.secondary!);
          outcome.removed.push(change.tag);
        }
      } catch (error) {
        // A refused removal left the tag as it was; one that could not be put back
        // (TAG_LEFT_ON_THROWAWAY) is a failure, but a refusal all the same.
        const refusedNow = writeRefusal(error);
        refusal ??= refusedNow ?? writeRefusal(error instanceof Error ? error.cause : undefined);
        if (refusedNow) {
          refused.push(change.tag);
          this.logger.warn('the secondary refused a removal; tag left as it was', { repository: this.repository, tag: change.tag, error: errorMessage(error) });
        } else {
          outcome.failed.push({ tag: change.tag, error: errorMessage(error) });
          this.logger.error('tag removal failed', { repository: this.repository, tag: change.tag, error: errorMessage(error) });
        }
      }
      run.onDone();
    });
    if (refusal && refused.length > 0) outcome.refused = removalRefused(this.secondary.host, refusal, refused.sort(byteOrder));
    return outcome;
  }

  /**
   * A run killed inside removeTag leaves the tag on a throwaway. When a tag leaves a digest only it
   * held, and its HEAD did not rule one out, that throwaway (if it is one) is deleted by digest.
   */
  private async deleteLeftoverThrowaway(digest: string | undefined): Promise<boolean> {
    return (
      digest !== undefined &&
      this.deletes !== 'refused' &&
      this.tagsPerDigest.get(digest) === 1 &&
      !this.notThrowaways.has(digest) &&
      (await this.deleteIfThrowaway(digest))
    );
  }

  /**
   * Removes one tag, now at `current`, and nothing else: OCI tag delete where supported; otherwise
   * the tag is pointed at a unique throwaway manifest, which is then deleted by digest.
   */
  private async removeTag(tag: string, current: string): Promise<void> {
    const outcome = await this.secondary.deleteTag(this.repository, tag);
    if (outcome !== 'unsupported') return;
    const config = Buffer.from(JSON.stringify({ 'geo-registry-sync': 'throwaway', tag, nonce: randomUUID() }));
    const configDigest = await this.secondary.uploadBytes(this.repository, config);
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: { mediaType: THROWAWAY_CONFIG_TYPE, digest: configDigest, size: config.length },
        layers: [],
        annotations: { [THROWAWAY_ANNOTATION]: 'true' },
      }),
    );
    const throwaway: RawManifest = { digest: digestOf(bytes), mediaType: MediaType.ociManifest, bytes };
    await this.secondary.putManifest(this.repository, tag, throwaway);
    try {
      await this.secondary.deleteManifest(this.repository, throwaway.digest);
    } catch (error) {
      // A refusal is for good (unlike a fault, which the next run cleans up after): the tag must
      // not stay on the throwaway, so it goes back where it was. The throwaway stays stored,
      // untagged, for the registry's garbage collection.
      if (writeRefusal(error)) await this.putBack(tag, current, error);
      throw error;
    }
    await this.secondary.deleteBlob(this.repository, configDigest);
  }

  /** Points `tag` at `digest` again (still stored: re-pointing a tag deletes nothing), after `refusal`. */
  private async putBack(tag: string, digest: string, refusal: unknown): Promise<void> {
    try {
      const original = await this.secondary.getManifest(this.repository, digest);
      if (!original) throw new Error(`${digest} is no longer stored`);
      await this.secondary.putManifest(this.repository, tag, original);
    } catch (error) {
      throw new GeoSyncError(
        'TAG_LEFT_ON_THROWAWAY',
        `${errorMessage(refusal)}; ${tag} could not be put back on ${digest} (${errorMessage(error)}), so it points at a throwaway manifest until a sync can delete it`,
        { cause: refusal },
      );
    }
  }

  /**
   * Deletes `digest` from the secondary if it is one of our throwaway manifests (left by a killed
   * run), with its config blob. Only for a digest no other tag shares: deletion is by digest.
   */
  private async deleteIfThrowaway(digest: string): Promise<boolean> {
    const throwaway = await this.readThrowaway(digest);
    if (!throwaway) return false;
    await this.secondary.deleteManifest(this.repository, digest);
    await this.secondary.deleteBlob(this.repository, throwaway.configDigest);
    return true;
  }

  /** The throwaway's config digest when `digest` on the secondary is one of our throwaway manifests. */
  private async readThrowaway(digest: string): Promise<{ configDigest: string } | undefined> {
    const manifest = await this.secondary.getManifest(this.repository, digest);
    if (!manifest || !mayBeThrowaway({ mediaType: manifest.mediaType, size: manifest.bytes.length })) return undefined;
    try {
      const parsed = JSON.parse(manifest.bytes.toString('utf8')) as { config?: { mediaType?: string; digest?: string }; annotations?: Record<string, string> };
      const marked = parsed.annotations?.[THROWAWAY_ANNOTATION] === 'true' && parsed.config?.mediaType === THROWAWAY_CONFIG_TYPE;
      return marked && typeof parsed.config?.digest === 'string' && isValidDigest(parsed.config.digest) ? { configDigest: parsed.config.digest } : undefined;
    } catch {
      return undefined;
    }
  }
}

/** A write refused by the registry itself, not a passing fault: 'deletes' or 'writes' (read-only), else undefined. */
function writeRefusal(error: unknown): 'deletes' | 'writes' | undefined {
  if (!(error instanceof GeoSyncError)) return undefined;
  if (error.code === 'DELETES_REFUSED') return 'deletes';
  if (error.code === 'READ_ONLY' || (error instanceof RegistryError && error.status === 405)) return 'writes';
  return undefined;
}

function removalRefused(host: string, refusal: 'deletes' | 'writes', tags: string[]): RemovalRefused {
  const why =
    refusal === 'deletes'
      ? 'refuses deletes (HTTP 405: delete is disabled in its storage config)'
      : 'is read-only and refuses deletes (HTTP 405 to every write, as in maintenance mode)';
  return { reason: `the secondary ${host} ${why}; the extra tags were left as they were`, tags };
}
