// The pace of requests to one registry (pace.ts) on a clock moved by hand: no registry, no timers.
import { describe, expect, it } from 'vitest';
import type { EngineLogger } from '../shared/engine/index.js';
import { LONGEST_PACED_SPACING_SECONDS, RegistryPace, rateLimitBudget, type PaceClock } from '../shared/engine/registry/pace.js';

/** A clock that moves only when told to, firing its timers in order as it passes them. */
class ManualClock implements PaceClock {
  private time = 0;
  private timers: { at: number; fire: () => void; id: number }[] = [];
  private nextId = 0;

  now(): number {
    return this.time;
  }

  after(ms: number, fire: () => void): () => void {
    const id = this.nextId++;
    this.timers.push({ at: this.time + ms, fire, id });
    return () => (this.timers = this.timers.filter((timer) => timer.id !== id));
  }

  /** Moves to `ms` from now, firing each timer due on the way at its own time. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      await flush();
      const due = this.timers.filter((timer) => timer.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.timers = this.timers.filter((timer) => timer !== due);
      this.time = Math.max(this.time, due.at);
      due.fire();
    }
    this.time = end;
    await flush();
  }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Asks for `count` turns at once; returns when each was granted, on the clock, after moving it `forMs` in steps. */
async function grantTimes(pace: RegistryPace, clock: ManualClock, count: number, forMs: number, stepMs = 10): Promise<number[]> {
  const granted: number[] = [];
  for (let i = 0; i < count; i++) void pace.take().then(() => granted.push(clock.now()));
  for (let t = 0; t < forMs; t += stepMs) await clock.advance(stepMs);
  return granted;
}

/** The most turns granted in any window of `windowMs` (windows starting at a grant). */
function mostIn(granted: number[], windowMs: number): number {
  return Math.max(...granted.map((start) => granted.filter((t) => t >= start && t < start + windowMs).length));
}

describe('a configured requestsPerSecond', () => {
  it('lets one second’s worth go at once, then one every 1/rate seconds', async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(10, { clock });
    const granted = await grantTimes(pace, clock, 30, 3_000);
    expect(granted).toHaveLength(30);
    expect(granted.slice(0, 10)).toEqual(Array(10).fill(0));
    expect(granted.slice(10)).toEqual(Array.from({ length: 20 }, (_, i) => (i + 1) * 100));
    for (const windowMs of [100, 500, 1_000, 2_000]) expect(mostIn(granted, windowMs)).toBeLessThanOrEqual(10 + (10 * windowMs) / 1000);
  });

  it('takes fractions: 0.5 a second is one request at once, then one every two seconds', async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(0.5, { clock });
    expect(await grantTimes(pace, clock, 3, 5_000, 100)).toEqual([0, 2_000, 4_000]);
  });

  it('refills while idle, never past one second’s worth', async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(4, { clock });
    await grantTimes(pace, clock, 4, 10);
    await clock.advance(60_000);
    expect(await grantTimes(pace, clock, 6, 1_000)).toEqual([60_010, 60_010, 60_010, 60_010, 60_260, 60_510]);
  });

  it('counts a wait that ran its course as time passed, on a clock whose timers fire at once', async () => {
    const waits: number[] = [];
    const clock: PaceClock = { now: () => 0, after: (ms, fire) => (waits.push(ms), setImmediate(fire), () => undefined) };
    const pace = new RegistryPace(2, { clock });
    for (let i = 0; i < 5; i++) await pace.take();
    expect(waits).toEqual([500, 500, 500]);
  });
});

describe("the registry's RateLimit headers", () => {
  it('spread what remains over the time to the reset, when it is below the in-flight limit', async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(undefined, { clock });
    expect(pace.heed({ remaining: 4, resetSeconds: 8 }, true)).toBe(0.5);
    expect(await grantTimes(pace, clock, 4, 7_000, 100)).toEqual([0, 2_000, 4_000, 6_000]);
  });

  it("use the policy's window where no reset is given", async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(undefined, { clock });
    expect(pace.heed(rateLimitBudget({ 'ratelimit-limit': '100;w=60', 'ratelimit-remaining': '6;w=60' })!, true)).toBe(6 / 60);
    expect(await grantTimes(pace, clock, 2, 11_000, 1_000)).toEqual([0, 10_000]);
  });

  it("set no pace that would space requests more than LONGEST_PACED_SPACING_SECONDS apart (Docker Hub's six hours)", async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(undefined, { clock });
    expect(pace.heed(rateLimitBudget({ 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '6;w=21600' })!, true)).toBeUndefined();
    expect(pace.heed({ remaining: 0, resetSeconds: LONGEST_PACED_SPACING_SECONDS + 1 }, true)).toBeUndefined();
    expect(await grantTimes(pace, clock, 3, 1_000, 100)).toEqual([0, 0, 0]);
    expect(pace.heed({ remaining: 1, resetSeconds: LONGEST_PACED_SPACING_SECONDS }, true)).toBe(1 / LONGEST_PACED_SPACING_SECONDS);
  });

  it('with nothing left, hold every request until the window resets; then the pace lifts', async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(undefined, { clock });
    pace.heed({ remaining: 0, resetSeconds: 5 }, true);
    const granted = await grantTimes(pace, clock, 20, 6_000, 100);
    expect(granted).toEqual(Array(20).fill(5_000));
  });

  it('lift the pace as soon as an answer says more is left', async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(undefined, { clock });
    pace.heed({ remaining: 1, windowSeconds: 5 }, true);
    const granted: number[] = [];
    for (let i = 0; i < 5; i++) void pace.take().then(() => granted.push(clock.now()));
    await clock.advance(1_000);
    expect(granted).toEqual([0]);
    expect(pace.heed({ remaining: 99, windowSeconds: 5 }, false)).toBeUndefined();
    await clock.advance(0);
    expect(granted).toEqual([0, 1_000, 1_000, 1_000, 1_000]);
  });

  it('and a configured rate: the lower of the two holds', async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(10, { clock });
    pace.heed({ remaining: 2, resetSeconds: 4 }, true);
    expect(await grantTimes(pace, clock, 3, 5_000, 100)).toEqual([0, 2_000, 4_000]);
    // The window has reset: the configured rate alone, with its burst back as it refills.
    expect(await grantTimes(pace, clock, 12, 1_000)).toEqual([...Array(10).fill(5_000), 5_100, 5_200]);
  });

  it('take the requests still in flight from what is left: each will be counted', () => {
    const pace = new RegistryPace(undefined, { clock: new ManualClock() });
    expect(pace.heed({ remaining: 5, resetSeconds: 10 }, true, { sentAt: 1, othersInFlight: 3 })).toBe(0.2);
    expect(pace.heed({ remaining: 2, resetSeconds: 10 }, true, { sentAt: 2, othersInFlight: 5 })).toBe(0);
  });

  it('change nothing when they answer a request sent before one already heeded (answers out of order)', () => {
    const pace = new RegistryPace(undefined, { clock: new ManualClock() });
    expect(pace.heed({ remaining: 2, resetSeconds: 10 }, true, { sentAt: 5 })).toBe(0.2);
    expect(pace.heed({ remaining: 90, resetSeconds: 10 }, false, { sentAt: 3 })).toBe(0.2);
    expect(pace.heed({ remaining: 90, resetSeconds: 10 }, false, { sentAt: 6 })).toBeUndefined();
  });

  it('while the pace holds, leave no more than the last answer left less the turns granted since (requests reach it out of order)', async () => {
    const clock = new ManualClock();
    const pace = new RegistryPace(undefined, { clock });
    expect(pace.heed({ remaining: 4, resetSeconds: 4 }, true, { sentAt: 1 })).toBe(1);
    await grantTimes(pace, clock, 2, 1_000);
    expect(pace.heed({ remaining: 4, resetSeconds: 4 }, true, { sentAt: 2 })).toBe(0.5);
    expect(pace.heed({ remaining: 1, resetSeconds: 4 }, true, { sentAt: 3 })).toBe(0.25);
  });

  it('say so once a run, at warn, with what the registry said', () => {
    const warnings: unknown[] = [];
    const logger: EngineLogger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (message, detail) => void warnings.push({ message, detail }),
      error: () => undefined,
    };
    const pace = new RegistryPace(undefined, { registry: 'hub.example', logger, clock: new ManualClock() });
    pace.heed({ remaining: 50, windowSeconds: 60 }, false);
    pace.heed({ remaining: 3, windowSeconds: 60, resetSeconds: 30 }, true);
    pace.heed({ remaining: 2, windowSeconds: 60, resetSeconds: 29 }, true);
    expect(warnings).toEqual([
      { message: 'registry rate limit nearly spent; slowing down', detail: { registry: 'hub.example', remaining: 3, windowSeconds: 60, resetSeconds: 30 } },
    ]);
  });
});

describe('rateLimitBudget reads the headers leniently', () => {
  it.each([
    ["Docker Hub's", { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '76;w=21600' }, { remaining: 76, rateLimit: 100, windowSeconds: 21600 }],
    [
      "the IETF draft's, with a reset",
      { 'ratelimit-limit': '10', 'ratelimit-remaining': '3', 'ratelimit-reset': '7' },
      { remaining: 3, rateLimit: 10, resetSeconds: 7 },
    ],
    ['a window in the policy header', { 'ratelimit-remaining': '3', 'ratelimit-policy': '10;w=60' }, { remaining: 3, windowSeconds: 60 }],
    [
      'a window in the limit header only',
      { 'ratelimit-limit': '10, 10;w=1, 50;w=60', 'ratelimit-remaining': ' 3 ' },
      { remaining: 3, rateLimit: 10, windowSeconds: 1 },
    ],
    ['a reset as a Unix time', { 'ratelimit-remaining': '3', 'ratelimit-reset': '1700000030' }, { remaining: 3, resetSeconds: 30 }],
  ])('%s', (_name, headers, budget) => {
    expect(rateLimitBudget(headers, 1_700_000_000_000)).toEqual(budget);
  });

  it('is undefined without a remaining count', () => {
    expect(rateLimitBudget({ 'ratelimit-limit': '100;w=21600' })).toBeUndefined();
    expect(rateLimitBudget({ 'ratelimit-remaining': 'many' })).toBeUndefined();
  });
});
