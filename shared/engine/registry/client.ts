import { createHash, type Hash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { GeoSyncError, RegistryError, errorMessage } from '../errors.js';
import {
  MANIFEST_ACCEPT,
  MAX_MANIFEST_BYTES,
  digestAlgorithm,
  digestOf,
  isSchema1MediaType,
  isValidDigest,
  isValidTag,
  quote,
  type Descriptor,
  type RawManifest,
} from '../oci.js';
import { nextChunkBytes, type UploadSession } from '../upload-session.js';
import { Transport, type RegistryEndpoint, type TransportOptions } from './transport.js';

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

/** A chunked upload's end in this run: the blob stored, or stopped at the deadline with its session to resume. */
export type ChunkedUpload = { kind: 'done'; bytes: number } | { kind: 'paused'; session: UploadSession; bytes: number };

export interface ChunkedUploadOptions {
  /** A session kept from an earlier invocation; the registry's own offset for it is trusted over the kept one. */
  session?: UploadSession;
  /** Looked at before each chunk: once true, the upload stops and returns its session. */
  pastDeadline: () => boolean;
  /** Ms until the deadline, to size chunks that end near it. */
  msLeft: () => number;
  /** After each chunk the registry acknowledged; awaited, so progress is saved before more is sent. */
  onChunk?: (session: UploadSession) => Promise<void>;
}

export interface CatalogPage {
  repositories: string[];
  /** The `last` to ask for the next page; absent on the last page. */
  next?: string;
}

/**
 * What a registry does with our deletes: allowed; refused (delete disabled in its storage config,
 * e.g. docker-registry's packaged default); read-only (every write refused, e.g. in maintenance);
 * unknown when the probe could not tell (removals are then tried, as without a probe).
 */
export type DeleteSupport = 'allowed' | 'refused' | 'read-only' | 'unknown';

/**
 * The manifest the delete probe asks to delete: the digest of bytes that are not JSON, which no
 * registry accepts as a manifest, so no repository can hold it and the DELETE can touch nothing.
 */
export const DELETE_PROBE_DIGEST = digestOf(Buffer.from('geo-registry-sync delete probe: these bytes are not a manifest\n'));

const TAG_LIST_LIMIT = 64 * 1024 * 1024;
const pull = (repository: string) => [`repository:${repository}:pull`];
const push = (repository: string) => [`repository:${repository}:pull,push`];
const remove = (repository: string) => [`repository:${repository}:delete`];

/**
 * What a registry can do, one method per operation of the OCI distribution API. Methods only
 * describe requests; the Transport sends them. One client lives for one run, so its caches
 * (blob existence, tag-delete support) never outlive what they describe by much.
 */
export class RegistryClient {
  readonly transport: Transport;
  /** Blobs known present, per repository: a blob is HEADed at most once per run. */
  private readonly blobPresence = new Map<string, Promise<boolean>>();
  /** Where each blob is known to exist here, for cross-repository mounts. */
  private readonly blobHomes = new Map<string, string>();
  private tagDeleteSupported: boolean | undefined;
  private readonly deleteSupport = new Map<string, Promise<DeleteSupport>>();
  private gitlabTagApi: Promise<boolean> | undefined;

  constructor(endpoint: RegistryEndpoint, options: TransportOptions = {}) {
    this.transport = new Transport(endpoint, options);
  }

  get host(): string {
    return this.transport.host;
  }

  close(): Promise<void> {
    return this.transport.close();
  }

  /**
   * All tags of a repository (Link pagination, any order, `tags: null` = none); null when the
   * repository does not exist. Only the registry's own "unknown" answer (404 with a registry error
   * body) means that: any other 404 (a proxy's page, a wrong path) is an error, never "no tags".
   */
  async listTags(repository: string): Promise<string[] | null> {
    const tags = new Set<string>();
    for await (const page of this.tagListPages(repository, `/v2/${repository}/tags/list?n=1000`)) {
      if (page.status === 404) {
        if (errorCode(page.body) !== undefined) return null;
        throw new GeoSyncError(
          'LISTING_FAILED',
          `registry ${this.host} answered 404 without a registry error to the tag list of ${repository}; not reading that as "no such repository" (is a proxy in the way, or the URL wrong?)`,
        );
      }
      const body = parseJson(page.body, `tag list of ${repository} on ${this.host}`) as { tags?: unknown };
      // `tags: null` is how registry 2.8 lists a repository whose tags were all deleted; no `tags` at all is not a tag list.
      if (body.tags !== null && !Array.isArray(body.tags)) {
        throw new GeoSyncError(
          'INVALID_RESPONSE',
          `registry ${this.host} sent a malformed tag list for ${repository}${body.tags === undefined ? ' (no "tags")' : ''}`,
        );
      }
      for (const tag of (body.tags as unknown[] | null) ?? []) {
        if (typeof tag !== 'string' || !isValidTag(tag)) {
          throw new GeoSyncError(
            'INVALID_RESPONSE',
            `registry ${this.host} listed an invalid tag ${quote(String(tag))} in ${repository}; refusing to act on this listing`,
          );
        }
        tags.add(tag);
      }
    }
    return [...tags];
  }

  /**
   * GitLab's registry API lists tags with their digests, 1,000 a page, so a side is read without
   * one HEAD per tag. Probed once per client, credentials sent as for any request: only GitLab's
   * own answer counts, a 200 carrying its `Gitlab-Container-Registry-Version` header. A 401 proves
   * nothing (an authenticating proxy before a plain registry answers 401 to every path).
   */
  hasGitlabTagApi(): Promise<boolean> {
    this.gitlabTagApi ??= this.transport
      .send({ method: 'GET', target: '/gitlab/v1/', scopes: [], expect: [200, 400, 403, 404, 405, 501] })
      .then((response) => {
        const version = response.headers['gitlab-container-registry-version'];
        const offered = response.status === 200 && version !== undefined && version.trim() !== '';
        this.transport.logger.debug('GitLab tag API probe', { registry: this.host, status: response.status, offered });
        return offered;
      })
      .catch((error: unknown) => {
        // The plain API gives the same answer with more requests; say why it is used.
        this.transport.logger.warn('GitLab API probe failed; using the plain tag list', { registry: this.host, reason: errorMessage(error) });
        return false;
      });
    return this.gitlabTagApi;
  }

  /**
   * (tag -> digest) from GitLab's tag list API; null when this API does not know the repository,
   * which alone does not mean it is absent (the caller asks the plain API).
   */
  async listTagDigestsGitlab(repository: string): Promise<Map<string, string> | null> {
    const tags = new Map<string, string>();
    for await (const page of this.tagListPages(repository, `/gitlab/v1/repositories/${repository}/tags/list/?n=1000`)) {
      if (page.status === 404) return null;
      const entries = parseJson(page.body, `GitLab tag list of ${repository} on ${this.host}`);
      if (!Array.isArray(entries)) throw new GeoSyncError('INVALID_RESPONSE', `registry ${this.host} sent a malformed GitLab tag list for ${repository}`);
      for (const entry of entries as Array<{ name?: unknown; digest?: unknown }>) {
        if (typeof entry?.name !== 'string' || !isValidTag(entry.name) || typeof entry.digest !== 'string' || !isValidDigest(entry.digest)) {
          throw new GeoSyncError(
            'INVALID_RESPONSE',
            `registry ${this.host} listed an invalid tag or digest in ${repository}: ${quote(JSON.stringify(entry).slice(0, 200))}; refusing to act on this listing`,
          );
        }
        tags.set(entry.name, entry.digest);
      }
    }
    return tags;
  }

  /** The pages of a paged tag listing, following `Link`; a 404 only as the first and only page, for the caller to judge. */
  private async *tagListPages(repository: string, first: string): AsyncGenerator<{ status: 200 | 404; body: Buffer }> {
    const seen = new Set<string>();
    for (let target: string | undefined = first; target;) {
      if (seen.has(target)) throw new GeoSyncError('PAGINATION_LOOP', `registry ${this.host} repeated a tag list page for ${repository}`);
      seen.add(target);
      const response = await this.transport.send({ method: 'GET', target, scopes: pull(repository), expect: [200, 404], maxBytes: TAG_LIST_LIMIT });
      if (response.status === 404) {
        if (seen.size > 1)
          throw new GeoSyncError('LISTING_FAILED', `registry ${this.host} lost the tag list of ${repository} during pagination`, { retryable: true });
        yield { status: 404, body: response.body };
        return;
      }
      yield { status: 200, body: response.body };
      target = nextLink(response.headers.link);
    }
  }

  /** One page of the catalog, from after `last`. */
  async listCatalogPage(options: { last?: string; pageSize?: number } = {}): Promise<CatalogPage> {
    const query = new URLSearchParams({ n: String(options.pageSize ?? 1000) });
    if (options.last) query.set('last', options.last);
    const response = await this.transport.send({
      method: 'GET',
      target: `/v2/_catalog?${query}`,
      scopes: ['registry:catalog:*'],
      expect: [200],
      maxBytes: TAG_LIST_LIMIT,
    });
    const body = parseJson(response.body, `catalog of ${this.host}`) as { repositories?: unknown };
    if (body.repositories !== null && body.repositories !== undefined && !Array.isArray(body.repositories)) {
      throw new GeoSyncError('INVALID_RESPONSE', `registry ${this.host} sent a malformed catalog`);
    }
    const repositories = ((body.repositories as unknown[] | null | undefined) ?? []).filter((r): r is string => typeof r === 'string');
    const link = nextLink(response.headers.link);
    const last = link ? (new URL(link, this.transport.base).searchParams.get('last') ?? repositories.at(-1)) : undefined;
    return last && repositories.length > 0 ? { repositories, next: last } : { repositories };
  }

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
        throw new GeoSyncError('INVALID_RESPONSE', `registry ${this.host} sent an invalid digest ${quote(digest)} for ${repository}:${reference}`);
      return { digest, mediaType, size: Number(response.headers['content-length'] ?? 0) };
    }
    // Without Docker-Content-Digest the digest is the hash of the bytes.
    const manifest = await this.getManifest(repository, reference);
    return manifest && { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
  }

  /** The manifest's exact bytes and media type; null when absent. The digest is checked against the bytes. */
  async getManifest(repository: string, reference: string): Promise<RawManifest | null> {
    const response = await this.transport.send({
      method: 'GET',
      target: `/v2/${repository}/manifests/${reference}`,
      scopes: pull(repository),
      headers: { accept: MANIFEST_ACCEPT },
      expect: [200, 404],
      maxBytes: MAX_MANIFEST_BYTES,
    });
    if (response.status === 404) return null;
    const mediaType = baseMediaType(response.headers['content-type']) || mediaTypeFromBody(response.body);
    const claimed = response.headers['docker-content-digest'];
    const algorithm = isValidDigest(reference) ? digestAlgorithm(reference) : claimed && isValidDigest(claimed) ? digestAlgorithm(claimed) : 'sha256';
    const digest = digestOf(response.body, algorithm);
    if (isValidDigest(reference) && reference !== digest) {
      throw new GeoSyncError('DIGEST_MISMATCH', `registry ${this.host} returned bytes for ${repository}@${reference} that hash to ${digest}`);
    }
    if (claimed !== undefined && claimed !== digest && !isSchema1MediaType(mediaType)) {
      throw new GeoSyncError(
        'DIGEST_MISMATCH',
        `registry ${this.host} claims ${quote(claimed)} for ${repository}:${reference} but the bytes hash to ${digest}`,
      );
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
      throw new GeoSyncError('DIGEST_MISMATCH', `registry ${this.host} stored ${repository}:${reference} as ${stored}, expected ${manifest.digest}`);
    }
  }

  /**
   * Deletes a manifest by digest. On registry 2.8 this untags every tag on that digest: callers must
   * know it is unshared (tag-removal.ts does). A 405 throws DELETES_REFUSED or READ_ONLY (see deleteRefusal).
   */
  async deleteManifest(repository: string, digest: string): Promise<boolean> {
    const response = await this.transport.send({
      method: 'DELETE',
      target: `/v2/${repository}/manifests/${digest}`,
      scopes: [...push(repository), ...remove(repository)],
      expect: [202, 200, 404, 405],
    });
    if (response.status === 405) throw deleteRefusal(this.host, `${repository}@${digest}`, response);
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
          scopes: [...push(repository), ...remove(repository)],
          expect: [202, 200, 404, 405],
        })
        .then((response): DeleteSupport =>
          response.status === 405 ? (deleteRefusal(this.host, repository, response).code === 'READ_ONLY' ? 'read-only' : 'refused') : 'allowed',
        )
        .catch((error: unknown): DeleteSupport => {
          // Credentials without delete rights, a failing registry: removals are tried and fail on their own.
          this.transport.logger.info('delete probe failed; removals will be tried', { registry: this.host, repository, reason: errorMessage(error) });
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
      scopes: [...push(repository), ...remove(repository)],
      expect: [202, 200, 400, 404, 405, 501],
    });
    if (response.status === 202 || response.status === 200) {
      this.tagDeleteSupported = true;
      return 'deleted';
    }
    const code = errorCode(response.body);
    if (response.status === 404 && (code === 'MANIFEST_UNKNOWN' || code === 'NAME_UNKNOWN')) return 'absent';
    this.tagDeleteSupported = false;
    return 'unsupported';
  }

  async blobExists(repository: string, digest: string): Promise<boolean> {
    const key = `${repository}@${digest}`;
    let known = this.blobPresence.get(key);
    if (!known) {
      known = this.transport
        .send({ method: 'HEAD', target: `/v2/${repository}/blobs/${digest}`, scopes: pull(repository), expect: [200, 404], followRedirects: true })
        .then((response) => response.status === 200);
      this.blobPresence.set(key, known);
      known.catch(() => this.blobPresence.delete(key));
    }
    const present = await known;
    if (present) this.blobHomes.set(digest, repository);
    return present;
  }

  /** A repository of this registry where the blob is known to exist, to mount from. */
  blobHome(digest: string, except: string): string | undefined {
    const home = this.blobHomes.get(digest);
    return home === except ? undefined : home;
  }

  /** Opens a blob for streaming (redirects followed, credentials kept on this host). */
  async openBlob(repository: string, descriptor: Descriptor): Promise<{ stream: Readable; length: number }> {
    const response = await this.transport.send({
      method: 'GET',
      target: `/v2/${repository}/blobs/${descriptor.digest}`,
      scopes: pull(repository),
      expect: [200],
      stream: true,
      followRedirects: true,
    });
    return { stream: response.stream!, length: descriptor.size };
  }

  /**
   * Opens a blob from byte `offset` (`Range: bytes=N-`, answered 206). A registry that ignores
   * Range answers 200 with the whole blob: the first `offset` bytes are then skipped here.
   */
  async openBlobAt(repository: string, descriptor: Descriptor, offset: number): Promise<{ stream: Readable; length: number }> {
    if (offset === 0) return this.openBlob(repository, descriptor);
    const response = await this.transport.send({
      method: 'GET',
      target: `/v2/${repository}/blobs/${descriptor.digest}`,
      scopes: pull(repository),
      headers: { range: `bytes=${offset}-` },
      expect: [200, 206],
      stream: true,
      followRedirects: true,
    });
    const stream = response.stream!;
    const length = descriptor.size - offset;
    if (response.status === 200) {
      const skipping = skipBytes(offset);
      stream.on('error', (error) => skipping.destroy(error));
      // Closing what the caller holds closes the response too, and frees its connection.
      skipping.on('close', () => stream.destroy());
      return { stream: stream.pipe(skipping), length };
    }
    const range = /^bytes (\d+)-/.exec(response.headers['content-range'] ?? '');
    if (Number(range?.[1]) !== offset) {
      stream.destroy();
      throw new GeoSyncError('INVALID_RESPONSE', `registry ${this.host} answered a read of ${descriptor.digest} from ${offset} with another range`);
    }
    return { stream, length };
  }

  /** Cross-repository mount; true when mounted, false when the registry declined (the caller uploads). */
  async mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    const response = await this.transport.send({
      method: 'POST',
      target: `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
      scopes: [...push(repository), ...pull(from)],
      expect: [201, 202],
    });
    if (response.status === 202 && response.headers.location) await this.cancelUpload(repository, response.headers.location);
    if (response.status === 201) this.markPresent(repository, digest);
    return response.status === 201;
  }

  /**
   * Uploads a blob from a source that can be opened again: each attempt starts a fresh upload
   * session and a fresh stream, and the bytes are hashed on the way through.
   */
  async uploadBlob(repository: string, descriptor: Descriptor, open: () => Promise<{ stream: Readable; length: number }>): Promise<number> {
    return this.transport.withRetry(`upload ${descriptor.digest}`, async () => {
      const { location } = await this.startSession(repository, descriptor);
      const target = withDigest(location, descriptor.digest);
      const source = await open();
      const hasher = hashingPassThrough(digestAlgorithm(descriptor.digest));
      source.stream.on('error', (error) => hasher.destroy(error));
      try {
        await this.transport.send({
          method: 'PUT',
          target,
          scopes: push(repository),
          headers: { 'content-type': 'application/octet-stream' },
          body: async () => ({ stream: source.stream.pipe(hasher), length: source.length }),
          expect: [201],
          retry: false,
        });
      } catch (error) {
        source.stream.destroy();
        throw error;
      }
      const actual = hasher.digest();
      if (actual !== descriptor.digest) {
        throw new GeoSyncError('DIGEST_MISMATCH', `blob ${descriptor.digest} of ${repository} hashed to ${actual} while copying`);
      }
      this.markPresent(repository, descriptor.digest);
      this.transport.stats.bytesUp += hasher.bytes;
      return hasher.bytes;
    });
  }

  /**
   * Copies a blob in chunks (OCI chunked upload: PATCH with Content-Range, the registry's progress
   * in Range), so it can stop at a deadline and a later invocation resume the session. Each
   * attempt resumes where the registry says the session stands, or opens a fresh session when the
   * registry no longer knows it (registry 2.8 invalidates a session whose PATCH was cut).
   * Bytes are hashed when all of them pass through this call; otherwise the registry's digest
   * check at the final PUT guards the blob.
   */
  async uploadBlobChunked(
    repository: string,
    descriptor: Descriptor,
    open: (offset: number) => Promise<{ stream: Readable; length: number }>,
    options: ChunkedUploadOptions,
  ): Promise<ChunkedUpload> {
    const progress = { session: options.session, sent: 0, bytesPerSecond: undefined as number | undefined };
    return this.transport.withRetry(`chunked upload ${descriptor.digest}`, () => this.chunkedAttempt(repository, descriptor, open, options, progress));
  }

  private async chunkedAttempt(
    repository: string,
    descriptor: Descriptor,
    open: (offset: number) => Promise<{ stream: Readable; length: number }>,
    options: ChunkedUploadOptions,
    progress: { session: UploadSession | undefined; sent: number; bytesPerSecond: number | undefined },
  ): Promise<ChunkedUpload> {
    const log = this.transport.logger;
    let session = progress.session && (await this.resumeSession(repository, progress.session));
    if (progress.session && !session)
      log.info('upload session gone; starting afresh', { registry: this.host, digest: descriptor.digest, offset: progress.session.offset });
    if (!session) session = await this.startSession(repository, descriptor);
    else if (session.offset > 0) log.info('upload resumed', { registry: this.host, digest: descriptor.digest, offset: session.offset });
    progress.session = session;
    if (options.pastDeadline()) return { kind: 'paused', session, bytes: progress.sent };

    // A session holding every byte (its invocation died before the final PUT) needs no source.
    const source = session.offset < descriptor.size ? await open(session.offset) : { stream: Readable.from([]), length: 0 };
    const hasher = session.offset === 0 ? createHash(digestAlgorithm(descriptor.digest)) : undefined;
    const reader = new ChunkReader(source.stream, hasher);
    try {
      while (session.offset < descriptor.size) {
        if (options.pastDeadline()) {
          log.info('upload paused at the deadline', { registry: this.host, digest: descriptor.digest, offset: session.offset, size: descriptor.size });
          return { kind: 'paused', session, bytes: progress.sent };
        }
        const length = nextChunkBytes({ bytesPerSecond: progress.bytesPerSecond, msLeft: options.msLeft(), remaining: descriptor.size - session.offset });
        const started = Date.now();
        session = await this.patchChunk(repository, session, reader, length);
        progress.session = session;
        progress.sent += length;
        this.transport.stats.bytesUp += length;
        progress.bytesPerSecond = (length * 1000) / Math.max(1, Date.now() - started);
        await options.onChunk?.(session);
      }
    } finally {
      source.stream.destroy();
    }
    if (hasher) {
      const actual = `${digestAlgorithm(descriptor.digest)}:${hasher.digest('hex')}`;
      if (actual !== descriptor.digest) {
        await this.cancelUpload(repository, session.location);
        progress.session = undefined;
        throw new GeoSyncError('DIGEST_MISMATCH', `blob ${descriptor.digest} of ${repository} hashed to ${actual} while copying`);
      }
    }
    await this.finishSession(repository, session, progress);
    progress.session = undefined;
    this.markPresent(repository, descriptor.digest);
    return { kind: 'done', bytes: progress.sent };
  }

  private async startSession(repository: string, descriptor: Descriptor): Promise<UploadSession> {
    const start = await this.transport.send({ method: 'POST', target: `/v2/${repository}/blobs/uploads/`, scopes: push(repository), expect: [202] });
    const location = start.headers.location;
    if (!location) throw new GeoSyncError('INVALID_RESPONSE', `registry ${this.host} started an upload without a Location`);
    return { digest: descriptor.digest, location: this.transport.resolve(location).toString(), offset: 0, size: descriptor.size, startedAt: Date.now() };
  }

  /**
   * The session as the registry holds it (GET: 204 with Range), or undefined when the registry no
   * longer knows it or calls it invalid; such a session is cancelled. The registry's offset wins
   * over the kept one: registry 2.8 ignores Content-Range and appends, so only its count is safe.
   */
  async resumeSession(repository: string, session: UploadSession): Promise<UploadSession | undefined> {
    try {
      this.transport.resolve(session.location);
    } catch {
      // Kept while the secondary had another address: nothing to ask there; a fresh session here.
      return undefined;
    }
    const response = await this.transport.send({ method: 'GET', target: session.location, scopes: push(repository), expect: [204, 400, 404, 416] });
    const offset = response.status === 204 ? rangeEnd(response.headers.range) : undefined;
    if (offset === undefined || offset > session.size) {
      await this.cancelUpload(repository, session.location);
      return undefined;
    }
    const location = response.headers.location ? this.transport.resolve(response.headers.location).toString() : session.location;
    return { ...session, location, offset };
  }

  private async patchChunk(repository: string, session: UploadSession, reader: ChunkReader, length: number): Promise<UploadSession> {
    const end = session.offset + length;
    // The chunk's bytes come off the source once: a resend (after a 401) would send the bytes after them.
    let taken = false;
    const body = async () => {
      if (taken) throw new GeoSyncError('CHUNK_CONSUMED', `a chunk of ${session.digest} cannot be sent twice`, { retryable: true });
      taken = true;
      return { stream: reader.take(length), length };
    };
    let response;
    try {
      response = await this.transport.send({
        method: 'PATCH',
        target: session.location,
        scopes: push(repository),
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${session.offset}-${end - 1}` },
        body,
        expect: [202],
        retry: false,
      });
    } catch (error) {
      // The next attempt asks the registry where the session stands (or that it is gone).
      throw error instanceof GeoSyncError && !error.retryable ? new GeoSyncError(error.code, error.message, { retryable: true, cause: error }) : error;
    }
    const held = rangeEnd(response.headers.range);
    const location = response.headers.location;
    if (held !== end || !location) {
      throw new GeoSyncError(
        'UPLOAD_OFFSET_MISMATCH',
        `registry ${this.host} holds ${held ?? 'an unknown count of'} bytes of ${session.digest} after a chunk to ${end}`,
        { retryable: true },
      );
    }
    // Always the newest Location: registry 2.8 carries the signed upload state in it.
    return { ...session, location: this.transport.resolve(location).toString(), offset: end };
  }

  /**
   * The final PUT with the digest: the registry checks it against what it holds. A session it
   * refuses (DIGEST_INVALID: the bytes are not the blob) is cancelled and forgotten.
   */
  private async finishSession(repository: string, session: UploadSession, progress: { session: UploadSession | undefined }): Promise<void> {
    const location = session.location;
    const target = withDigest(location, session.digest);
    try {
      await this.transport.send({ method: 'PUT', target, scopes: push(repository), expect: [201], retry: false });
    } catch (error) {
      if (error instanceof RegistryError && error.status === 400) {
        await this.cancelUpload(repository, location);
        progress.session = undefined;
      }
      throw error;
    }
  }

  /** Uploads small bytes held in memory (throwaway configs). */
  async uploadBytes(repository: string, bytes: Buffer): Promise<string> {
    const digest = digestOf(bytes);
    await this.uploadBlob(repository, { digest, size: bytes.length, mediaType: 'application/octet-stream' }, async () => {
      return { stream: Readable.from([bytes]), length: bytes.length };
    });
    return digest;
  }

  async deleteBlob(repository: string, digest: string): Promise<void> {
    await this.transport.send({
      method: 'DELETE',
      target: `/v2/${repository}/blobs/${digest}`,
      scopes: [...push(repository), ...remove(repository)],
      expect: [202, 404, 405],
    });
    this.blobPresence.delete(`${repository}@${digest}`);
  }

  private markPresent(repository: string, digest: string): void {
    this.blobPresence.set(`${repository}@${digest}`, Promise.resolve(true));
    this.blobHomes.set(digest, repository);
  }

  /** Cancels an upload session; errors are ignored (the registry purges forgotten sessions on its own). */
  async cancelUpload(repository: string, location: string): Promise<void> {
    await this.transport.send({ method: 'DELETE', target: location, scopes: push(repository), expect: [204, 202, 404, 405] }).catch(() => undefined);
  }
}

function hashingPassThrough(algorithm: 'sha256' | 'sha512'): Transform & { bytes: number; digest(): string } {
  const hash = createHash(algorithm);
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      (stream as unknown as { bytes: number }).bytes += chunk.length;
      callback(null, chunk);
    },
  }) as Transform & { bytes: number; digest(): string };
  stream.bytes = 0;
  stream.digest = () => `${algorithm}:${hash.digest('hex')}`;
  return stream;
}

/** An upload Location with the final `digest` query. Appended, not rebuilt: some registries sign the upload state in the query and re-encoding breaks it. */
function withDigest(location: string, digest: string): string {
  return `${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`;
}

/** Drops the first `count` bytes of a stream: a blob read from an offset off a registry that ignores Range. */
function skipBytes(count: number): Transform {
  let left = count;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (left >= chunk.length) {
        left -= chunk.length;
        callback();
      } else {
        const rest = chunk.subarray(left);
        left = 0;
        callback(null, rest);
      }
    },
  });
}

/**
 * Hands out a stream in consecutive pieces of exact lengths, one per chunk, hashing what passes.
 * Pulls only as fast as the chunk's request reads, so the source is never buffered whole.
 */
class ChunkReader {
  private readonly source: AsyncIterator<Buffer>;
  private leftover: Buffer | undefined;

  constructor(
    stream: Readable,
    private readonly hasher: Hash | undefined,
  ) {
    this.source = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  take(length: number): Readable {
    return Readable.from(this.pieces(length), { objectMode: false });
  }

  private async *pieces(length: number): AsyncGenerator<Buffer> {
    for (let left = length; left > 0;) {
      let chunk = this.leftover;
      this.leftover = undefined;
      if (!chunk) {
        const next = await this.source.next();
        if (next.done) throw new GeoSyncError('BLOB_TRUNCATED', 'the source blob ended before its size', { retryable: true });
        chunk = next.value;
      }
      if (chunk.length > left) {
        this.leftover = chunk.subarray(left);
        chunk = chunk.subarray(0, left);
      }
      this.hasher?.update(chunk);
      left -= chunk.length;
      yield chunk;
    }
  }
}

/** The byte count a registry's `Range: 0-<last>` reports; `0-0` is how registry 2.8 reports an empty session. */
function rangeEnd(header: string | undefined): number | undefined {
  const match = /^(?:bytes=)?0-(\d+)$/.exec((header ?? '').trim());
  if (!match) return undefined;
  const last = Number(match[1]);
  return last === 0 ? 0 : last + 1;
}

/** The `rel="next"` target of a Link header, or undefined; malformed headers end pagination with an error. */
export function nextLink(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (!match) throw new GeoSyncError('INVALID_RESPONSE', `malformed Link header ${quote(header)}`);
    if (/\brel\s*=\s*"?next"?/i.test(match[2] ?? '')) return match[1];
  }
  return undefined;
}

function baseMediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim();
}

function mediaTypeFromBody(bytes: Buffer): string {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    return typeof parsed.mediaType === 'string' ? parsed.mediaType : '';
  } catch {
    return '';
  }
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    if (typeof value !== 'object' || value === null) throw new Error('not an object');
    return value;
  } catch {
    throw new GeoSyncError('INVALID_RESPONSE', `${what} is not valid JSON`);
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
  const code = errorCode(response.body);
  return new GeoSyncError(
    'DELETES_REFUSED',
    `registry ${host} refuses deletes (HTTP 405${code ? ` ${code}` : ''} to DELETE ${what}: delete is disabled in its storage config)`,
  );
}

function errorCode(body: Buffer): string | undefined {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: unknown }> };
    const code = parsed.errors?.[0]?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}
