/**
 * Requests in flight to one registry, adaptive as TCP's window is: a throttling answer (429, 503)
 * halves the limit, and each run of `limit` answers without one raises it by one, back up to the
 * configured ceiling. A burst of 429s to requests sent under the old limit halves it only once.
 */
export class AdaptiveLimit {
  private current: number;
  private inFlight = 0;
  private successes = 0;
  /** Bumped at each decrease; answers to requests sent before it do not decrease again. */
  private epoch = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly ceiling: number) {
    this.current = ceiling;
  }

  get limit(): number {
    return this.current;
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

  release(ticket: number, throttled: boolean): void {
    this.inFlight--;
    if (throttled) {
      if (ticket === this.epoch) {
        this.epoch++;
        this.current = Math.max(1, Math.floor(this.current / 2));
      }
      this.successes = 0;
    } else if (this.current < this.ceiling && ++this.successes >= this.current) {
      this.successes = 0;
      this.current++;
    }
    while (this.waiting.length > 0 && this.inFlight < this.current) {
      this.inFlight++;
      this.waiting.shift()!();
    }
  }
}
