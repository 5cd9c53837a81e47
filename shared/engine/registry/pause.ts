import { backoffDelay } from '../base/backoff.js';

/**
 * A registry's rate limit holds every request to it, not just the one that was refused.
 *
 * A throttling answer (429, or 503 with Retry-After) makes its request wait before it is sent
 * again; while any such wait runs, the registry is paused: no request of this process is sent to
 * it (new ones, queued ones, and retries whose own wait ended first) until the last wait has
 * passed. Without the pause each refused request backs off on its own while the others keep
 * coming, and a registry that meters abuse counts every one of them.
 *
 * A request is checked before it queues for a slot and again once granted one, holding the slot
 * until the pause ends: when it does, no more than the (halved) in-flight limit go out.
 *
 * The pause lasts as long as the waits themselves (they run through the transport's `sleep`), so
 * a test that records waits rather than spending them is not held either.
 *
 * Where the registry gives no Retry-After, consecutive pauses back off as one: `streak` counts the
 * pauses since the registry last answered without throttling, and the next wait is the backoff of
 * that streak when it is longer than the request's own.
 */
export class RegistryPause {
  private holders = 0;
  private resume: (() => void) | undefined;
  private resumed: Promise<void> | undefined;
  private throttledStreak = 0;

  /** Pauses since the registry last answered without throttling. */
  get streak(): number {
    return this.throttledStreak;
  }

  /**
   * A throttled wait without Retry-After (`own`: the request's backoff) is at least the backoff of
   * the registry's streak of pauses (a pause now running counted once), so a request refused for
   * the first time in the third pause does not come back after the first pause's wait. The whole
   * step, without jitter: the pause already gathers this process's requests into one wait, and
   * the streak must outlast a refusal window within the retries (250 + 500 + 1000 ms by the fourth).
   */
  atLeastStreakBackoff(own: number, policy: { baseMs: number; capMs: number }): number {
    const attempt = this.holders > 0 ? this.throttledStreak - 1 : this.throttledStreak;
    return Math.max(
      own,
      backoffDelay(attempt, policy, () => 1),
    );
  }

  /** Whether a pause runs now. */
  get paused(): boolean {
    return this.resumed !== undefined;
  }

  /** Resolves at once, or when the pause now running has ended. */
  async clear(): Promise<void> {
    while (this.resumed) await this.resumed;
  }

  /** Holds the registry while `wait` runs (the refused request's own wait before it is sent again). */
  async hold(wait: Promise<void>): Promise<void> {
    if (this.holders++ === 0) {
      this.throttledStreak++;
      this.resumed = new Promise<void>((resolve) => (this.resume = resolve));
    }
    try {
      await wait;
    } finally {
      if (--this.holders === 0) {
        const resume = this.resume;
        this.resumed = this.resume = undefined;
        resume?.();
      }
    }
  }

  /** The registry answered without throttling: the next pause starts the backoff again. */
  answered(): void {
    this.throttledStreak = 0;
  }
}

/** Answers that pause the whole registry: a 429, and a 503 that says when to come back. */
export function pausesRegistry(status: number | undefined, retryAfter: string | undefined): boolean {
  return status === 429 || (status === 503 && retryAfter !== undefined);
}
