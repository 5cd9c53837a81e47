import { mapLimit } from '../base/concurrency.js';
import { GeoSyncError } from '../base/errors.js';
import { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, digestAlgorithm, digestOf, isSchema1MediaType, isValidDigest, quote, type RawManifest } from '../base/oci.js';
import { provenAbsent } from './absence.js';
import type { ManifestHead } from './registry.js';
import { baseMediaType } from './responses.js';
import { pull, push } from './scopes.js';
import type { Transport } from './transport.js';

/** Each digest's manifest read on its own, `concurrency` at a time; those absent left out. */
export async function manifestsOneByOne(
  get: (digest: string) => Promise<RawManifest | null>,
  digests: readonly string[],
  concurrency: number,
): Promise<Map<string, RawManifest>> {
  const found = await mapLimit(digests, concurrency, get);
  return new Map(digests.flatMap((digest, i) => (found[i] ? [[digest, found[i]] as const] : [])));
}

/** Manifests by tag or digest: read (HEAD, GET) and store (PUT), their digests checked. Deletes are in deletes.ts. */
export class Manifests {
  constructor(private readonly transport: Transport) {}

  /** Digest and media type of a manifest without its body; null when absent. */
  async headManifest(repository: string, reference: string): Promise<ManifestHead | null> {
    const response = await this.transport.send({
      method: 'HEAD',
      target: `/v2/${repository}/manifests/${reference}`,
      scopes: pull(repository),
      headers: { accept: MANIFEST_ACCEPT },
      expect: [200, 404],
    });
    if (response.status === 404) return null;
    const mediaType = baseMediaType(response.headers['content-type']);
    const digest = response.headers['docker-content-digest'];
    if (digest !== undefined) {
      if (!isValidDigest(digest))
        throw new GeoSyncError('INVALID_RESPONSE', `registry ${this.transport.host} sent an invalid digest ${quote(digest)} for ${repository}:${reference}`);
      return { digest, mediaType, size: Number(response.headers['content-length'] ?? 0) };
    }
    // Without Docker-Content-Digest the digest is the hash of the bytes.
    const manifest = await this.getManifest(repository, reference);
    return manifest && { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
  }

  /** The manifest's exact bytes and media type; null when absent. The digest is checked against the bytes. */
  async getManifest(repository: string, reference: string): Promise<RawManifest | null> {
    const host = this.transport.host;
    const response = await this.get(repository, reference);
    if (response.status === 404) return null;
    const mediaType = baseMediaType(response.headers['content-type']) || mediaTypeFromBody(response.body);
    const claimed = response.headers['docker-content-digest'];
    const algorithm = isValidDigest(reference) ? digestAlgorithm(reference) : claimed && isValidDigest(claimed) ? digestAlgorithm(claimed) : 'sha256';
    const digest = digestOf(response.body, algorithm);
    if (isValidDigest(reference) && reference !== digest) {
      throw new GeoSyncError('DIGEST_MISMATCH', `registry ${host} returned bytes for ${repository}@${reference} that hash to ${digest}`);
    }
    if (claimed !== undefined && claimed !== digest && !isSchema1MediaType(mediaType)) {
      throw new GeoSyncError('DIGEST_MISMATCH', `registry ${host} claims ${quote(claimed)} for ${repository}:${reference} but the bytes hash to ${digest}`);
    }
    return { digest, mediaType, bytes: response.body };
  }

  /** Stores the manifest's bytes as they are, under a tag or its digest; checks the digest the registry reports. */
  async putManifest(repository: string, reference: string, manifest: RawManifest): Promise<void> {
    const response = await this.transport.send({
      method: 'PUT',
      target: `/v2/${repository}/manifests/${reference}`,
      scopes: push(repository),
      headers: { 'content-type': manifest.mediaType },
      body: manifest.bytes,
      expect: [201, 200],
    });
    const stored = response.headers['docker-content-digest'];
    if (stored !== undefined && stored !== manifest.digest) {
      throw new GeoSyncError('DIGEST_MISMATCH', `registry ${this.transport.host} stored ${repository}:${reference} as ${stored}, expected ${manifest.digest}`);
    }
  }

  /**
   * Whether `reference` is absent, read with a GET so that a 404 carries the registry's error (a
   * HEAD's 404 has no body and proves nothing): absent only as absence.ts's rule for a manifest
   * says; any other 404 (a proxy's page) is an error.
   */
  async provesAbsent(repository: string, reference: string): Promise<boolean> {
    const response = await this.get(repository, reference);
    if (response.status === 200) return false;
    if (provenAbsent(response, 'manifest')) return true;
    throw new GeoSyncError(
      'LISTING_FAILED',
      `registry ${this.transport.host} answered 404 without a registry error for ${repository}:${reference}; not reading that as "no such manifest"`,
    );
  }

  /** The one manifest GET: its bytes capped, a 404 for the caller to read. */
  private get(repository: string, reference: string) {
    return this.transport.send({
      method: 'GET',
      target: `/v2/${repository}/manifests/${reference}`,
      scopes: pull(repository),
      headers: { accept: MANIFEST_ACCEPT },
      expect: [200, 404],
      maxBytes: MAX_MANIFEST_BYTES,
    });
  }
}

/** The `mediaType` a manifest names itself, for registries that send no Content-Type. */
function mediaTypeFromBody(bytes: Buffer): string {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    return typeof parsed.mediaType === 'string' ? parsed.mediaType : '';
  } catch {
    return '';
  }
}
