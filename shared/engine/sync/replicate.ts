import { mapLimit, memoByKey } from '../base/concurrency.js';
import type { Deadline } from '../base/deadline.js';
import { GeoSyncError, RegistryError } from '../base/errors.js';
import { silentLogger, type EngineLogger } from '../base/log.js';
import { manifestReferences, type Descriptor, type RawManifest, type Repository } from '../base/oci.js';
import type { Registry } from '../registry/registry.js';
import { CHUNKED_UPLOAD_MIN_BYTES, type UploadBook, type UploadSession } from './upload-session.js';

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
}

/**
 * Into a repository the secondary did not have, a blob up to this size is uploaded without asking
 * first: it is almost surely absent, and the upload costs about what the question does.
 */
const UPLOAD_UNASKED_BYTES = 1024 * 1024;

/** How a run with a deadline copies big blobs: in chunks, stopping at the deadline, sessions kept in `book`. */
export interface ChunkedCopy {
  book: UploadBook;
  deadline: Deadline;
}

/** Thrown for a blob whose chunked copy stopped at the deadline: its tags are left for the next run, not failed. */
export class UploadPaused extends GeoSyncError {
  constructor(digest: string, offset: number, size: number) {
    super('UPLOAD_PAUSED', `blob ${digest}: ${offset} of ${size} bytes copied when the deadline came; the next run resumes it`);
  }
}

/**
 * Writes to one repository of the secondary what the primary holds: blobs before the manifest
 * that needs them, children before their index. Each object is checked at most once per run.
 */
export class Replicator {
  readonly stats: ReplicationStats = { bytesCopied: 0, blobsCopied: 0, blobsMounted: 0 };
  readonly missing: MissingObject[] = [];
  /** Digest → media type of each manifest copied by tag: which of them are indexes, for the referrers their children may have. */
  readonly copiedTypes = new Map<string, string>();
  private readonly ensuredManifest = memoByKey<void>();
  private readonly ensuredBlob = memoByKey<void>();

  constructor(
    private readonly primary: Registry,
    private readonly secondary: Registry,
    private readonly repository: Repository,
    /** `write: false` only looks (dry run, verify): what is missing is noted, nothing is written. */
    private readonly options: { deep?: boolean; write?: boolean; logger?: EngineLogger; secondaryIsNew?: boolean; chunked?: ChunkedCopy } = {},
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
    this.copiedTypes.set(manifest.digest, manifest.mediaType);
    return manifest.digest;
  }

  /**
   * Copies a manifest by digest (a referrer: it has no tag), blobs and children first; nothing
   * is written when the secondary holds it already.
   */
  async copyManifest(digest: string, referencedBy: string): Promise<void> {
    await this.ensureManifest(digest, referencedBy);
  }

  /** Deep check of a manifest the secondary holds: every child and blob under it exists (repaired unless told not to). */
  async checkTree(digest: string): Promise<void> {
    await this.ensureManifest(digest, digest);
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
      if (!present) await this.secondary.putManifest(this.repository, digest, manifest);
    });
  }

  private ensureBlob(blob: Descriptor, referencedBy: string): Promise<void> {
    // Non-distributable layers live elsewhere by design; registries do not hold them.
    if (/nondistributable|foreign/.test(blob.mediaType)) return Promise.resolve();
    return this.ensuredBlob(blob.digest, async () => {
      const unasked = this.options.secondaryIsNew === true && !this.options.deep && this.mayWrite && blob.size <= UPLOAD_UNASKED_BYTES;
      if (!unasked && (await this.secondary.blobExists(this.repository, blob.digest))) {
        this.options.chunked?.book.present(blob.digest);
        return;
      }
      this.noteMissing({ kind: 'blob', digest: blob.digest, referencedBy });
      if (!this.mayWrite) return;
      if (await this.secondary.mountBlob(this.repository, blob.digest)) {
        this.stats.blobsMounted++;
        return;
      }
      const chunked = this.options.chunked;
      if (chunked && blob.size >= CHUNKED_UPLOAD_MIN_BYTES) return this.copyInChunks(blob, chunked);
      const bytes = await this.secondary.uploadBlob(this.repository, blob, () => this.primary.openBlob(this.repository, blob));
      this.stats.blobsCopied++;
      this.stats.bytesCopied += bytes;
      this.options.logger?.debug('blob copied', { repository: this.repository, digest: blob.digest, bytes });
    });
  }

  /** A big blob in chunks, resuming a kept session; each chunk's progress goes to the book (and the record) before the next. */
  private async copyInChunks(blob: Descriptor, chunked: ChunkedCopy): Promise<void> {
    const { book } = chunked;
    let latest = book.claim(blob.digest);
    const outcome = await this.secondary
      .uploadBlobChunked(this.repository, blob, (offset) => this.primary.openBlob(this.repository, blob, offset), {
        ...(latest ? { session: latest } : {}),
        pastDeadline: chunked.deadline.passed,
        msLeft: chunked.deadline.msLeft,
        onChunk: (session) => ((latest = session), book.progress(session)),
      })
      .catch((error: unknown) => {
        // A digest refused or mismatched: the session is cancelled and worthless. Anything else may resume.
        const refused = (error instanceof GeoSyncError && error.code === 'DIGEST_MISMATCH') || (error instanceof RegistryError && error.has('DIGEST_INVALID'));
        if (refused) book.settle(blob.digest);
        else if (latest) book.hold(latest);
        throw error;
      });
    this.stats.bytesCopied += outcome.bytes;
    if (outcome.kind === 'paused') {
      book.hold(outcome.session);
      throw new UploadPaused(blob.digest, outcome.session.offset, blob.size);
    }
    book.settle(blob.digest);
    this.stats.blobsCopied++;
    this.options.logger?.debug('blob copied in chunks', { repository: this.repository, digest: blob.digest, bytes: outcome.bytes });
  }

  private noteMissing(object: MissingObject): void {
    if (this.options.deep) this.missing.push(object);
    (this.options.logger ?? silentLogger).debug('object missing on secondary', { repository: this.repository, ...object });
  }
}

/** Cancels kept upload sessions nothing will resume; a failed DELETE is ignored (the registry purges them in time). */
export async function cancelUploads(secondary: Registry, repository: Repository, sessions: UploadSession[], why: string, logger: EngineLogger): Promise<void> {
  await mapLimit(sessions, 4, async (session) => {
    logger.info('upload session cancelled', { repository, digest: session.digest, offset: session.offset, reason: why });
    await secondary.cancelUpload(repository, session.location);
  });
}
