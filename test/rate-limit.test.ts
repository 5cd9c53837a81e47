import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegistryClient, syncRepository, validateRepositoryName, verifyRepository } from '../shared/engine/index.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { Transport } from '../shared/engine/registry/transport.js';
import { RegistryPace, type PaceClock } from '../shared/engine/registry/pace.js';
import type { EngineLogger } from '../shared/engine/index.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage } from './support/seed.js';

// A registry that rate-limits answers 429 to everything for a while. Every request of this process
// to it is held while one waits (pause.ts): the refusals counted here are those of the requests
// already in flight when the window opened, and of a lowered limit after each pause.

let registries: RegistryPair;
let primaryProxy: FaultProxy;
const CEILING = 16;
const TAGS = Array.from({ length: 24 }, (_, i) => `t${i}`);

beforeAll(async () => {
  registries = await startRegistryPair();
  primaryProxy = await startFaultProxy(registries.primary.url);
});
afterAll(async () => {
  await primaryProxy?.stop();
  await registries?.stop();
});

/**
 * Syncs `repo` through a primary that, from its `opensAt`th request on, answers 429 to everything
 * for `windowMs`; returns the 429s it answered and the client's own count of them.
 */
async function syncThroughRateLimit(repo: string, headers: Record<string, string>, windowMs = 2_000, opensAt = 30) {
  for (const tag of TAGS) await pushImage(registries.primary.url, repo, tag, { seed: `${repo}/${tag}` });
  let closesAt: number | undefined;
  let refused = 0;
  const before = primaryProxy.stats.requests;
  primaryProxy.setRule(({ n }) => {
    if (n === before + opensAt) closesAt = Date.now() + windowMs;
    if (closesAt === undefined || Date.now() >= closesAt) return undefined;
    refused++;
    return { kind: 'status', status: 429, headers };
  });
  const p = new RegistryClient({ url: primaryProxy.url }, { concurrency: CEILING });
  const s = new RegistryClient({ url: registries.secondary.url }, { concurrency: CEILING });
  try {
    const report = await syncRepository(p, s, validateRepositoryName(repo), { concurrency: CEILING });
    expect(report.failed).toEqual([]);
    expect(report.status).toBe('synced');
  } finally {
    primaryProxy.setRule(() => undefined);
    await Promise.all([p.close(), s.close()]);
  }
  return { refused, counted: p.stats.throttled, windowOpened: closesAt !== undefined };
}

/** Reads both registries back directly: every tag there, each manifest the same. */
async function expectSecondaryExact(repo: string): Promise<void> {
  const p = new RegistryClient({ url: registries.primary.url });
  const s = new RegistryClient({ url: registries.secondary.url });
  try {
    const report = await verifyRepository(p, s, validateRepositoryName(repo));
    expect({ missing: report.missing, extra: report.extra, mismatched: report.mismatched }).toEqual({ missing: [], extra: [], mismatched: [] });
    expect(report.secondaryChecksum).toBe(report.primaryChecksum);
    expect(report.secondaryTags).toBe(TAGS.length);
  } finally {
    await Promise.all([p.close(), s.close()]);
  }
}

describe('a registry that rate-limits (429) for two seconds', () => {
  it('with Retry-After: at most twice the in-flight limit of 429s, and the secondary exact', async () => {
    const repo = 'ratelimit/hinted';
    const { refused, counted, windowOpened } = await syncThroughRateLimit(repo, { 'retry-after': '1' });
    expect(windowOpened).toBe(true);
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThanOrEqual(2 * CEILING);
    expect(counted).toBe(refused);
    await expectSecondaryExact(repo);
  });

  it('without Retry-After: at most three times the in-flight limit of 429s, and the secondary exact', async () => {
    const repo = 'ratelimit/silent';
    const { refused, counted, windowOpened } = await syncThroughRateLimit(repo, {});
    expect(windowOpened).toBe(true);
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThanOrEqual(3 * CEILING);
    expect(counted).toBe(refused);
    await expectSecondaryExact(repo);
  });
});

describe('RateLimit-Remaining near zero', () => {
  it("holds no more in flight than the registry says it has left (Docker Hub's headers), and says so once", async () => {
    let remaining = 20;
    const server = createServer((_request, response) => {
      response.writeHead(200, { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': `${remaining};w=21600`, 'content-type': 'application/json' });
      response.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const warnings: { message: string; detail: unknown }[] = [];
    const logger: EngineLogger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (message, detail) => void warnings.push({ message, detail }),
      error: () => undefined,
    };
    // The pace's waits are recorded, not spent: none, since six hours over 1 left is past the widest spacing.
    const paceWaits: number[] = [];
    const clock: PaceClock = { now: () => 0, after: (ms, fire) => (paceWaits.push(ms), setImmediate(fire), () => undefined) };
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const transport = new Transport({ url }, { concurrency: 16, logger, pace: new RegistryPace(undefined, { registry: new URL(url).host, logger, clock }) });
    const ping = () => transport.send({ method: 'GET', target: '/v2/', scopes: [], expect: [200] });
    try {
      await ping();
      expect(transport.concurrencyLimit).toBe(16);
      remaining = 3;
      await ping();
      expect(transport.concurrencyLimit).toBe(3);
      remaining = 1;
      await ping();
      await ping();
      expect(transport.concurrencyLimit).toBe(1);
      // 3, then 1 left of 21,600 s: hours apart, so the in-flight cap holds alone and nothing waits.
      expect(paceWaits).toEqual([]);
      expect(warnings).toEqual([
        {
          message: 'registry rate limit nearly spent; slowing down',
          detail: { registry: expect.any(String), remaining: 3, rateLimit: 100, windowSeconds: 21600 },
        },
      ]);
    } finally {
      await transport.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
