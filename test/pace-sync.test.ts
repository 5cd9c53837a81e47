// The pace of requests to a registry, through real registries on loopback behind the counting proxy:
// an operator's requestsPerSecond, and a registry's RateLimit headers counting down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  endpointsFromEnv,
  openRegistry,
  parseSecondaries,
  syncRepository,
  validateRepositoryName,
  verifyRepository,
  type Registry,
} from '../shared/engine/index.js';
import { createAwsRuntime } from '../shared/aws/runtime.js';
import { lambdaContext } from './aws/support/event-source.js';
import { startFaultProxy, type Fault, type FaultProxy } from './support/fault-proxy.js';
import { startRegistryPair, type RegistryPair } from './support/registry.js';
import { pushImage } from './support/seed.js';

let registries: RegistryPair;
let primaryProxy: FaultProxy;
let secondaryProxy: FaultProxy;

beforeAll(async () => {
  registries = await startRegistryPair();
  primaryProxy = await startFaultProxy(registries.primary.url);
  secondaryProxy = await startFaultProxy(registries.secondary.url);
});
afterAll(async () => {
  await primaryProxy?.stop();
  await secondaryProxy?.stop();
  await registries?.stop();
});

async function seed(repo: string, tags: string[]): Promise<void> {
  for (const tag of tags) await pushImage(registries.primary.url, repo, tag, { seed: `${repo}/${tag}` });
}

/** Syncs `repo` between the two registries as opened from the configuration; returns the sync's report. */
async function syncConfigured(repo: string, env: Record<string, string>) {
  const endpoints = endpointsFromEnv(env);
  const primary = openRegistry(endpoints.primary);
  const secondary = openRegistry(endpoints.secondaries[0]!.endpoint);
  try {
    return { report: await syncRepository(primary, secondary, validateRepositoryName(repo), { concurrency: 16 }), throttled: primary.stats.throttled };
  } finally {
    await Promise.all([primary.close(), secondary.close()]);
  }
}

/** Reads both registries back directly, past the proxies: every tag there, each manifest the same. */
async function expectSecondaryExact(repo: string, tags: number): Promise<void> {
  const clients: Registry[] = [openRegistry({ url: registries.primary.url }), openRegistry({ url: registries.secondary.url })];
  try {
    const report = await verifyRepository(clients[0]!, clients[1]!, validateRepositoryName(repo));
    expect({ missing: report.missing, extra: report.extra, mismatched: report.mismatched }).toEqual({ missing: [], extra: [], mismatched: [] });
    expect(report.secondaryChecksum).toBe(report.primaryChecksum);
    expect(report.secondaryTags).toBe(tags);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
}

/** The most requests that arrived in any window of `windowMs` starting at an arrival. */
function mostArrivedIn(arrivals: number[], windowMs: number): number {
  return Math.max(...arrivals.map((start) => arrivals.filter((at) => at >= start && at < start + windowMs).length));
}

describe('requestsPerSecond on a secondary', () => {
  it('20 a second: the registry sees no more than 20 × seconds + a second’s burst in any window, and the secondary is exact', async () => {
    const repo = 'paced/configured';
    const tags = Array.from({ length: 16 }, (_, i) => `t${i}`);
    await seed(repo, tags);
    const from = secondaryProxy.log.length;
    const { report } = await syncConfigured(repo, {
      GEO_SYNC_PRIMARY_URL: registries.primary.url,
      GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'paced', url: secondaryProxy.url, requestsPerSecond: 20 }]),
    });
    expect(report.failed).toEqual([]);
    expect(report.status).toBe('synced');
    const arrivals = secondaryProxy.log.slice(from).map((request) => request.at);
    // Enough work for the pace to matter: unpaced, these arrive within a fraction of a second.
    expect(arrivals.length).toBeGreaterThan(60);
    // The bucket bounds when requests are sent; the proxy sees each as it arrives, up to an event
    // loop's turn later, so each window is allowed a quarter of a second more.
    for (const windowMs of [250, 500, 1_000, 2_000]) {
      expect(mostArrivedIn(arrivals, windowMs), `${windowMs} ms`).toBeLessThanOrEqual(20 + 20 * ((windowMs + 250) / 1000));
    }
    await expectSecondaryExact(repo, tags.length);
  });

  it("on AWS is the fleet's: each invocation takes its share over the invocations at once (60 over 20+10 is 2 a second)", async () => {
    const repo = 'paced/fleet';
    const tags = ['a', 'b', 'c', 'd'];
    await seed(repo, tags);
    await syncConfigured(repo, { GEO_SYNC_PRIMARY_URL: registries.primary.url, GEO_SYNC_SECONDARY_URL: registries.secondary.url });
    const runtime = createAwsRuntime(
      {
        GEO_SYNC_TABLE: 'state',
        AWS_REGION: 'us-east-1',
        GEO_SYNC_PRIMARY_URL: registries.primary.url,
        GEO_SYNC_SECONDARIES: JSON.stringify([{ name: 'paced', url: secondaryProxy.url, requestsPerSecond: 60 }]),
        GEO_SYNC_REGISTRY_MAX_IN_FLIGHT: '1920',
        GEO_SYNC_INVOCATIONS_AT_ONCE: '20+10',
      },
      async () => ({}),
    );
    const from = secondaryProxy.log.length;
    const report = await runtime.invoke(lambdaContext(), (opened) =>
      verifyRepository(opened.primary(), opened.secondary('paced'), validateRepositoryName(repo)),
    );
    expect(report).toMatchObject({ status: 'synced', primaryTags: tags.length });
    const arrivals = secondaryProxy.log.slice(from).map((request) => request.at);
    // The ping, the tag list and a HEAD a tag: unpaced, all within a few milliseconds.
    expect(arrivals.length).toBeGreaterThanOrEqual(tags.length + 1);
    expect(mostArrivedIn(arrivals, 1_000)).toBeLessThanOrEqual(2 + 2 * 1.25);
  });

  it.each([0, -1, 'fast', null])('refuses %j, naming the entry', (value) => {
    const entries = [{ name: 'hub', url: 'https://hub.example', requestsPerSecond: value }];
    expect(() => parseSecondaries(entries, 'GEO_SYNC_SECONDARIES')).toThrow(/^GEO_SYNC_SECONDARIES\[0\] \(hub\): requestsPerSecond/);
  });

  it.each(['0', '-1', 'fast', '1e3', 'Infinity'])('GEO_SYNC_PRIMARY_REQUESTS_PER_SECOND=%s is an error naming the variable', (value) => {
    const env = {
      GEO_SYNC_PRIMARY_URL: 'https://primary.example',
      GEO_SYNC_PRIMARY_REQUESTS_PER_SECOND: value,
      GEO_SYNC_SECONDARY_URL: 'https://secondary.example',
    };
    expect(() => endpointsFromEnv(env)).toThrow(/GEO_SYNC_PRIMARY_REQUESTS_PER_SECOND must be a positive number of requests a second/);
  });

  it('takes fractions, for the primary from the environment and for a secondary in a YAML-or-JSON entry', () => {
    const endpoints = endpointsFromEnv({
      GEO_SYNC_PRIMARY_URL: 'https://primary.example',
      GEO_SYNC_PRIMARY_REQUESTS_PER_SECOND: '0.5',
      GEO_SYNC_SECONDARIES: JSON.stringify([
        { name: 'a', url: 'https://a.example', requestsPerSecond: 2.5 },
        { name: 'b', url: 'https://b.example' },
      ]),
    });
    expect(endpoints.primary.requestsPerSecond).toBe(0.5);
    expect(endpoints.secondaries.map((site) => site.endpoint.requestsPerSecond)).toEqual([2.5, undefined]);
    // The stack parameter's default: empty is no pace.
    const unpaced = endpointsFromEnv({
      GEO_SYNC_PRIMARY_URL: 'https://primary.example',
      GEO_SYNC_PRIMARY_REQUESTS_PER_SECOND: '',
      GEO_SYNC_SECONDARY_URL: 'https://s.example',
    });
    expect(unpaced.primary.requestsPerSecond).toBeUndefined();
  });
});

/**
 * A primary whose rate limit allows `budget` requests in each fixed window of `windowMs` (from its
 * first request), refusing the rest with 429 (no Retry-After, as Docker Hub). With `headers` each
 * answer says what is left, as Docker Hub and the IETF draft write it. Returns the 429s it sent.
 */
function rateLimitPrimary(budget: number, windowMs: number, headers: boolean): { refused: () => number } {
  let windowStart: number | undefined;
  let used = 0;
  let refused = 0;
  primaryProxy.setRule((): Fault | undefined => {
    const now = Date.now();
    windowStart ??= now;
    if (now >= windowStart + windowMs) {
      windowStart += Math.floor((now - windowStart) / windowMs) * windowMs;
      used = 0;
    }
    const spent = used >= budget;
    if (!spent) used++;
    const said = {
      'ratelimit-limit': `${budget};w=${windowMs / 1000}`,
      'ratelimit-remaining': `${budget - used};w=${windowMs / 1000}`,
      'ratelimit-reset': String(Math.ceil((windowStart + windowMs - now) / 1000)),
    };
    if (spent) refused++;
    if (spent) return { kind: 'status', status: 429, headers: headers ? said : {} };
    return headers ? { kind: 'headers', headers: said } : undefined;
  });
  return { refused: () => refused };
}

describe('RateLimit-Remaining counting down to 0, with RateLimit-Reset', () => {
  const TAGS = Array.from({ length: 12 }, (_, i) => `t${i}`);
  const sync = async (repo: string, headers: boolean) => {
    await seed(repo, TAGS);
    const limit = rateLimitPrimary(20, 2_000, headers);
    try {
      const outcome = await syncConfigured(repo, { GEO_SYNC_PRIMARY_URL: primaryProxy.url, GEO_SYNC_SECONDARY_URL: registries.secondary.url });
      return { ...outcome, refused: limit.refused() };
    } finally {
      primaryProxy.setRule(() => undefined);
    }
  };

  it('without the headers the budget is spent at once and refused; with them the sync is paced, all but never refused, and exact', async () => {
    const unpaced = await sync('countdown/unpaced', false);
    expect(unpaced.refused).toBeGreaterThan(0);
    expect(unpaced.throttled).toBe(unpaced.refused);

    const paced = await sync('countdown/paced', true);
    expect(paced.report.failed).toEqual([]);
    expect(paced.report.status).toBe('synced');
    // Without the headers 28-79 here. With them none on a quiet machine; a loaded one may hand an
    // answer over late enough that a request goes out on a count already spent, so at most 2.
    expect(paced.refused).toBeLessThanOrEqual(2);
    expect(paced.refused * 10).toBeLessThan(unpaced.refused);
    expect(paced.throttled).toBe(paced.refused);
    await expectSecondaryExact('countdown/paced', TAGS.length);
  });
});
