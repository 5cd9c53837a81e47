/** The per-repository lock of local mode: one `sync`, `run` or `listen` job per (secondary, repository) on this machine at a time. */
import { createHash } from 'node:crypto';
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { GeoSyncError } from '../engine/index.js';

interface LockInfo {
  pid: number;
  host: string;
  repository: string;
  since: string;
}

/**
 * One sync per (secondary, repository) on this machine at a time: a lock file created with O_EXCL.
 * A lock left by a process that died (SIGKILL) is taken over; a live holder makes us decline.
 */
export function acquireRepositoryLock(secondaryHost: string, repository: string, dir = defaultLockDir()): () => void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${createHash('sha256').update(`${secondaryHost}/${repository}`).digest('hex').slice(0, 32)}.lock`);
  const info: LockInfo = { pid: process.pid, host: hostname(), repository, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify(info));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = readHolder(path);
      if (holder && isAlive(holder)) {
        throw new GeoSyncError(
          'SYNC_IN_PROGRESS',
          `another geo-sync (pid ${holder.pid}, since ${holder.since}) is syncing ${repository} to ${secondaryHost}; nothing was done, try again later`,
        );
      }
      rmSync(path, { force: true });
    }
  }
  throw new GeoSyncError('SYNC_IN_PROGRESS', `could not take the lock for ${repository} on ${secondaryHost}`);
}

/**
 * Runs `work` holding the repository's lock. When another live geo-sync holds it, `busy` decides
 * (it is given the refusal, whose message says who holds it); by default the refusal is thrown.
 */
export async function underRepositoryLock<T>(
  secondaryHost: string,
  repository: string,
  work: () => Promise<T>,
  busy: (refusal: GeoSyncError) => Promise<T> | T = (refusal) => {
    throw refusal;
  },
): Promise<T> {
  let unlock: () => void;
  try {
    unlock = acquireRepositoryLock(secondaryHost, repository);
  } catch (error) {
    if (!(error instanceof GeoSyncError) || error.code !== 'SYNC_IN_PROGRESS') throw error;
    return busy(error);
  }
  try {
    return await work();
  } finally {
    unlock();
  }
}

function defaultLockDir(): string {
  return join(process.env.GEO_SYNC_STATE_DIR ?? join(tmpdir(), 'geo-sync'), 'locks');
}

function readHolder(path: string): LockInfo | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockInfo;
  } catch {
    // Half-written or unreadable: its writer died mid-write, or it is being removed.
    return undefined;
  }
}

function isAlive(holder: LockInfo): boolean {
  if (holder.host !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
