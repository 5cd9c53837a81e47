/**
 * Manifests of an ECR repository read many at a time through ECR's BatchGetImage (100 a call)
 * instead of one registry GET each: what a read asks for when it follows the children of the
 * multi-arch indexes its tags point at. AWS's reference lists only the image manifest types for
 * acceptedMediaTypes, so nothing ECR answers is taken on trust: each manifest's text is hashed
 * against the digest asked for, and whatever ECR did not give (a failures[] entry, a refused call,
 * other bytes) is read over the registry API, one GET each, as on any registry. A batch read never
 * fails a run by itself. See docs/ecr.md.
 */
import { GeoSyncError } from '../../base/errors.js';
import type { EngineLogger } from '../../base/log.js';
import { MediaType, digestAlgorithm, digestOf, isValidDigest, type RawManifest } from '../../base/oci.js';
import { manifestsOneByOne } from '../manifests.js';
import type { EcrApi } from './api.js';

/** Asked for every batch: the index types first (what the batch is for), then the image manifest types. */
export const BATCH_MANIFEST_TYPES = [MediaType.ociIndex, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.dockerManifest] as const;

/** ECR's refusals that the next call would meet too: the run reads over the registry API from then on. */
const LASTING_REFUSALS = new Set(['AccessDeniedException', 'InvalidParameterException']);

export class EcrManifests {
  /** Set once ECR refused the batch read for good (the role, or the media types asked): GETs from then on. */
  private overRegistry = false;

  constructor(
    private readonly api: Pick<EcrApi, 'manifestsByDigest'>,
    /** The repository's name in ECR (the registry's prefix before it). */
    private readonly nameOf: (repository: string) => string,
    /** One manifest over the registry API, checked against its digest; null when absent. */
    private readonly getOverRegistry: (repository: string, digest: string) => Promise<RawManifest | null>,
    private readonly logger: EngineLogger,
    /** The registry's host, for logs. */
    private readonly host: string,
  ) {}

  /** The manifests by digest; one ECR did not give as asked is read with a GET; a digest absent is left out. */
  async byDigest(repository: string, digests: readonly string[], concurrency: number): Promise<Map<string, RawManifest>> {
    const unique = [...new Set(digests)];
    const wanted = unique.filter(isValidDigest);
    const found = this.overRegistry || wanted.length === 0 ? new Map<string, RawManifest>() : await this.batched(repository, wanted);
    const rest = unique.filter((digest) => !found.has(digest));
    const fetched = await manifestsOneByOne((digest) => this.getOverRegistry(repository, digest), rest, concurrency);
    return new Map([...found, ...fetched]);
  }

  /** What BatchGetImage gave that hashes to the digest asked for; empty when the call failed. */
  private async batched(repository: string, digests: string[]): Promise<Map<string, RawManifest>> {
    const name = this.nameOf(repository);
    let answered;
    try {
      answered = await this.api.manifestsByDigest(name, digests, BATCH_MANIFEST_TYPES);
    } catch (error) {
      const reason = error instanceof GeoSyncError ? ((error.cause as Error | undefined)?.name ?? error.code) : 'Error';
      if (LASTING_REFUSALS.has(reason) || (error instanceof GeoSyncError && error.code === 'ECR_ACCESS_DENIED')) this.overRegistry = true;
      this.logger.warn('ECR BatchGetImage failed; reading those manifests over the registry API', {
        registry: this.host,
        repository: name,
        manifests: digests.length,
        reason,
        ...(this.overRegistry && { forTheRun: true }),
      });
      return new Map();
    }
    const checked = new Map<string, RawManifest>();
    for (const digest of digests) {
      const given = answered.get(digest);
      if (!given) continue;
      const bytes = Buffer.from(given.text, 'utf8');
      if (digestOf(bytes, digestAlgorithm(digest)) !== digest) continue; // other bytes than asked for (converted): read over the registry API
      checked.set(digest, { digest, mediaType: given.mediaType || mediaTypeIn(bytes), bytes });
    }
    const missed = digests.length - checked.size;
    if (missed > 0) this.logger.debug('ECR BatchGetImage left manifests to the registry API', { registry: this.host, repository: name, manifests: missed });
    return checked;
  }
}

/** The manifest's own mediaType field, or empty. */
function mediaTypeIn(bytes: Buffer): string {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    return typeof parsed.mediaType === 'string' ? parsed.mediaType : '';
  } catch {
    return '';
  }
}
