import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { GeoSyncError, RegistryError } from '../base/errors.js';
import { digestAlgorithm, digestOf, type Descriptor } from '../base/oci.js';
import { nextChunkBytes, type UploadSession } from '../sync/upload-session.js';
import type { KnownBlobs } from './blobs.js';
import { ChunkReader } from './chunk-reader.js';
import type { ChunkedUpload, ChunkedUploadOptions } from './registry.js';
import { pull, push } from './scopes.js';
import type { Transport } from './transport.js';

/**
 * Blob writes: a cross-repository mount, a monolithic upload from a source that can be opened
 * again, and a chunked upload that stops at a deadline and resumes in a later invocation.
 */
export class Uploads {
  constructor(
    private readonly transport: Transport,
    private readonly known: KnownBlobs,
  ) {}

  /** Cross-repository mount; true when mounted, false when the registry declined (the caller uploads). */
  async mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    const response = await this.transport.send({
      method: 'POST',
      target: `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
      scopes: [...push(repository), ...pull(from)],
      expect: [201, 202],
    });
    if (response.status === 202 && response.headers.location) await this.cancelUpload(repository, response.headers.location);
    if (response.status === 201) this.known.stored(repository, digest);
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
      // A PUT refused for its credentials (a token that expired as it went out): the next attempt opens afresh.
      const body = takenOnce(`the body of ${descriptor.digest}`, () => ({ stream: source.stream.pipe(hasher), length: source.length }));
      try {
        await this.transport.send({
          method: 'PUT',
          target,
          scopes: push(repository),
          headers: { 'content-type': 'application/octet-stream' },
          body,
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
      this.known.stored(repository, descriptor.digest);
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
      log.info('upload session gone; starting afresh', { registry: this.transport.host, digest: descriptor.digest, offset: progress.session.offset });
    if (!session) session = await this.startSession(repository, descriptor);
    else if (session.offset > 0) log.info('upload resumed', { registry: this.transport.host, digest: descriptor.digest, offset: session.offset });
    progress.session = session;
    if (options.pastDeadline()) return { kind: 'paused', session, bytes: progress.sent };

    // A session holding every byte (its invocation died before the final PUT) needs no source.
    const source = session.offset < descriptor.size ? await open(session.offset) : { stream: Readable.from([]), length: 0 };
    const hasher = session.offset === 0 ? createHash(digestAlgorithm(descriptor.digest)) : undefined;
    const reader = new ChunkReader(source.stream, hasher);
    try {
      while (session.offset < descriptor.size) {
        if (options.pastDeadline()) {
          log.info('upload paused at the deadline', {
            registry: this.transport.host,
            digest: descriptor.digest,
            offset: session.offset,
            size: descriptor.size,
          });
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
    this.known.stored(repository, descriptor.digest);
    return { kind: 'done', bytes: progress.sent };
  }

  private async startSession(repository: string, descriptor: Descriptor): Promise<UploadSession> {
    const start = await this.transport.send({ method: 'POST', target: `/v2/${repository}/blobs/uploads/`, scopes: push(repository), expect: [202] });
    const location = start.headers.location;
    if (!location) throw new GeoSyncError('INVALID_RESPONSE', `registry ${this.transport.host} started an upload without a Location`);
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
    const body = takenOnce(`a chunk of ${session.digest}`, () => ({ stream: reader.take(length), length }));
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
        `registry ${this.transport.host} holds ${held ?? 'an unknown count of'} bytes of ${session.digest} after a chunk to ${end}`,
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

/** The byte count a registry's `Range: 0-<last>` reports; `0-0` is how registry 2.8 reports an empty session. */
function rangeEnd(header: string | undefined): number | undefined {
  const match = /^(?:bytes=)?0-(\d+)$/.exec((header ?? '').trim());
  if (!match) return undefined;
  const last = Number(match[1]);
  return last === 0 ? 0 : last + 1;
}

/**
 * A request body whose bytes come off their source once. The transport sends a request again after
 * a 401, with new credentials; by then the stream is partly read, and a resend would send the bytes
 * after those. So a second take ends the attempt instead (retryable): the caller's next attempt
 * opens a fresh source, or resumes where the registry says its session stands.
 */
function takenOnce(what: string, take: () => { stream: Readable; length: number }): () => Promise<{ stream: Readable; length: number }> {
  let taken = false;
  return async () => {
    if (taken) throw new GeoSyncError('CHUNK_CONSUMED', `${what} cannot be sent twice`, { retryable: true });
    taken = true;
    return take();
  };
}
