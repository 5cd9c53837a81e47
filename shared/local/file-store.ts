/**
 * StateStore for one machine: one JSON file per record under a state directory, written
 * atomically (temp file + rename). The lease works as on DynamoDB; the read-modify-write is
 * serialised per record within this process.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { UploadSession } from '../engine/index.js';
import {
  newRecord,
  normalizedRecord,
  withUploads,
  withoutLease,
  type FanOutCheckpoint,
  type RecordKey,
  type RepositoryRecord,
  type StateStore,
} from '../jobs/index.js';

export const DEFAULT_STATE_DIR = '.geo-sync';

export class FileStateStore implements StateStore {
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(readonly dir: string) {}

  // Every read goes through normalizedRecord: records written before the verify state spoke the
  // shared vocabulary ('succeeded', 'failed' for a mismatch) read in today's words.
  async get(key: RecordKey): Promise<RepositoryRecord | undefined> {
    const record = await readJson<RepositoryRecord>(this.recordPath(key));
    return record && normalizedRecord(record);
  }

  acquireLease(
    key: RecordKey,
    lease: { owner: string; expiresAt: number },
    now: number,
    fields: Partial<RepositoryRecord> = {},
  ): Promise<RepositoryRecord | undefined> {
    return this.locked(key, async () => {
      const current = (await this.get(key)) ?? newRecord(key, now);
      if (current.leaseExpiresAt !== undefined && current.leaseExpiresAt >= now) return undefined;
      const next = { ...current, ...fields, leaseOwner: lease.owner, leaseExpiresAt: lease.expiresAt, updatedAt: new Date(now).toISOString() };
      await writeJson(this.recordPath(key), next);
      return next;
    });
  }

  release(record: RepositoryRecord, owner: string): Promise<boolean> {
    return this.locked(record, async () => {
      const current = await this.get(record);
      if (current?.leaseOwner !== owner) return false;
      await writeJson(this.recordPath(record), withoutLease(record));
      return true;
    });
  }

  saveProgress(key: RecordKey, owner: string, uploads: UploadSession[]): Promise<boolean> {
    return this.locked(key, async () => {
      const current = await this.get(key);
      if (current?.leaseOwner !== owner) return false;
      await writeJson(this.recordPath(key), withUploads(current, uploads));
      return true;
    });
  }

  /** Every repository record, for `geo-sync status` and the summary of `geo-sync run` (the Lambda functions never scan). */
  async list(): Promise<RepositoryRecord[]> {
    const dir = join(this.dir, 'records');
    const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? [] : Promise.reject(error)));
    const records = await Promise.all(names.filter((n) => n.endsWith('.json')).map((n) => readJson<RepositoryRecord>(join(dir, n))));
    return records
      .filter((r): r is RepositoryRecord => r !== undefined)
      .map(normalizedRecord)
      .sort((a, b) => (a.repository + '\0' + a.secondary < b.repository + '\0' + b.secondary ? -1 : 1));
  }

  getCheckpoint(id: string): Promise<FanOutCheckpoint | undefined> {
    return readJson<FanOutCheckpoint>(join(this.dir, 'checkpoints', `${encodeURIComponent(id)}.json`));
  }

  putCheckpoint(checkpoint: FanOutCheckpoint): Promise<void> {
    return writeJson(join(this.dir, 'checkpoints', `${encodeURIComponent(checkpoint.id)}.json`), checkpoint);
  }

  private recordPath(key: RecordKey): string {
    return join(this.dir, 'records', `${encodeURIComponent(key.secondary)}@${encodeURIComponent(key.repository)}.json`);
  }

  /** Runs `work` after every earlier locked step on the same record has settled. */
  private locked<T>(key: RecordKey, work: () => Promise<T>): Promise<T> {
    const id = this.recordPath(key);
    const result = (this.locks.get(id) ?? Promise.resolve()).then(work, work);
    this.locks.set(
      id,
      result.catch(() => undefined),
    );
    return result;
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Readers never see a half-written file: write beside it, then rename over it. */
async function writeJson(path: string, value: unknown): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temp, `${JSON.stringify(value, null, 2)}\n`);
  await rename(temp, path);
}
