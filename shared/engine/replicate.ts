import { randomUUID } from 'node:crypto';
import { memoByKey } from './concurrency.js';
import { GeoSyncError, errorMessage } from './errors.js';
import { silentLogger, type EngineLogger } from './log.js';
import { MediaType, digestOf, isValidDigest, manifestReferences, type Descriptor, type RawManifest } from './oci.js';
import { writeRefusal, type RegistryClient } from './registry/client.js';

/** A manifest or blob that a tagged manifest needs and the secondary lacks. */
export interface MissingObject {
  kind: 'manifest' | 'blob';
  digest: string;
  /** The manifest that references it. */
  referencedBy: string;
}

export interface ReplicationStats {
  bytesCopied: number;
  blobsCopied: number;
  blobsMounted: number;
  manifestsCopied: number;
}

/**
 * Into a repository the secondary did not have, a blob up to this size is uploaded without asking
 * first: it is almost surely absent, and the upload costs about what the question does.
 */
const UPLOAD_UNASKED_BYTES = 1024 * 1024;

export const THROWAWAY_ANNOTATION = 'org.geo-registry-sync.throwaway';
export const THROWAWAY_CONFIG_TYPE = 'application/vnd.geo-registry-sync.throwaway.v1+json';
/** Our throwaway manifests are about 400 bytes; anything larger is not one. */
const THROWAWAY_MAX_BYTES = 1024;

/** Whether a manifest of this type and size could be one of our throwaways (a HEAD tells, without a GET). */
export function mayBeThrowaway(manifest: { mediaType: string; size: number }): boolean {
  return manifest.mediaType === MediaType.ociManifest && manifest.size <= THROWAWAY_MAX_BYTES;
}

/**
 * Writes to one repository of the secondary what the primary holds: blobs before the manifest
 * that needs them, children before their index. Each object is checked at most once per run.
 */
export class Replicator {
  readonly stats: ReplicationStats = { bytesCopied: 0, blobsCopied: 0, blobsMounted: 0, manifestsCopied: 0 };
  readonly missing: MissingObject[] = [];
  private readonly ensuredManifest = memoByKey<void>();
  private readonly ensuredBlob = memoByKey<void>();

  constructor(
    private readonly primary: RegistryClient,
    private readonly secondary: RegistryClient,
    private readonly repository: string,
    /** `write: false` only looks (dry run, verify): what is missing is noted, nothing is written. */
    private readonly options: { deep?: boolean; write?: boolean; logger?: EngineLogger; secondaryIsNew?: boolean } = {},
  ) {}

  private get mayWrite(): boolean {
    return this.options.write ?? true;
  }

  /**
   * Points `tag` on the secondary at the primary's current manifest for it (fetched by tag, so a
   * tag moved since planning is copied in its newer state). Returns the digest written, or
   * undefined when the tag has vanished from the primary.
   */
  async copyTag(tag: string): Promise<string | undefined> {
    const manifest = await this.primary.getManifest(this.repository, tag);
    if (!manifest) return undefined;
    await this.ensureReferences(manifest);
    await this.secondary.putManifest(this.repository, tag, manifest);
    this.stats.manifestsCopied++;
    return manifest.digest;
  }

  /** Deep check of a manifest the secondary holds: every child and blob under it exists (repaired unless told not to). */
  async checkTree(digest: string): Promise<void> {
    await this.ensureManifest(digest, digest);
  }

  /**
   * Removes one tag, now at `current`, and nothing else: OCI tag delete where supported; otherwise
   * the tag is pointed at a unique throwaway manifest, which is then deleted by digest, because
   * registry 2.8 deletes by digest and would untag every other tag on the real digest.
   */
  async removeTag(tag: string, current: string): Promise<void> {
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
  async deleteIfThrowaway(digest: string): Promise<boolean> {
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

  private async ensureReferences(manifest: RawManifest): Promise<void> {
    const references = manifestReferences(manifest);
    await Promise.all([
      ...references.children.map((child) => this.ensureManifest(child.digest, manifest.digest)),
      ...references.blobs.map((blob) => this.ensureBlob(blob, manifest.digest)),
    ]);
  }

  /** A manifest by digest: copied when absent; in deep mode its whole tree is walked even when present. */
  private ensureManifest(digest: string, referencedBy: string): Promise<void> {
    return this.ensuredManifest(digest, async () => {
      const present = await this.secondary.headManifest(this.repository, digest);
      if (present && !this.options.deep) return;
      if (!present) this.noteMissing({ kind: 'manifest', digest, referencedBy });
      if (!present && !this.mayWrite) return;
      const source = present ? this.secondary : this.primary;
      const manifest = await source.getManifest(this.repository, digest);
      if (!manifest) {
        throw new GeoSyncError('MANIFEST_MISSING', `manifest ${digest} (referenced by ${referencedBy}) is missing on ${source.host}/${this.repository}`);
      }
      await this.ensureReferences(manifest);
      if (!present) {
        await this.secondary.putManifest(this.repository, digest, manifest);
        this.stats.manifestsCopied++;
      }
    });
  }

  private ensureBlob(blob: Descriptor, referencedBy: string): Promise<void> {
    // Non-distributable layers live elsewhere by design; registries do not hold them.
    if (/nondistributable|foreign/.test(blob.mediaType)) return Promise.resolve();
    return this.ensuredBlob(blob.digest, async () => {
      const unasked = this.options.secondaryIsNew === true && !this.options.deep && this.mayWrite && blob.size <= UPLOAD_UNASKED_BYTES;
      if (!unasked && (await this.secondary.blobExists(this.repository, blob.digest))) return;
      this.noteMissing({ kind: 'blob', digest: blob.digest, referencedBy });
      if (!this.mayWrite) return;
      const home = this.secondary.blobHome(blob.digest, this.repository);
      if (home && (await this.secondary.mountBlob(this.repository, blob.digest, home))) {
        this.stats.blobsMounted++;
        return;
      }
      const bytes = await this.secondary.uploadBlob(this.repository, blob, () => this.primary.openBlob(this.repository, blob));
      this.stats.blobsCopied++;
      this.stats.bytesCopied += bytes;
      this.options.logger?.debug('blob copied', { repository: this.repository, digest: blob.digest, bytes });
    });
  }

  private noteMissing(object: MissingObject): void {
    if (this.options.deep) this.missing.push(object);
    (this.options.logger ?? silentLogger).debug('object missing on secondary', { repository: this.repository, ...object });
  }
}
