import { GeoSyncError } from '../base/errors.js';
import { MAX_MANIFEST_BYTES, MediaType, digestOf, isValidDigest, type RawManifest } from '../base/oci.js';
import { provenAbsent } from './absence.js';
import type { Referrer } from './registry.js';
import { nextLink, parseJson } from './responses.js';
import { pull } from './scopes.js';
import type { Transport } from './transport.js';

/** Digest asked about by the detection probe: no manifest has it, so an API answers an empty index. */
const PROBE_DIGEST = digestOf(Buffer.from('geo-registry-sync referrers probe\n'));
/** Pages one referrers listing may take before it is called a loop. */
const MAX_PAGES = 100;

/**
 * The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`), and whether the registry serves
 * it at all. The spec forbids a 404 there on a registry that serves it, so a 404 without the
 * registry's NAME_UNKNOWN (distribution 2.8 and 3.0 answer their router's plain 404) means no API;
 * NAME_UNKNOWN only says the repository does not exist yet, and decides nothing. Decided once per
 * client, that is once per run.
 */
export class Referrers {
  private served: Promise<boolean | undefined> | undefined;
  private decided: boolean | undefined;

  constructor(private readonly transport: Transport) {}

  /** Whether the registry serves the referrers API, asked in `repository` (one request per run once decided). */
  async serves(repository: string): Promise<boolean | undefined> {
    if (this.decided !== undefined) return this.decided;
    const probe = (this.served ??= this.list(repository, PROBE_DIGEST).then((found) => (found === null ? false : found === 'unknown' ? undefined : true)));
    const answer = await probe;
    if (answer === undefined) this.served = undefined;
    else this.decided = answer;
    return answer;
  }

  /**
   * The referrers of `digest`, every page (`Link`); null where the registry does not serve the
   * API; 'unknown' when the repository does not exist there.
   */
  async list(repository: string, digest: string): Promise<Referrer[] | null | 'unknown'> {
    const host = this.transport.host;
    const found: Referrer[] = [];
    let target: string | undefined = `/v2/${repository}/referrers/${digest}`;
    for (let page = 0; target; page++) {
      if (page === MAX_PAGES)
        throw new GeoSyncError('PAGINATION_LOOP', `registry ${host} sent more than ${MAX_PAGES} pages of referrers of ${repository}@${digest}`);
      const response = await this.transport.send({
        method: 'GET',
        target,
        scopes: pull(repository),
        headers: { accept: MediaType.ociIndex },
        expect: [200, 400, 404, 405],
        maxBytes: MAX_MANIFEST_BYTES,
      });
      if (response.status !== 200) {
        if (page > 0)
          throw new GeoSyncError('LISTING_FAILED', `registry ${host} lost the referrers of ${repository}@${digest} while paging`, { retryable: true });
        return provenAbsent(response, 'repository') ? 'unknown' : null;
      }
      found.push(...referrersIn(response.body, `the referrers of ${repository}@${digest} from ${host}`));
      target = nextLink(response.headers.link);
    }
    return found;
  }
}

/** The descriptors of a referrers index (or of a tag-schema index): malformed entries are an error, never skipped. */
export function referrersIn(body: Buffer, what: string): Referrer[] {
  const index = parseJson(body, what) as { manifests?: unknown };
  if (!Array.isArray(index.manifests)) throw new GeoSyncError('INVALID_RESPONSE', `${what} is not an image index`);
  return index.manifests.map((entry: unknown) => {
    const d = entry as { digest?: unknown; mediaType?: unknown; size?: unknown; artifactType?: unknown } | null;
    if (!d || typeof d.digest !== 'string' || !isValidDigest(d.digest) || typeof d.mediaType !== 'string' || typeof d.size !== 'number')
      throw new GeoSyncError('INVALID_RESPONSE', `${what} holds a malformed descriptor`);
    return { digest: d.digest, mediaType: d.mediaType, size: d.size, artifactType: typeof d.artifactType === 'string' ? d.artifactType : '' };
  });
}

/**
 * The tag under which a registry without the API keeps a subject's referrers (OCI distribution 1.1,
 * "referrers tag schema"): `<alg>-<ref>`, the algorithm cut to 32 characters and the hex to 64.
 */
export function referrersTag(digest: string): string {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return `${algorithm.slice(0, 32)}-${hex.slice(0, 64)}`;
}

/** Whether a tag has the shape of a referrers tag-schema tag. */
export function isReferrersTag(tag: string): boolean {
  return /^sha256-[0-9a-f]{64}$/.test(tag) || /^sha512-[0-9a-f]{64}$/.test(tag);
}

/** The index a registry without the API keeps under `referrersTag(subject)`: the referrers in digest order, bytes fixed by their content. */
export function referrersTagIndex(referrers: readonly Referrer[]): RawManifest {
  const manifests = [...referrers]
    .sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0))
    .map((r) => ({ mediaType: r.mediaType, digest: r.digest, size: r.size, ...(r.artifactType ? { artifactType: r.artifactType } : {}) }));
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }));
  return { digest: digestOf(bytes), mediaType: MediaType.ociIndex, bytes };
}
