import { GeoSyncError, errorMessage } from '../base/errors.js';
import { digestOf } from '../base/oci.js';
import type { KnownBlobs } from './blobs.js';
import { provenAbsent } from './absence.js';
import type { DeleteSupport } from './registry.js';
import { registryErrorCode } from './responses.js';
import { remove } from './scopes.js';
import type { Transport } from './transport.js';

/**
 * The manifest the delete probe asks to delete: the digest of bytes that are not JSON, which no
 * registry accepts as a manifest, so no repository can hold it and the DELETE can touch nothing.
 */
export const DELETE_PROBE_DIGEST = digestOf(Buffer.from('geo-registry-sync delete probe: these bytes are not a manifest\n'));

/**
 * Deletes of manifests, tags and blobs, and whether this registry allows them. Which tag may be
 * deleted, and how without touching a digest another tag uses, is tag-removal.ts's to decide.
 */
export class Deletes {
  private tagDeleteSupported: boolean | undefined;
  private readonly deleteSupport = new Map<string, Promise<DeleteSupport>>();

  constructor(
    private readonly transport: Transport,
    private readonly known: KnownBlobs,
  ) {}

  /**
   * Deletes a manifest by digest. On registry 2.8 this untags every tag on that digest: callers must
   * know it is unshared (tag-removal.ts does). A 405 throws DELETES_REFUSED or READ_ONLY (see deleteRefusal).
   */
  async deleteManifest(repository: string, digest: string): Promise<boolean> {
    const response = await this.transport.send({
      method: 'DELETE',
      target: `/v2/${repository}/manifests/${digest}`,
      scopes: remove(repository),
      expect: [202, 200, 404, 405],
    });
    if (response.status === 405) throw deleteRefusal(this.transport.host, `${repository}@${digest}`, response);
    return response.status !== 404;
  }

  /**
   * Whether this registry deletes manifests in `repository`, found out without changing anything:
   * a DELETE of DELETE_PROBE_DIGEST, which no repository can hold. 404 (or 202): allowed; 405:
   * refused, or read-only when the answer allows only reads. Asked once per repository per client.
   */
  probeDeletes(repository: string): Promise<DeleteSupport> {
    let known = this.deleteSupport.get(repository);
    if (!known) {
      known = this.transport
        .send({
          method: 'DELETE',
          target: `/v2/${repository}/manifests/${DELETE_PROBE_DIGEST}`,
          scopes: remove(repository),
          expect: [202, 200, 404, 405],
        })
        .then((response): DeleteSupport =>
          response.status === 405 ? (deleteRefusal(this.transport.host, repository, response).code === 'READ_ONLY' ? 'read-only' : 'refused') : 'allowed',
        )
        .catch((error: unknown): DeleteSupport => {
          // Credentials without delete rights, a failing registry: removals are tried and fail on their own.
          this.transport.logger.info('delete probe failed; removals will be tried', { registry: this.transport.host, repository, reason: errorMessage(error) });
          return 'unknown';
        });
      this.deleteSupport.set(repository, known);
    }
    return known;
  }

  /** OCI tag deletion; 'unsupported' when the registry refuses to delete by tag (registry 2.8 does). */
  async deleteTag(repository: string, tag: string): Promise<'deleted' | 'absent' | 'unsupported'> {
    if (this.tagDeleteSupported === false) return 'unsupported';
    const response = await this.transport.send({
      method: 'DELETE',
      target: `/v2/${repository}/manifests/${tag}`,
      scopes: remove(repository),
      expect: [202, 200, 400, 404, 405, 501],
    });
    if (response.status === 202 || response.status === 200) {
      this.tagDeleteSupported = true;
      return 'deleted';
    }
    if (provenAbsent(response, 'manifest')) return 'absent';
    this.tagDeleteSupported = false;
    return 'unsupported';
  }

  /** Deletes a blob; absent (404) or refused (405) is no error: the blob is then left as it is. */
  async deleteBlob(repository: string, digest: string): Promise<void> {
    await this.transport.send({
      method: 'DELETE',
      target: `/v2/${repository}/blobs/${digest}`,
      scopes: remove(repository),
      expect: [202, 404, 405],
    });
    this.known.deleted(repository, digest);
  }
}

/**
 * What a 405 to a DELETE means. docker-registry with deletes disabled answers UNSUPPORTED; in
 * read-only mode the DELETE route is not served at all and `Allow` lists only reads (GET, HEAD).
 */
function deleteRefusal(host: string, what: string, response: { headers: Record<string, string | undefined>; body: Buffer }): GeoSyncError {
  const allow = response.headers.allow;
  if (allow !== undefined && !/\b(PUT|DELETE)\b/i.test(allow)) {
    return new GeoSyncError('READ_ONLY', `registry ${host} is read-only (HTTP 405 to DELETE ${what}, allowing only ${allow.trim() || 'nothing'})`);
  }
  const code = registryErrorCode(response.body);
  return new GeoSyncError(
    'DELETES_REFUSED',
    `registry ${host} refuses deletes (HTTP 405${code ? ` ${code}` : ''} to DELETE ${what}: delete is disabled in its storage config)`,
  );
}
