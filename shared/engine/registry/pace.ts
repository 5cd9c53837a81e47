/**
 * The pace of requests to one registry: a token bucket every request of this process to it takes
 * from before it is sent (each attempt, retries included).
 *
 * Two limits set its rate, and the lower one holds:
 * - the operator's `requestsPerSecond` for the registry's entry, with a burst of one second's worth
 *   (at least one request): a client that has been idle may send that many at once;
 * - what the registry says is left of its rate limit (`RateLimit-Remaining`), once that is below the
 *   in-flight limit (as `AdaptiveLimit.holdAtMost` judges it): the remaining requests are spread
 *   over the time left in its window (`RateLimit-Reset`, else the policy's `w`), rather than spent
 *   at once and then refused, where that spaces them at most `LONGEST_PACED_SPACING_SECONDS`
 *   apart. Nothing left means nothing sent until the window resets (within that bound). The pace
 *   lifts as soon as an answer says more is left, or the window it was derived from has ended.
 */
import { performance } from 'node:perf_hooks';
import { silentLogger, type EngineLogger } from '../base/log.js';

/** What a registry says is left of its rate limit (rateLimitBudget). */
export interface RateLimitBudget {
  remaining: number;
  rateLimit?: number;
  /** The policy's window (`w=`), in seconds. */
  windowSeconds?: number;
  /** Seconds until the window resets (`RateLimit-Reset`). */
  resetSeconds?: number;
}

/**
 * What a registry says is left of its rate limit, read leniently: `RateLimit-Remaining` and
 * `RateLimit-Limit` as Docker Hub sends them (`76;w=21600`: the count, then the window in seconds)
 * or as the IETF draft does (the count alone, `RateLimit-Policy: 100;w=60` for the window,
 * `RateLimit-Reset` in seconds; a reset written as a Unix time, as some services do, is read as
 * one). Undefined without a remaining count.
 */
export function rateLimitBudget(headers: Record<string, string | undefined>, nowMs: number = Date.now()): RateLimitBudget | undefined {
  const remaining = leadingCount(headers['ratelimit-remaining']);
  if (remaining === undefined) return undefined;
  const rateLimit = leadingCount(headers['ratelimit-limit']);
  const window = [headers['ratelimit-remaining'], headers['ratelimit-limit'], headers['ratelimit-policy']]
    .map((value) => /;\s*w=(\d+)/.exec(value ?? '')?.[1])
    .find((found) => found !== undefined);
  let reset = leadingCount(headers['ratelimit-reset']);
  // Seconds since 1970 rather than seconds from now: no window is 30 years long.
  if (reset !== undefined && reset > 1e9) reset = Math.max(0, Math.ceil(reset - nowMs / 1000));
  return {
    remaining,
    ...(rateLimit !== undefined && { rateLimit }),
    ...(window !== undefined && { windowSeconds: Number(window) }),
    ...(reset !== undefined && { resetSeconds: reset }),
  };
}

function leadingCount(value: string | undefined): number | undefined {
  const match = value === undefined ? null : /^\s*(\d+)/.exec(value);
  return match ? Number(match[1]) : undefined;
}

/** Time for the pace: the default is the process's clock and timers; tests give a fake one. */
export interface PaceClock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Calls `fire` after `ms`; the returned function cancels it. */
  after(ms: number, fire: () => void): () => void;
}

export const processClock: PaceClock = {
  now: () => performance.now(),
  after: (ms, fire) => {
    const timer = setTimeout(fire, ms);
    return () => clearTimeout(timer);
  },
};

/** A rate in requests a second (Infinity: none), the most sent at once, and when it may change by itself (Infinity: never). */
export interface PaceLimit {
  rate: number;
  burst: number;
  until: number;
}

const UNPACED: PaceLimit = { rate: Infinity, burst: Infinity, until: Infinity };

/**
 * The widest spacing the registry's headers may set between two requests. Docker Hub's last few
 * of a six-hour budget would be an hour apart: a run would wait hours on requests that may not
 * even count (its HEADs are free). Past this the in-flight cap holds alone, and a refusal pauses
 * the registry for as long as its Retry-After says.
 */
export const LONGEST_PACED_SPACING_SECONDS = 10;

/**
 * A token bucket whose rate may change while requests wait for it. Waiting requests go in order;
 * one timer runs, for the head of the queue, and a change of rate wakes it to look again. A wait
 * that ran its course counts as that much time passed even on a clock that has not moved (a timer
 * that fires a little early; a test clock whose timers fire at once).
 */
export class TokenBucket {
  private tokens: number;
  private stamp: number;
  /** Time that waits have covered: `now` is never before it. */
  private covered = -Infinity;
  private limit: PaceLimit;
  private readonly queue: (() => void)[] = [];
  private cancelTimer: (() => void) | undefined;

  constructor(
    private readonly policy: (now: number) => PaceLimit,
    private readonly clock: PaceClock = processClock,
  ) {
    this.stamp = this.now();
    this.limit = policy(this.stamp);
    this.tokens = this.limit.burst;
  }

  now(): number {
    return Math.max(this.clock.now(), this.covered);
  }

  /** Resolves when a request may be sent. */
  take(): Promise<void> {
    this.update();
    if (this.queue.length === 0 && this.tokens >= 1) {
      this.tokens--;
      return Promise.resolve();
    }
    const granted = new Promise<void>((resolve) => this.queue.push(resolve));
    if (!this.cancelTimer) this.drain();
    return granted;
  }

  /** The policy may say otherwise now (a registry's answer): waiting requests look again. */
  changed(): void {
    this.update();
    if (this.queue.length === 0) return;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    this.drain();
  }

  /** Tokens earned at the old rate until now, then the policy's limit from now. */
  private update(): void {
    const now = this.now();
    const earned = this.limit.rate === Infinity ? Infinity : ((now - this.stamp) / 1000) * this.limit.rate;
    this.stamp = now;
    this.limit = this.policy(now);
    this.tokens = Math.min(this.limit.burst, this.tokens + earned);
  }

  /** Grants what the bucket holds, in order; then one timer for the next token or the limit's end. */
  private drain(): void {
    this.update();
    while (this.queue.length > 0 && this.tokens >= 1) {
      this.tokens--;
      this.queue.shift()!();
    }
    if (this.queue.length === 0) return;
    const now = this.now();
    const untilToken = this.limit.rate > 0 ? ((1 - this.tokens) / this.limit.rate) * 1000 : Infinity;
    const wait = Math.max(0, Math.min(untilToken, this.limit.until - now));
    // Neither a token nor an end to the limit ahead: only a change (changed()) moves the queue.
    if (wait === Infinity) return;
    this.cancelTimer = this.clock.after(wait, () => {
      this.cancelTimer = undefined;
      this.covered = Math.max(this.covered, now + wait);
      this.drain();
    });
  }
}

/** The pace of one registry: the operator's rate, and what its RateLimit headers leave (the module's comment). */
export class RegistryPace {
  /** The pace the registry's headers set: its limit, the requests it left us then, and our turns granted then. */
  private fromHeaders: (PaceLimit & { left: number; granted: number }) | undefined;
  /** Turns granted so far. */
  private granted = 0;
  private readonly bucket: TokenBucket;
  private warned = false;
  /** When the request whose answer last set the pace was sent. */
  private freshest = -Infinity;
  private readonly registry: string;
  private readonly logger: EngineLogger;

  /**
   * `requestsPerSecond`: the operator's rate for this registry (a positive number), or none.
   * `registry` and `logger`: where the start of pacing by the registry's headers is said, once.
   */
  constructor(
    private readonly requestsPerSecond: number | undefined,
    options: { registry?: string; logger?: EngineLogger; clock?: PaceClock } = {},
  ) {
    this.registry = options.registry ?? '';
    this.logger = options.logger ?? silentLogger;
    this.bucket = new TokenBucket((now) => this.limitAt(now), options.clock);
  }

  /** Resolves when the next request to the registry may be sent. */
  take(): Promise<void> {
    return this.bucket.take().then(() => void this.granted++);
  }

  /**
   * An answer's RateLimit headers. `nearlySpent`: what remains is below the in-flight limit. Then
   * the remaining requests are spread over the time left (none left: none until it resets), and the
   * first time in this run it is said at warn; else the pace they set lifts. Returns the rate they
   * set (requests a second), or undefined for none.
   *
   * `answered`: when its request was sent, and how many others are in flight now. The registry
   * counted what had reached it when it answered, so an answer to a request sent before one
   * already heeded is older news and changes nothing (answers come back out of order), and the
   * requests still in flight are taken from what it says is left: each will be counted. Requests
   * may also reach it out of order, so while the pace holds, what is left only goes down: never
   * more than the last answer left less the turns granted since.
   */
  heed(budget: RateLimitBudget, nearlySpent: boolean, answered: { sentAt?: number; othersInFlight?: number } = {}): number | undefined {
    if (nearlySpent && !this.warned) this.logger.warn('registry rate limit nearly spent; slowing down', { registry: this.registry, ...budget });
    this.warned ||= nearlySpent;
    const { sentAt = this.freshest, othersInFlight = 0 } = answered;
    if (sentAt < this.freshest) return this.fromHeaders?.rate;
    this.freshest = sentAt;
    const seconds = budget.resetSeconds ?? budget.windowSeconds;
    let left = Math.max(0, budget.remaining - othersInFlight);
    if (this.fromHeaders) left = Math.max(0, Math.min(left, this.fromHeaders.left - (this.granted - this.fromHeaders.granted)));
    if (!nearlySpent || seconds === undefined || seconds <= 0 || seconds / Math.max(1, left) > LONGEST_PACED_SPACING_SECONDS) {
      this.fromHeaders = undefined;
    } else {
      const rate = left / seconds;
      const until = this.bucket.now() + seconds * 1000;
      this.fromHeaders = { rate, burst: Math.min(Math.max(1, rate), left), until, left, granted: this.granted };
    }
    this.bucket.changed();
    return this.fromHeaders?.rate;
  }

  private limitAt(now: number): PaceLimit {
    if (this.fromHeaders && now >= this.fromHeaders.until) this.fromHeaders = undefined;
    const own = this.requestsPerSecond;
    const configured = own === undefined ? UNPACED : { rate: own, burst: Math.max(1, own), until: Infinity };
    const headers = this.fromHeaders ?? UNPACED;
    return { rate: Math.min(configured.rate, headers.rate), burst: Math.min(configured.burst, headers.burst), until: headers.until };
  }
}
