// The in-flight limit, fed measured round trips by hand: no registry, no timers.
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONCURRENCY } from '../shared/engine/base/concurrency.js';
import { ASSUMED_REQUESTS_PER_MS, AdaptiveLimit, BASE_LIMIT } from '../shared/engine/registry/limit.js';

/** A registry far away that never queues: every round trip is the distance, with a little jitter. */
const distance = (ms: number) => (_limit: number, i: number) => ms + (i % 7) * 0.05;

/**
 * A near registry whose CPU is the floor: it serves `perMs` requests a millisecond, so with
 * `limit` in flight each waits behind the others (what the loopback bench sees).
 */
const busy =
  (perMs: number, distanceMs = 0.2) =>
  (limit: number) =>
    distanceMs + limit / perMs;

/**
 * Keeps the limit's worth in flight, as a worker pool does, and answers `answers` of them, oldest
 * first, each after `roundTrip(limit, i)`; then answers the rest the same way (the batch ends).
 * Returns the limit after each of the first `answers`.
 */
async function drive(limit: AdaptiveLimit, answers: number, roundTrip: (limit: number, i: number) => number | undefined): Promise<number[]> {
  const seen: number[] = [];
  const held: number[] = [];
  for (let i = 0; i < answers; i++) {
    while (limit.active < limit.limit) held.push(await limit.acquire());
    limit.release(held.shift()!, false, roundTrip(limit.limit, i));
    seen.push(limit.limit);
  }
  for (let i = answers; held.length > 0; i++) limit.release(held.shift()!, false, roundTrip(limit.limit, i));
  return seen;
}

/** A few requests alone (the probes and a listing), all answered before anything else is sent. */
async function alone(limit: AdaptiveLimit, roundTrips: number[]): Promise<void> {
  const tickets = await Promise.all(roundTrips.map(() => limit.acquire()));
  tickets.forEach((ticket, i) => limit.release(ticket, false, roundTrips[i]));
}

describe('AdaptiveLimit following the round trip', () => {
  it('starts at the base, or at the ceiling when the operator set it lower', () => {
    expect(new AdaptiveLimit(64).limit).toBe(BASE_LIMIT);
    expect(new AdaptiveLimit(8).limit).toBe(8);
  });

  it('grows under pure latency, up to the ceiling and no further', async () => {
    const limit = new AdaptiveLimit(64);
    const seen = await drive(limit, 2000, distance(25));
    expect(limit.limit).toBe(64);
    expect(Math.max(...seen)).toBe(64);
    expect(limit.highest).toBe(64);
  });

  it('holds at the base under queueing: a near busy registry is not pushed harder', async () => {
    const limit = new AdaptiveLimit(64);
    // A first quiet answer sets the minimum; every later one waits behind the others in flight.
    const seen = await drive(limit, 20000, (current, i) => (i === 0 ? 0.2 : busy(4)(current)));
    expect(Math.max(...seen)).toBe(BASE_LIMIT);
    expect(limit.limit).toBe(BASE_LIMIT);
  });

  it('holds at the base when a near registry answers some requests at once but most late (the spread of a busy one)', async () => {
    const limit = new AdaptiveLimit(64);
    const seen = await drive(limit, 5000, (_current, i) => (i % 3 === 0 ? 1 : 12));
    expect(Math.max(...seen)).toBe(BASE_LIMIT);
  });

  it('grows far away until the registry queues, then settles between the two', async () => {
    const limit = new AdaptiveLimit(128);
    // 25 ms away, serving 2 requests a millisecond: 50 in flight is what the route holds.
    await drive(limit, 20000, (current) => 25 + Math.max(0, current - 50) / 2);
    expect(limit.limit).toBeGreaterThan(BASE_LIMIT);
    expect(limit.limit).toBeLessThan(80);
  });

  it('shrinks when round trips inflate after growing, but queueing alone never takes it below the base', async () => {
    const limit = new AdaptiveLimit(64);
    await drive(limit, 2000, distance(25));
    expect(limit.limit).toBe(64);
    const seen = await drive(limit, 1000, () => 75);
    expect(limit.limit).toBe(BASE_LIMIT);
    expect(Math.min(...seen)).toBe(BASE_LIMIT);
  });

  it('halves on 429 once per burst, below the base too, then climbs back one per round', async () => {
    const limit = new AdaptiveLimit(64);
    await drive(limit, 2000, distance(25));
    const burst = await Promise.all(Array.from({ length: 64 }, () => limit.acquire()));
    for (const ticket of burst) limit.release(ticket, true);
    expect(limit.limit).toBe(32);
    for (let i = 0; i < 3; i++) limit.release(await limit.acquire(), true);
    expect(limit.limit).toBe(4);
    await drive(limit, 4, distance(25));
    expect(limit.limit).toBe(5);
    await drive(limit, 5000, distance(25));
    expect(limit.limit).toBe(64);
  });

  it('takes no round trip from answers without one (a body streamed up): they hold the limit', async () => {
    const limit = new AdaptiveLimit(64);
    await drive(limit, 2000, () => undefined);
    expect(limit.limit).toBe(BASE_LIMIT);
  });

  it('keeps the minimum for the run: a steady queue never passes for distance', async () => {
    const limit = new AdaptiveLimit(64);
    await drive(limit, 1000, distance(5));
    expect(limit.limit).toBe(64);
    // The route (or the registry's load) changed: round trips twelve times the minimum from now on.
    const seen = await drive(limit, 20000, distance(60));
    expect(limit.limit).toBe(BASE_LIMIT);
    expect(Math.max(...seen.slice(1000))).toBe(BASE_LIMIT);
  });
});

describe('AdaptiveLimit far away: distance buys concurrency', () => {
  it('passes 64 by default: the ceiling is 256 unless the operator sets --concurrency', () => {
    expect(DEFAULT_CONCURRENCY).toBe(256);
  });

  it('at 150 ms jumps from 16 to the ceiling in one round, not thirteen', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    const firstRound = await drive(limit, BASE_LIMIT, distance(150));
    expect(firstRound.slice(0, -1).every((l) => l === BASE_LIMIT)).toBe(true);
    // 2 requests a millisecond times 150 ms is 300: more than the ceiling.
    expect(limit.limit).toBe(256);
    await drive(limit, 5000, distance(150));
    expect(limit.highest).toBe(256);
  });

  it('at 80 ms jumps to the bandwidth-delay product of the distance, then grows by a quarter a round', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    await drive(limit, BASE_LIMIT, distance(80));
    expect(limit.limit).toBe(ASSUMED_REQUESTS_PER_MS * 80);
    const seen = await drive(limit, 400, distance(80));
    expect(seen.find((l) => l > 160)).toBe(200);
  });

  it('at 25 ms jumps only as far as 25 ms holds at the assumed rate (50)', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    await drive(limit, BASE_LIMIT, distance(25));
    expect(limit.limit).toBe(50);
  });

  it("never passes the operator's --concurrency, however far", async () => {
    const limit = new AdaptiveLimit(64);
    const seen = await drive(limit, 5000, distance(150));
    expect(Math.max(...seen)).toBe(64);
    expect(limit.highest).toBe(64);
  });

  it('a far registry that queues after the jump pulls it down to what it serves, and not below the base', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    // 150 ms away, serving 1 request a millisecond: past 150 in flight, each waits behind the rest.
    const roundTrip = (current: number) => 150 + Math.max(0, current - 150);
    const seen = await drive(limit, 20000, roundTrip);
    expect(Math.max(...seen)).toBe(256);
    expect(limit.limit).toBeGreaterThanOrEqual(150);
    expect(limit.limit).toBeLessThan(180);
  });

  it('halves on 429 after the jump, as near', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    await drive(limit, BASE_LIMIT, distance(150));
    const burst = await Promise.all(Array.from({ length: 256 }, () => limit.acquire()));
    for (const ticket of burst) limit.release(ticket, true);
    expect(limit.limit).toBe(128);
  });

  it('jumps on the listing: when every request sent has answered, answers that show distance take the jump before the HEADs', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    // The GitLab probe, the referrers probe and the tag listing, 150 ms away, the listing a little slower.
    await alone(limit, [150, 151, 190]);
    expect(limit.limit).toBe(256);
  });

  it('takes no jump on a drained pipe near, and never shrinks on one', async () => {
    const near = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    await alone(near, [0.4, 0.5]);
    expect(near.limit).toBe(BASE_LIMIT);
    // Lone answers far apart in time (a slow listing after a quick probe) are no sign of queueing.
    const mixed = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    await alone(mixed, [0.4]);
    await alone(mixed, [400]);
    expect(mixed.limit).toBe(BASE_LIMIT);
  });

  it('undoes at once a jump the next full round does not bear out: a near registry whose listing was slow', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    // A listing that took the registry 300 ms to build reads as 300 ms of distance.
    await alone(limit, [300]);
    expect(limit.limit).toBe(256);
    // Its HEADs then answer near, the first in 1 ms, each later one behind those before it.
    const seen = await drive(limit, 300, (current, i) => 1 + Math.min(i, current) / 2);
    expect(seen[255]).toBe(BASE_LIMIT);
    expect(limit.highest).toBe(256);
    // Having queued, it takes no jump again.
    await alone(limit, [300]);
    expect(limit.limit).toBeLessThan(32);
  });

  it('sets the limit, after a jump, to what a far registry that serves less than assumed holds unqueued', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    await alone(limit, [150, 190]);
    expect(limit.limit).toBe(256);
    // 150 ms away, serving 0.4 requests a millisecond: the i-th answer of the burst waited behind i others.
    const seen = await drive(limit, 256, (current, i) => 150 + Math.min(i, current) / 0.4);
    // The round's median waited 150 + 128 / 0.4 = 470 ms: 256 x 150 / 470 is 81 (0.4 x 150 = 60 would hide the distance exactly).
    expect(seen[255]).toBe(Math.floor((256 * 150) / 470));
  });

  it('judges a jump taken after a full round the same way', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    // A full round at the base 150 ms away takes the jump, then the registry queues as above.
    const seen = await drive(limit, BASE_LIMIT + 256, (current, i) => (i < BASE_LIMIT ? 150 : 150 + Math.min(i - BASE_LIMIT, current) / 0.4));
    expect(seen[BASE_LIMIT - 1]).toBe(256);
    expect(seen[BASE_LIMIT + 255]).toBe(Math.floor((256 * 150) / 470));
  });

  it('keeps a jump the next full round bears out', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    await alone(limit, [150, 190]);
    await drive(limit, 1000, distance(150));
    expect(limit.limit).toBe(256);
  });

  it('does not jump near: a loopback registry (least round trip under a millisecond) grows by a quarter at most', async () => {
    const limit = new AdaptiveLimit(DEFAULT_CONCURRENCY);
    await drive(limit, BASE_LIMIT, distance(0.4));
    expect(limit.limit).toBe(20);
  });
});
