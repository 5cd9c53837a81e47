/** Where the limit starts, and the floor that queueing alone never pushes it below (429/503 may). */
export const BASE_LIMIT = 16;

/**
 * The rate a registry is taken to serve until its round trips say otherwise: 2 requests a
 * millisecond, about what one loopback docker-registry on two cores serves (the bench's registries
 * queue past 40-60 in flight at 25 ms). Times the measured distance it is the bandwidth-delay
 * product the limit may jump to in one round: 50 at 25 ms, 160 at 80 ms, 300 at 150 ms. A registry
 * that serves less shows it in the next round as queueing, and the limit falls.
 */
export const ASSUMED_REQUESTS_PER_MS = 2;

/**
 * Requests in flight to one registry, following the round trip as TCP Vegas does.
 *
 * The least round trip seen (send to response headers) is the distance. Once per round (`limit`
 * answers), the round's fastest answer tells how many requests queue at the registry:
 * `limit × (1 − least / fastest)`, as Linux's Vegas reads it (the fastest, not the mean, so a
 * burst of late answers from our own busy event loop is not taken for the registry's queue).
 * - Fewer than `alpha` queued, and the round's median under twice the distance: the wait is
 *   distance, not load, so the limit grows by a quarter, or at once to the bandwidth-delay product
 *   of the distance (`ASSUMED_REQUESTS_PER_MS × least`) when that is more and the registry has not
 *   queued nor throttled in this run, up to the ceiling. Growing by a quarter a round, 16 takes 13
 *   rounds to reach 256: at 150 ms that is two seconds of every run spent below what the route
 *   holds. The jump makes it one round. Once the registry has queued it is not taken again: it
 *   would throw the limit back past what the registry showed it serves, round after round.
 *   The jump is also taken before a full round, when every request sent has answered (the
 *   listing before its HEADs), and the first full round after any jump judges it: one that does
 *   not show distance sets the limit to what it shows the route holds unqueued (`limit × least /
 *   median`, Little's law), never below where it jumped from.
 * - More than `beta` queued: the registry is queueing, so it shrinks by an eighth, down to the base.
 * - Otherwise it holds. A near registry that is busy answers far slower than its least round
 *   trip, so it stays at the base, today's fixed limit.
 *
 * The least round trip is kept for the whole run (one CLI run, one Lambda invocation): a windowed
 * one drifts up to the round trip of a steady queue, and a busy registry would then look far away
 * and be pushed harder. The price: a route that grows longer mid-run reads as queueing, so the
 * limit falls back to the base until the run ends.
 *
 * A throttling answer (429, 503) halves the limit; a burst of them, to requests sent under the old
 * limit, halves it only once. Below the base it climbs back by one per round, as TCP's window does.
 */
export class AdaptiveLimit {
  private current: number;
  private highestSeen: number;
  private readonly base: number;
  private inFlight = 0;
  /** Bumped at each halving; answers to requests sent before it do not halve again. */
  private epoch = 0;
  private readonly waiting: (() => void)[] = [];
  private answers = 0;
  private roundTrips: number[] = [];
  private leastRoundTripMs = Infinity;
  /** The registry queued or throttled in this run: from then on the limit grows by a quarter only. */
  private hasPushedBack = false;
  /** The limit before a jump to the bandwidth-delay product, until the next full round has judged it. */
  private jumpedFrom: number | undefined;
  /** What the registry last said it has left of its rate limit (holdAtMost). */
  private remainingCap = Infinity;

  /** `ceiling`: never more in flight (the operator's cap); the limit starts at the base, or the ceiling when lower. */
  constructor(private readonly ceiling: number) {
    this.base = Math.min(BASE_LIMIT, ceiling);
    this.current = this.base;
    this.highestSeen = this.base;
  }

  get limit(): number {
    return this.current;
  }

  /** The highest the limit has been. */
  get highest(): number {
    return this.highestSeen;
  }

  /** Slots taken now. */
  get active(): number {
    return this.inFlight;
  }

  /** Waits for a free slot; pass the returned ticket to `release`. */
  async acquire(): Promise<number> {
    if (this.inFlight < this.current && this.waiting.length === 0) this.inFlight++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    return this.epoch;
  }

  /**
   * `roundTripMs`: send to response headers, when that measures the registry (not a body we
   * streamed up, nor a failed connection). A streamed download holds its slot until its body is
   * done, but only its time to headers counts here.
   */
  release(ticket: number, throttled: boolean, roundTripMs?: number): void {
    this.inFlight--;
    if (throttled) {
      this.hasPushedBack = true;
      if (ticket === this.epoch) {
        this.epoch++;
        this.setLimit(Math.max(1, Math.floor(this.current / 2)));
      }
      this.answers = 0;
      this.roundTrips = [];
    } else {
      if (roundTripMs !== undefined) {
        this.roundTrips.push(roundTripMs);
        this.leastRoundTripMs = Math.min(this.leastRoundTripMs, roundTripMs);
      }
      if (++this.answers >= this.current) this.endRound();
      else if (this.inFlight === 0 && this.waiting.length === 0) this.jumpWhenIdleShowsDistance();
    }
    while (this.waiting.length > 0 && this.inFlight < this.current) {
      this.inFlight++;
      this.waiting.shift()!();
    }
  }

  /**
   * The registry says how many requests it has left (`RateLimit-Remaining`, on each answer that
   * carries it): never more in flight than that, so the last of its budget is not spent in one
   * burst it then refuses, until an answer says more is left. Below the limit it counts as
   * pushing back: the limit climbs again by rounds, not by a jump.
   */
  holdAtMost(remaining: number): void {
    this.remainingCap = Math.max(1, remaining);
    if (this.remainingCap >= this.current) return;
    this.hasPushedBack = true;
    this.jumpedFrom = undefined;
    this.current = this.remainingCap;
  }

  private endRound(): void {
    const round = this.judgeRound();
    const jumpedFrom = this.jumpedFrom;
    this.jumpedFrom = undefined;
    this.answers = 0;
    this.roundTrips = [];
    if (this.current < this.base) return this.setLimit(this.current + 1);
    // Answers without a round trip (streamed uploads) say nothing about queueing: hold.
    if (!round) return;
    if (jumpedFrom !== undefined && !round.showsDistance) {
      // The first full round after a jump judges it. One that does not show distance sets the
      // limit at once, not by eighths, to what that round shows the route holds unqueued: by
      // Little's law the registry served `limit / median` a millisecond, which times the distance
      // is `limit × least / median` (a far registry that serves less than assumed keeps what
      // hides its distance; a near one whose listing was slow goes back to where it jumped from).
      this.hasPushedBack = true;
      return this.setLimit(Math.max(jumpedFrom, Math.floor((this.current * this.leastRoundTripMs) / round.median)));
    }
    if (round.showsDistance) {
      const grown = Math.min(this.ceiling, this.current + Math.max(1, Math.floor(this.current / 4)));
      if (!this.jumpToDistance(grown)) this.setLimit(grown);
    } else if (round.queued > round.beta) {
      this.hasPushedBack = true;
      this.setLimit(Math.max(this.base, this.current - Math.max(1, Math.floor(this.current / 8))));
    }
  }

  /**
   * Every request sent has answered and none waits, before a full round: the work in hand was
   * smaller than the limit (the listing before its HEADs). Waiting for a full round would spend a
   * round trip at the base before the HEADs go out, so answers that show distance and no queue
   * take the jump now. Only the jump: an idle pipe says nothing of what more requests would meet,
   * so it neither grows the limit by a quarter nor shrinks it. Without a jump the samples go on
   * into the round.
   */
  private jumpWhenIdleShowsDistance(): void {
    if (this.current < this.base || !this.judgeRound()?.showsDistance) return;
    if (!this.jumpToDistance(this.current)) return;
    this.answers = 0;
    this.roundTrips = [];
  }

  /**
   * The jump, from either kind of round: to the bandwidth-delay product of the distance when that
   * is more than `otherwise`, remembering where it jumped from for the next full round to judge.
   */
  private jumpToDistance(otherwise: number): boolean {
    const target = Math.min(this.ceiling, this.distanceHolds());
    if (target <= otherwise) return false;
    this.jumpedFrom = this.current;
    this.setLimit(target);
    return true;
  }

  /** How many requests the round's answers show queued at the registry, and whether distance, not load, explains the wait. */
  private judgeRound(): { queued: number; beta: number; median: number; showsDistance: boolean } | undefined {
    const roundTrips = this.roundTrips.sort((a, b) => a - b);
    if (roundTrips.length === 0) return undefined;
    const least = this.leastRoundTripMs;
    const queued = this.current * (1 - least / roundTrips[0]!);
    const median = roundTrips[Math.floor(roundTrips.length / 2)]!;
    const distanceDominates = median < 2 * least;
    // Vegas's thresholds grow with the log of the limit, so a large limit tolerates a little jitter.
    const alpha = 3 * Math.log10(this.current);
    return { queued, beta: 2 * alpha, median, showsDistance: queued < alpha && distanceDominates };
  }

  /** The bandwidth-delay product of the least round trip at the assumed rate; 0 once the registry has pushed back. */
  private distanceHolds(): number {
    return this.hasPushedBack ? 0 : Math.floor(ASSUMED_REQUESTS_PER_MS * this.leastRoundTripMs);
  }

  private setLimit(limit: number): void {
    this.current = Math.min(limit, this.remainingCap);
    this.highestSeen = Math.max(this.highestSeen, this.current);
  }
}
