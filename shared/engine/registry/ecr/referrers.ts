/**
 * The referrers of an ECR repository's manifests, from ECR's own API rather than one registry GET
 * per manifest: DescribeImages once for the repository (each referrer names its subject), then
 * BatchGetImage for the referrers' manifests alone, whose byte length is the size a referrer
 * descriptor carries (DescribeImages gives the image's size, not the manifest's). The index is
 * kept per repository until this registry writes there: every write forgets it once done, so a
 * referrer this run wrote is never hidden from a later read.
 */
import { createHash, getHashes } from 'node:crypto';
import type { Referrer } from '../registry.js';
import type { BatchedManifest, EcrApi, ImageFacts } from './api.js';

/** Subject digest -> its referrers. */
type ReferrerIndex = Map<string, Referrer[]>;

/** What one DescribeImages read of a repository gives: the referrers by subject, and every image's manifest type. */
interface RepositoryImages {
  referrers: ReferrerIndex;
  /** Digest -> imageManifestMediaType: which manifests are indexes, without a HEAD. */
  types: Map<string, string>;
}

/** The manifest types BatchGetImage's reference lists for acceptedMediaTypes; a referrer of another type is sized with a HEAD. */
const BATCH_GET_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
]);

export class EcrReferrers {
  /** Repository -> its index (null: ECR does not have the repository). */
  private readonly indexes = new Map<string, Promise<RepositoryImages | null>>();

  constructor(
    private readonly api: EcrApi,
    /** The repository's name in ECR (the registry's prefix before it). */
    private readonly nameOf: (repository: string) => string,
    /** A manifest's size over the registry API (a HEAD), for one BatchGetImage did not give; undefined when it is gone. */
    private readonly sizeOverRegistry: (repository: string, digest: string) => Promise<number | undefined>,
  ) {}

  /** The referrers of `digest` in the repository; 'unknown' when ECR does not have the repository. */
  async list(repository: string, digest: string): Promise<Referrer[] | 'unknown'> {
    const found = await this.images(repository);
    return found === null ? 'unknown' : [...(found.referrers.get(digest) ?? [])];
  }

  /** The manifest types of those digests ECR lists in the repository, from the same read as the referrers. */
  async mediaTypes(repository: string, digests: readonly string[]): Promise<Map<string, string>> {
    const found = await this.images(repository);
    const types = new Map<string, string>();
    for (const digest of digests) {
      const type = found?.types.get(digest);
      if (type) types.set(digest, type);
    }
    return types;
  }

  /** Drops the repository's index: called once a write to it is done (or failed part way). */
  forget(repository: string): void {
    this.indexes.delete(repository);
  }

  /** The repository's read, made once until a write forgets it. */
  private images(repository: string): Promise<RepositoryImages | null> {
    let index = this.indexes.get(repository);
    if (!index) {
      const reading = this.read(repository);
      this.indexes.set(repository, reading);
      // A failed read is not kept: the next question asks again.
      reading.catch(() => this.indexes.get(repository) === reading && this.indexes.delete(repository));
      index = reading;
    }
    return index;
  }

  private async read(repository: string): Promise<RepositoryImages | null> {
    const images = await this.api.describeImages(this.nameOf(repository));
    if (images === null) return null;
    const referrers = images.filter((image): image is ImageFacts & { subject: string } => image.subject !== undefined);
    const sizes = await this.sizes(repository, referrers);
    const index: ReferrerIndex = new Map();
    for (const referrer of referrers) {
      const size = sizes.get(referrer.digest);
      if (size === undefined) continue; // removed since DescribeImages listed it
      const entry = { digest: referrer.digest, mediaType: referrer.mediaType, size, artifactType: referrer.artifactMediaType ?? '' };
      index.set(referrer.subject, [...(index.get(referrer.subject) ?? []), entry]);
    }
    return { referrers: index, types: new Map(images.filter((image) => image.mediaType).map((image) => [image.digest, image.mediaType])) };
  }

  /** Each referrer manifest's byte size: from BatchGetImage's manifest text when it matches the digest, else over the registry API. */
  private async sizes(repository: string, referrers: ImageFacts[]): Promise<Map<string, number>> {
    const sizes = new Map<string, number>();
    const batched = referrers.filter((referrer) => BATCH_GET_TYPES.has(referrer.mediaType));
    const mediaTypes = [...new Set(batched.map((referrer) => referrer.mediaType))];
    const manifests =
      batched.length === 0
        ? new Map<string, BatchedManifest>()
        : await this.api.manifestsByDigest(
            this.nameOf(repository),
            batched.map((referrer) => referrer.digest),
            mediaTypes,
          );
    for (const referrer of referrers) {
      const text = manifests.get(referrer.digest)?.text;
      const bytes = text === undefined ? undefined : Buffer.from(text, 'utf8');
      if (bytes && digestMatches(bytes, referrer.digest)) sizes.set(referrer.digest, bytes.length);
      else {
        const size = await this.sizeOverRegistry(repository, referrer.digest);
        if (size !== undefined) sizes.set(referrer.digest, size);
      }
    }
    return sizes;
  }
}

function digestMatches(bytes: Buffer, digest: string): boolean {
  const [algorithm, hex] = digest.split(':');
  if (!algorithm || !hex || !getHashes().includes(algorithm)) return false;
  return createHash(algorithm).update(bytes).digest('hex') === hex;
}
