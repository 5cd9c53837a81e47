/**
 * A registry's rate limit holds every request to it, not just the one that was refused.
 *
 * A throttling answer (429, or 503 with Retry-After) makes its request wait before it is sent
 * again; while any such wait runs, the registry is paused: no request of this process is sent to
 * it (new ones, queued ones, and retries whose own wait ended first) until the last wait has
 * passed. Without the pause each refused request backs off on its own while the others keep
 * coming, and a registry that meters abuse counts every one of them.
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

  /** The attempt whose backoff the next throttled wait takes at least: the streak's, counting a pause now running once. */
  get backoffAttempt(): number {
    return this.holders > 0 ? this.throttledStreak - 1 : this.throttledStreak;
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
