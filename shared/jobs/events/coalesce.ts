/**
 * Coalescing: tags and digests named by events for one (repository, secondary) pair gather into
 * one pending set, and leave it as one job. Pure. Nothing is dropped: a set grown past
 * MAX_JOB_TAGS (tags and digests together) becomes a full sync of the repository, which covers
 * every tag and what refers to them.
 */
import { MAX_JOB_TAGS, type EventJob, type SyncMessage } from '../messages.js';
import type { ScopedSecondary } from '../ports.js';
import type { EventHints } from './notification.js';

/** The pending work of one pair. */
interface Pending {
  repository: string;
  secondary: string;
  tags: Set<string>;
  /** Manifests pushed or deleted by digest alone. */
  digests: Set<string>;
  /** The digest the latest push event announced per tag (a later delete clears it). */
  pushed: Map<string, string>;
  /** Earliest registry event behind these tags (epoch ms): the lag is measured from it. */
  eventAt: number;
  /** Earliest time the work was asked for (epoch ms): the lease judges a holder by it. */
  requestedAt: number;
  attempt?: number;
  /** A full sync is asked for instead (a referrer's subject under a tag scope: only a full read tells whether its tags are kept). */
  whole?: boolean;
}

export const pairKey = (pair: { repository: string; secondary: string }) => `${pair.secondary}\0${pair.repository}`;

export class PendingTags {
  private readonly pending = new Map<string, Pending>();

  /** Tags and digests for one pair; merged with any already pending for it. `pushed` maps a tag to the digest a push announced, or null after a delete. */
  add(work: {
    repository: string;
    secondary: string;
    tags: Iterable<string>;
    digests?: Iterable<string>;
    pushed?: Iterable<[string, string | null]>;
    eventAt: number;
    requestedAt: number;
    attempt?: number;
    whole?: boolean;
  }): void {
    const key = pairKey(work);
    let existing = this.pending.get(key);
    if (!existing) {
      existing = {
        repository: work.repository,
        secondary: work.secondary,
        tags: new Set(),
        digests: new Set(),
        pushed: new Map(),
        eventAt: work.eventAt,
        requestedAt: work.requestedAt,
      };
      this.pending.set(key, existing);
    }
    for (const tag of work.tags) existing.tags.add(tag);
    for (const digest of work.digests ?? []) existing.digests.add(digest);
    for (const [tag, digest] of work.pushed ?? []) {
      if (digest === null) existing.pushed.delete(tag);
      else existing.pushed.set(tag, digest);
    }
    existing.eventAt = Math.min(existing.eventAt, work.eventAt);
    existing.requestedAt = Math.min(existing.requestedAt, work.requestedAt);
    const attempt = Math.max(existing.attempt ?? 0, work.attempt ?? 0);
    if (attempt > 0) existing.attempt = attempt;
    if (work.whole) existing.whole = true;
  }

  /**
   * The hints of one notification, for every secondary whose scope keeps them; the count of those
   * no secondary keeps is returned (no work comes of them).
   */
  addHints({ hints, digests }: EventHints, secondaries: readonly ScopedSecondary[], receivedAt: number): { outOfScope: number } {
    let outOfScope = 0;
    for (const hint of hints) {
      const pushed: [string, string | null] = [hint.tag, hint.pushed ?? null];
      const keeping = secondaries.filter(({ scope }) => scope.hasRepository(hint.repository) && scope.tags.has(hint.tag));
      if (keeping.length === 0) outOfScope++;
      for (const { name: secondary } of keeping)
        this.add({ repository: hint.repository, secondary, tags: [hint.tag], pushed: [pushed], eventAt: hint.at, requestedAt: receivedAt });
    }
    // A push and a delete of a digest ask the same of the job: make it as the primary holds it now.
    for (const hint of digests) {
      const keeping = secondaries.filter(({ scope }) => scope.hasRepository(hint.repository));
      if (keeping.length === 0) outOfScope++;
      for (const { name: secondary, scope } of keeping) {
        // A referrer follows its subject's scope, and only a full read tells which tags hold the subject.
        const whole = !scope.tags.all;
        this.add({ repository: hint.repository, secondary, tags: [], digests: [hint.digest], eventAt: hint.at, requestedAt: receivedAt, whole });
      }
    }
    return { outOfScope };
  }

  /** An event job back from the queue (deferred, or tags and digests to do again). */
  addMessage(message: EventJob, now: number): void {
    this.add({
      ...message,
      tags: message.tags ?? [],
      pushed: Object.entries(message.pushed ?? {}),
      eventAt: message.eventAt ?? message.requestedAt ?? now,
      requestedAt: message.requestedAt ?? now,
    });
  }

  has(key: string): boolean {
    return this.pending.has(key);
  }

  keys(): string[] {
    return [...this.pending.keys()];
  }

  get size(): number {
    return this.pending.size;
  }

  /** Tags pending over every pair. */
  get tagCount(): number {
    let count = 0;
    for (const work of this.pending.values()) count += work.tags.size;
    return count;
  }

  /** Digests pending over every pair. */
  get digestCount(): number {
    let count = 0;
    for (const work of this.pending.values()) count += work.digests.size;
    return count;
  }

  /** Takes a pair's pending work away as one job message. */
  take(key: string): SyncMessage | undefined {
    const work = this.pending.get(key);
    if (!work) return undefined;
    this.pending.delete(key);
    return toJob(work);
  }

  /** Takes everything, one job per pair. */
  drain(): SyncMessage[] {
    return this.keys().map((key) => this.take(key)!);
  }
}

/** One pair's pending work as a message: an event job, or a forced full sync past MAX_JOB_TAGS. */
function toJob(work: Pending): SyncMessage {
  const pair = { repository: work.repository, secondary: work.secondary };
  // Forced, so a pair backing off after a failed sync does not skip it: these events must not be lost.
  if (work.whole || work.tags.size + work.digests.size > MAX_JOB_TAGS) return { ...pair, force: true, requestedAt: work.requestedAt };
  const pushed = [...work.pushed].filter(([tag]) => work.tags.has(tag)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    ...pair,
    ...(work.tags.size > 0 ? { tags: [...work.tags].sort() } : {}),
    ...(work.digests.size > 0 ? { digests: [...work.digests].sort() } : {}),
    ...(pushed.length > 0 ? { pushed: Object.fromEntries(pushed) } : {}),
    eventAt: work.eventAt,
    requestedAt: work.requestedAt,
    ...(work.attempt ? { attempt: work.attempt } : {}),
  };
}

/** The jobs for one notification's hints: one per (repository, secondary); and how many hints no secondary's scope keeps. */
export function jobsForHints(hints: EventHints, secondaries: readonly ScopedSecondary[], receivedAt: number): { jobs: SyncMessage[]; outOfScope: number } {
  const pending = new PendingTags();
  const { outOfScope } = pending.addHints(hints, secondaries, receivedAt);
  return { jobs: pending.drain(), outOfScope };
}

export const isEventJob = (message: SyncMessage): message is EventJob => message.tags !== undefined || message.digests !== undefined;

/**
 * Merges the event jobs of one batch (an SQS batch) per pair; any other message stays as it is.
 * Each result names the indexes of the messages it stands for, so that their outcome is shared.
 */
export function mergeJobs(messages: readonly SyncMessage[], now: number): { message: SyncMessage; from: number[] }[] {
  const merged = new Map<string, { pending: PendingTags; from: number[] }>();
  const out: { message: SyncMessage; from: number[] }[] = [];
  messages.forEach((message, index) => {
    if (!isEventJob(message)) return void out.push({ message, from: [index] });
    const key = pairKey(message);
    let group = merged.get(key);
    if (!group) merged.set(key, (group = { pending: new PendingTags(), from: [] }));
    group.pending.addMessage(message, now);
    group.from.push(index);
  });
  for (const group of merged.values()) out.push({ message: group.pending.drain()[0]!, from: group.from });
  return out;
}
