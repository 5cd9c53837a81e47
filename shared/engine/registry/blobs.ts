import { Transform, type Readable } from 'node:stream';
import { GeoSyncError } from '../base/errors.js';
import type { Descriptor } from '../base/oci.js';
import { pull } from './scopes.js';
import type { Transport } from './transport.js';

/**
 * What one run knows of the blobs in this registry, shared by reads, uploads and deletes: a blob
 * is HEADed at most once per repository, and a blob known somewhere can be mounted from there.
 */
export class KnownBlobs {
  /** Blobs known present (or being asked about), per `repository@digest`. */
  private readonly presence = new Map<string, Promise<boolean>>();
  /** Where each blob is known to exist here, for cross-repository mounts. */
  private readonly homes = new Map<string, string>();

  /** Whether the blob is in `repository`, asking `head` only the first time (and again after a failed ask). */
  async exists(repository: string, digest: string, head: () => Promise<boolean>): Promise<boolean> {
    const key = `${repository}@${digest}`;
    let known = this.presence.get(key);
    if (!known) {
      known = head();
      this.presence.set(key, known);
      known.catch(() => this.presence.delete(key));
    }
    const present = await known;
    if (present) this.homes.set(digest, repository);
    return present;
  }

  /** After an upload or a mount stored it. */
  stored(repository: string, digest: string): void {
    this.presence.set(`${repository}@${digest}`, Promise.resolve(true));
    this.homes.set(digest, repository);
  }

  /** After a delete: asked again next time. */
  deleted(repository: string, digest: string): void {
    this.presence.delete(`${repository}@${digest}`);
  }

  /** A repository other than `except` where the blob is known to exist. */
  home(digest: string, except: string): string | undefined {
    const home = this.homes.get(digest);
    return home === except ? undefined : home;
  }
}

/** Blob reads: existence (HEAD, once per run) and streamed downloads. Writes are in uploads.ts. */
export class Blobs {
  constructor(
    private readonly transport: Transport,
    private readonly known: KnownBlobs,
  ) {}

  /** Whether the blob is in the repository; asked once per run (redirects followed). */
  blobExists(repository: string, digest: string): Promise<boolean> {
    return this.known.exists(repository, digest, () =>
      this.transport
        .send({ method: 'HEAD', target: `/v2/${repository}/blobs/${digest}`, scopes: pull(repository), expect: [200, 404], followRedirects: true })
        .then((response) => response.status === 200),
    );
  }

  /** A repository of this registry where the blob is known to exist, to mount from. */
  blobHome(digest: string, except: string): string | undefined {
    return this.known.home(digest, except);
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
      throw new GeoSyncError('INVALID_RESPONSE', `registry ${this.transport.host} answered a read of ${descriptor.digest} from ${offset} with another range`);
    }
    return { stream, length };
  }
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
