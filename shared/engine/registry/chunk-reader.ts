import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { GeoSyncError } from '../base/errors.js';

/**
 * Hands out a stream in consecutive pieces of exact lengths, one per chunk, hashing what passes.
 * Pulls only as fast as the chunk's request reads, so the source is never buffered whole.
 */
export class ChunkReader {
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
