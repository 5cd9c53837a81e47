/**
 * Chunked uploads that outlive one invocation: the session a job keeps in its record, how big
 * the next chunk is, and which kept sessions to resume, keep or cancel. No requests here: the
 * registry client sends them, and the job saves what the book hands its hook.
 */

/**
 * A blob upload in progress on the secondary. `location` is the registry's newest upload URL
 * (registry 2.8 signs the upload state into its query): it is kept, never logged in full.
 */
export interface UploadSession {
  digest: string;
  location: string;
  /** Bytes the registry held after the last chunk we saw answered. */
  offset: number;
  size: number;
  /** Epoch ms the session was opened. */
  startedAt: number;
}

/**
 * Blobs at least this big are copied in chunks when the run has a deadline: below it a whole
 * copy fits in a few seconds at any link worth syncing over, and one PUT is cheaper than chunks.
 */
export const CHUNKED_UPLOAD_MIN_BYTES = 32 * 1024 * 1024;

/** A chunk aims at this much time, so the deadline is met and a killed invocation loses one chunk at most. */
export const CHUNK_TARGET_MS = 5_000;
export const MIN_CHUNK_BYTES = 1024 * 1024;
/** Bounds a chunk's retry cost and memory in proxies when the link is fast. */
export const MAX_CHUNK_BYTES = 64 * 1024 * 1024;
/** The first chunk, before any throughput is measured: a few seconds at a slow link. */
export const FIRST_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * A kept session older than this is cancelled and the blob copied afresh. Registries purge
 * uploads on their own after a week (docker-registry's default, 168 h); a day is far below that,
 * and a blob that needs longer is beyond this tool's links (10 GB in a day is 120 KB/s).
 */
export const SESSION_MAX_AGE_MS = 24 * 60 * 60 * 1000;

/**
 * The next chunk's size: CHUNK_TARGET_MS of the measured throughput, or the time left before the
 * deadline when that is shorter, within [MIN_CHUNK_BYTES, MAX_CHUNK_BYTES] and never past the blob's end.
 */
export function nextChunkBytes(input: { bytesPerSecond: number | undefined; msLeft: number; remaining: number }): number {
  const ms = Math.min(CHUNK_TARGET_MS, Math.max(0, input.msLeft));
  const wanted = input.bytesPerSecond === undefined ? FIRST_CHUNK_BYTES : Math.floor((input.bytesPerSecond * ms) / 1000);
  return Math.min(input.remaining, Math.max(MIN_CHUNK_BYTES, Math.min(MAX_CHUNK_BYTES, wanted)));
}

/** What to do with the sessions a run was given: resume the fresh ones by digest, cancel the stale. */
export function sortKeptSessions(sessions: readonly UploadSession[], now: number): { resumable: Map<string, UploadSession>; stale: UploadSession[] } {
  const resumable = new Map<string, UploadSession>();
  const stale: UploadSession[] = [];
  for (const session of sessions) {
    // Two sessions for one digest come only from a lost race; the newer one is kept.
    const other = resumable.get(session.digest);
    if (now - session.startedAt > SESSION_MAX_AGE_MS) stale.push(session);
    else if (other && other.startedAt >= session.startedAt) stale.push(session);
    else {
      if (other) stale.push(other);
      resumable.set(session.digest, session);
    }
  }
  return { resumable, stale };
}

/**
 * Whether an invocation moved any upload forward: some session now holds more bytes of its blob
 * than the record held before (a session restarted from zero counts only once it passes that).
 */
export function uploadsAdvanced(before: readonly UploadSession[] | undefined, after: readonly UploadSession[] | undefined): boolean {
  const held = new Map<string, number>();
  for (const session of before ?? []) held.set(session.digest, Math.max(held.get(session.digest) ?? 0, session.offset));
  return (after ?? []).some((session) => session.offset > (held.get(session.digest) ?? 0));
}

/** Sessions as they may be shown (status output, invocation results): without the Location and its signed state. */
export function shownUploads(sessions: readonly UploadSession[]): Omit<UploadSession, 'location'>[] {
  return sessions.map(({ location: _location, ...shown }) => shown);
}

/**
 * One run's upload sessions: those kept from earlier invocations (claimed by digest when their
 * blob is copied) and those in progress now. What it holds at the end is what the record keeps.
 */
export class UploadBook {
  private readonly kept: Map<string, UploadSession>;
  private readonly open = new Map<string, UploadSession>();
  /** Kept sessions too old to resume: cancelled at the start of the run. */
  readonly stale: UploadSession[];
  private readonly given: readonly UploadSession[];
  /** Handed to an upload, which resumes, finishes or cancels it: never cancelled here. */
  private readonly claimed = new Set<UploadSession>();
  private saving: Promise<unknown> = Promise.resolve();

  constructor(
    sessions: readonly UploadSession[],
    now: number,
    private readonly onProgress?: (sessions: UploadSession[]) => Promise<void>,
  ) {
    const sorted = sortKeptSessions(sessions, now);
    this.kept = sorted.resumable;
    this.stale = sorted.stale;
    this.given = sessions;
  }

  /** The kept session for a blob about to be copied, handed out once. */
  claim(digest: string): UploadSession | undefined {
    const session = this.kept.get(digest);
    this.kept.delete(digest);
    if (session) this.claimed.add(session);
    return session;
  }

  /** A chunk landed: the session as it stands now, saved through the hook before the next chunk. */
  async progress(session: UploadSession): Promise<void> {
    this.open.set(session.digest, session);
    // Saved one after another, in order: a save of older Locations landing last would leave the
    // record pointing at upload state the registry (2.8) refuses and cancels on resume.
    const snapshot = this.unfinished(true);
    const save = this.saving.then(() => this.onProgress?.(snapshot));
    this.saving = save.catch(() => undefined);
    await save;
  }

  /** An upload failed in a way a later run may resume from: keep its newest session. */
  hold(session: UploadSession): void {
    if (!this.open.has(session.digest)) this.open.set(session.digest, session);
  }

  /** The blob is on the secondary already: a kept session for it is not needed. */
  present(digest: string): void {
    this.kept.delete(digest);
  }

  /** The blob is stored, or its session is beyond use: nothing to keep. */
  settle(digest: string): void {
    this.open.delete(digest);
  }

  /**
   * The sessions to keep after the run: those in progress, and, when the deadline cut the run
   * short, the kept ones it never reached (a finished run did not need them).
   */
  unfinished(outOfTime: boolean): UploadSession[] {
    return [...this.open.values(), ...(outOfTime ? this.kept.values() : [])];
  }

  /**
   * Sessions given to the run that nothing needs any more (the blob is present, the tag is gone or
   * moved to another digest), neither claimed by an upload nor stale (both handled already): to cancel.
   */
  released(outOfTime: boolean): UploadSession[] {
    const keep = new Set(outOfTime ? this.kept.values() : []);
    const stale = new Set(this.stale);
    return this.given.filter((session) => !keep.has(session) && !stale.has(session) && !this.claimed.has(session));
  }
}
